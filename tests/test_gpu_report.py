"""`make gpu-report` (apps/gpu_report/): every part at smoke size on the CPU, the wheel set for a bare GPU
machine, and the generated GPU section of docs/performance.md. The parts' GPU sizes run only on a GPU
machine (docs/performance.md, "On a GPU"); these keep them working in between."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from apps.gpu_report import plan, results
from apps.gpu_report.parts import learning_mode, pytest_command
from iqrl.bench.gpu_rows import latest_test_outcomes

REPO = Path(__file__).resolve().parents[1]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def renders() -> bool:
    """Whether a headless renderer works here (CI has one: IQRL_REQUIRE_RENDERER=1 makes its absence fail)."""
    from iqrl.envs import render

    try:
        return bool(render.select_backend())
    except render.RendererUnavailable:
        assert os.environ.get("IQRL_REQUIRE_RENDERER") != "1", "no headless renderer"
        return False


def test_smoke_runs_every_part_and_writes_its_rows(tmp_path):
    """`make gpu-report SMOKE=1` (all parts; about a minute on 2 cores): part 1 records every CUDA test
    (skipped here), part 2 every smoke row, part 3 two learning runs stopped once they have evaluated (an
    event, not a wall-clock budget: the verdict holds on a loaded machine).
    Without a renderer the pixel row and run fail, and say so in their rows; everything else must pass."""
    cmd = ["make", "-s", "gpu-report", "SMOKE=1", f"GPU_OUT={tmp_path}", f"PY={sys.executable}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    part1, part2, part3 = (read(tmp_path / f"part{n}.jsonl") for n in (1, 2, 3))
    assert all(rows[0]["kind"] == "machine" and rows[0]["python"] for rows in (part1, part2, part3))
    tests = latest_test_outcomes(part1)
    assert len(tests) >= 20 and all(t.startswith("tests/test_cuda.py::") for t in tests)
    assert set(tests.values()) <= {"passed", "skipped"}
    (share,) = [r for r in part1 if r["kind"] == "host_share"]  # plan.host_rows(smoke=True): K = 2, counted
    assert share["key"] == "host_share iqrl walker-walk K=2" and share["device"] == "cpu"
    assert share["seeds"] == 2 and share["act_ops"] > 0 and share["eval_act_calls_per_step"] == 1.0
    bench = [r for r in part2 if r["kind"] in ("bench", "run")]
    assert [r["key"] for r in bench] == [r.key for r in plan.smoke_rows() for _ in range(r.packed)]
    pixels = renders()
    assert all(
        "error" not in r and r["updates_per_s"] > 0
        for r in bench
        if r["kind"] == "bench" and (pixels or "pixels" not in r["key"])
    )
    (run,) = [r for r in bench if r["kind"] == "run"]  # the end-to-end group: its 200 env steps, both seeds
    assert run["seeds"] == 2 and run["env_steps"] == 200 and run["group_env_steps_per_s"] > 0
    learn = [r for r in part3 if r["kind"] == "learn"]
    assert [r["key"] for r in learn] == ["iqrl walker-walk state", "sac-ae cartpole-swingup pixels"]
    assert learn[0]["mode"] == "K-seed" and learn[0]["seeds"] == 2
    stopped = [r for r in learn if pixels or "pixels" not in r["key"]]
    assert all(r["exit"] == 3 and r["eval_step"] > 0 for r in stopped), learn  # stopped, with a checkpoint
    assert "part 3 took" in done.stdout and "return" in done.stdout


def test_learning_mode_takes_the_fastest_in_all_of_single_runs_and_groups_in_every_mode():
    def row(compile_, seeds, ups):
        key = f"iqrl walker-walk state fp32 compile={str(compile_).lower()} K={seeds}"
        return {
            "kind": "bench",
            "key": key,
            "packed": 1,
            "compile": compile_,
            "seeds": seeds,
            "updates_per_s": ups,
        }

    eager, graphs = row(False, 1, 50.0), row("cudagraphs", 1, 300.0)
    assert learning_mode([eager, row(False, 4, 16.0), row(False, 16, 11.0)]) == (True, "false")  # 64 > 50
    assert learning_mode([eager, graphs, row(False, 4, 16.0)]) == (False, "cudagraphs")
    assert learning_mode([]) == (True, "false")  # the H100's eager measurement: K = 4 gave more in all
    # compiled and captured groups count too; a group of more seeds than part 3 trains (K = 16) does not
    big = row("cudagraphs", 16, 100.0)
    assert learning_mode([eager, graphs, row("cudagraphs", 4, 100.0), big]) == (True, "cudagraphs")
    assert learning_mode([eager, graphs, row("cudagraphs", 4, 70.0), big]) == (False, "cudagraphs")
    assert learning_mode([eager, row(False, 4, 12.5)]) == (True, "false")  # a tie: the K-seed mode
    # only the ways whose update part 1 found equal to the eager one on this GPU
    plain = {(False, "false"), (True, "false")}
    assert learning_mode([eager, graphs, row(True, 4, 40.0)], plain) == (False, "false")
    assert learning_mode([eager, graphs, row(True, 4, 40.0)], plain | {(True, "true")}) == (True, "true")
    # a captured K = 1 update checked does not let an unchecked captured group in
    fast_group = row("cudagraphs", 4, 320.0)
    assert learning_mode([eager, graphs, fast_group], plain | {(False, "cudagraphs")}) == (
        False,
        "cudagraphs",
    )


def test_part3_trains_in_a_compile_mode_only_after_its_update_matched_the_eager_one():
    from apps.gpu_report.parts import matching_ways
    from iqrl.bench.gpu_rows import GROUP_GRAPHS_TEST, GROUP_MATCH_TEST, MATCH_TEST

    def test(name, flag, outcome):
        return {"part": 1, "kind": "test", "test": name.format(flag), "outcome": outcome, "when": "call"}

    plain = {(False, "false"), (True, "false")}
    assert matching_ways([]) == plain
    assert matching_ways([test(MATCH_TEST, "False", "failed"), test(MATCH_TEST, "True", "failed")]) == plain
    one = [test(MATCH_TEST, "False", "passed"), test(MATCH_TEST, "True", "collected")]
    assert matching_ways(one) == plain | {(False, "true")}
    both = [test(MATCH_TEST, "False", "passed"), test(MATCH_TEST, "True", "passed")]
    assert matching_ways(both) == plain | {(False, "true"), (False, "cudagraphs")}
    groups = [test(GROUP_MATCH_TEST, "False", "failed"), test(GROUP_MATCH_TEST, "True", "passed")]
    # a tiny 2-seed captured group's pass no longer counts: only the test at paper sizes (issue 78)
    assert matching_ways(both + groups) == plain | {(False, "true"), (False, "cudagraphs")}
    groups.append(test(GROUP_GRAPHS_TEST, "", "passed"))
    assert matching_ways(both + groups) == plain | {
        (False, "true"),
        (False, "cudagraphs"),
        (True, "cudagraphs"),
    }


def test_collect_merges_runs_of_the_parts_into_one_file_per_gpu_and_day(tmp_path):
    machine = {"part": 2, "kind": "machine", "date": "2026-11-25", "gpu": "NVIDIA H100 80GB HBM3"}
    pair = {"part": 2, "kind": "bench", "key": "iqrl walker-walk state fp32 compile=false K=1 packed=2"}
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, ups in ((first, 1.0), (second, 2.0)):
        folder.mkdir()
        rows = [machine] + [{**pair, "copy": c, "updates_per_s": ups} for c in (0, 1)]
        (folder / "part2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results.collect(first, tmp_path / "out")
    target = results.collect(second, tmp_path / "out")
    assert target.name == "nvidia-h100-80gb-hbm3-2026-11-25.jsonl"
    rows = read(target)
    assert rows[0]["kind"] == "machine"
    assert [(r["copy"], r["updates_per_s"]) for r in rows[1:]] == [(0, 2.0), (1, 2.0)]  # the later run's
    (first / "part2.jsonl").write_text(json.dumps({**machine, "gpu": None}) + "\n")
    with pytest.raises(ValueError, match="smoke run or of a machine without a GPU"):
        results.collect(first, tmp_path / "out")


def test_part1_leaves_out_only_the_tests_that_passed_on_this_gpu(monkeypatch):
    from apps.gpu_report.parts import passed_tests

    def test(name, outcome, when="call"):
        return {"part": 1, "kind": "test", "test": name, "outcome": outcome, "when": when}

    rows = [
        test("a", "passed"),
        test("b", "failed"),
        test("c", "collected"),  # cut off: never ran
        test("d", "passed"),
        test("d", "failed", when="teardown"),  # its teardown failed: run again
        test("e", "skipped"),
    ]
    assert passed_tests(rows) == {"a"}
    monkeypatch.setenv("IQRL_REPORT_ALL", "1")
    assert passed_tests(rows) == set()


def test_part1_rows_name_the_tests_that_run_and_keep_a_failures_message(tmp_path):
    """Deselected tests get no row; a failure keeps its assertion message; a later run's `collected`
    (never reached) leaves an earlier outcome standing when merged."""
    (tmp_path / "test_x.py").write_text(
        "def test_ok():\n    pass\n\n"
        "def test_left_out():\n    pass\n\n"
        "def test_bad():\n    assert False, 'iqrl: update 3 critic_loss'\n"
    )
    rows_path = tmp_path / "part1.jsonl"
    env = {**os.environ, "IQRL_REPORT_ROWS": str(rows_path), "PYTHONPATH": str(REPO)}
    cmd = pytest_command("test_x.py", ["test_x.py::test_left_out"])  # part 1's own command
    subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    rows = read(rows_path)
    assert {r["test"] for r in rows} == {"test_x.py::test_ok", "test_x.py::test_bad"}
    bad = next(r for r in rows if r["outcome"] == "failed")
    assert "iqrl: update 3 critic_loss" in bad["detail"]

    machine = {"part": 1, "kind": "machine", "date": "2026-11-25", "gpu": "NVIDIA H100 80GB HBM3"}
    first, second = tmp_path / "first", tmp_path / "second"
    test = {"part": 1, "kind": "test", "test": "t"}
    for folder, outcome in ((first, "passed"), (second, "collected")):
        folder.mkdir()
        (folder / "part1.jsonl").write_text(
            json.dumps(machine) + "\n" + json.dumps({**test, "outcome": outcome})
        )
    results.collect(first, tmp_path / "out")
    merged = read(results.collect(second, tmp_path / "out"))
    assert [r["outcome"] for r in merged[1:]] == ["passed"]


def test_a_gpu_finds_its_committed_rows_beside_their_files_machine_row(tmp_path, monkeypatch):
    """The machine row of a collected file has no `part`: a part on that GPU model reads the file."""
    from apps.gpu_report import parts

    machine = {"kind": "machine", "date": "2026-11-25", "gpu": "NVIDIA H100 80GB HBM3"}
    part1 = {"part": 1, "kind": "test", "test": "t", "outcome": "passed", "when": "call"}
    (tmp_path / "part1.jsonl").write_text(
        json.dumps({**machine, "part": 1}) + "\n" + json.dumps(part1) + "\n"
    )
    target = results.collect(tmp_path, tmp_path / "out")
    monkeypatch.setattr(parts, "load_rows", lambda: results.load_rows(target.parent))
    monkeypatch.setattr(parts, "machine", lambda: machine)
    assert [r["test"] for r in parts.committed_rows(1)] == ["t"]
    assert parts.committed_rows(2) == []


def test_a_paper_scale_run_stays_missing_until_a_learning_run_of_its_key_reached_its_length():
    """A first command's short learning run (15k env steps of iqrl dog-run) is no 1M-step paper-scale run."""
    machine = {"part": 0, "kind": "machine", "date": "2026-11-28", "gpu": "NVIDIA H200"}
    line = "- paper scale (1M env steps, 5 seeds; ablations/sota.yaml): iqrl dog-run state\n"
    short = {"part": 0, "kind": "learn", "key": "iqrl dog-run state", "env_steps": 15000}
    assert line in "\n".join(results.missing_lines([machine, short])) + "\n"
    full = {**short, "env_steps": 1_000_000}
    assert line not in "\n".join(results.missing_lines([machine, short, full])) + "\n"


def test_part2_measures_again_the_rows_a_part_listed_as_missing_or_failed():
    """A missing row (cut off by an earlier part's budget) is not measured: a later run measures it."""
    from apps.gpu_report import parts

    key = "iqrl walker-walk state fp32 compile={} K=16"
    rows = [
        {"part": 2, "kind": "bench", "key": key.format("false"), "updates_per_s": 10.5},
        {"part": 2, "kind": "bench", "key": key.format("true"), "error": "RuntimeError: boom"},
        {"part": 2, "kind": "missing", "key": key.format("cudagraphs"), "reason": "no time left in the part"},
        {"part": 2, "kind": "run", "key": key.format("true") + " end-to-end=3000", "env_steps_per_s": 80.0},
        {"part": 2, "kind": "bench", "key": key.format("false") + " end-to-end=3000", "error": "exit 1"},
    ]
    assert parts.measured_keys(rows) == {key.format("false"), key.format("true") + " end-to-end=3000"}


def test_section_shows_each_gpus_rows_and_lists_what_is_still_missing(tmp_path):
    machine = {"part": 1, "kind": "machine", "date": "2026-11-25", "gpu": "NVIDIA H100 80GB HBM3"}
    machine.update(driver="580", torch="2.11.0", cuda="13.0", python="3.12.3", cpu="x86")
    eager = {"part": 2, "kind": "bench", "key": "iqrl walker-walk state fp32 compile=false K=1", "packed": 1}
    # 1M env steps: 1e6 / 1000 s collecting + 5e5 updates / 50 per s = 1000 + 10000 s
    eager.update(seeds=1, agent="iqrl", task="walker-walk", updates_per_s=50.0, env_steps_per_s=1000.0)
    eager.update(hours_per_1m=11000 / 3600, ops_per_update=580, compile_s=0.0, peak_mem_mb=234)
    k4 = {**eager, "key": "iqrl walker-walk state fp32 compile=false K=4", "seeds": 4, "updates_per_s": 20.0}
    k4.update(hours_per_1m=None, env_steps_per_s=None)
    tests = [
        {"part": 1, "kind": "test", "test": f"tests/test_cuda.py::{t}", "outcome": o}
        for t, o in (("test_a", "passed"), ("test_b", "collected"))
    ]
    # the compiled group matched the eager one: the campaigns' K = 4 rows are planned compiled
    tests.append({"part": 1, "kind": "test", "test": results.group_match_test("true"), "outcome": "passed"})
    e2e = {"part": 2, "kind": "run", "key": "iqrl walker-walk state fp32 compile=true K=4 end-to-end=3000"}
    e2e.update(seeds=4, packed=1, env_steps=3000, env_steps_per_s=50.0, hours_per_1m=5.56)
    rows = [machine, *tests, eager, k4, e2e]
    (tmp_path / "h100.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = results.section(results.load_rows(tmp_path))
    assert "### NVIDIA H100 80GB HBM3, 2026-11-25" in text
    assert "Part 1, tests/test_cuda.py: 1 not reached, 2 passed." in text
    # K = 4: 1000 s collecting + 5e5 updates / 20 per s = 26000 s = 7.22 h per run, 1.81 h per run on one GPU
    assert "| iqrl walker-walk state fp32 compile=false K=4 | 20.0 | 80.0 |  | 7.22 | 1.81 |" in text
    assert "- part 1: tests/test_cuda.py::test_b" in text
    # iqrl's fp32 group measured; its reduced precisions not yet, compiled as verified; td7 (no K-seed mode,
    # no single-seed compiled check passed) one seed eager
    e2e_rows = "tf32 compiled K=4 end to end 3000, bf16 compiled K=4 end to end 3000"
    assert f"- part 2, iqrl walker-walk state: {e2e_rows}\n" in text
    assert "- part 2, td7 walker-walk state: fp32 eager end to end 3000\n" in text
    assert "- part 2, bro-utd10 walker-walk state: fp32 compiled K=4 end to end 3000\n" in text


def test_part2_plans_the_campaign_agents_end_to_end_at_k4_and_iqrls_precisions_and_the_rest_on_request():
    """By default the campaigns' agents (ablations/main.yaml, sota.yaml, network.yaml), each a K = 4 group
    (td7: one seed, the K-seed mode refuses it) end to end, in the fastest mode verified on the GPU model,
    then iqrl's reduced precisions; `full` adds every row of `full_rows` after them."""
    agents = [
        "iqrl",
        "iqrl-official",
        "td3",
        "td7",
        "tcrl",
        "dcwm",
        "mrq",
        "iqrl-ae",
        "iqrl-sac",
        "sac",
        "taco",
    ]
    agents += ["bro", "bro-utd10", "crossq", "simbav2", "simbav2-utd8", "dr-q", "tdmpc2", "droq"]
    assert plan.campaign_agents() == agents

    def keys(mode_k: str, mode_1: str, **kw) -> list[str]:
        tail = "end-to-end=3000"
        want = [
            f"{a} {'cartpole-swingup' if a == 'dcwm' else 'walker-walk'} state fp32 "
            + (f"compile={mode_1} K=1 {tail}" if a == "td7" else f"compile={mode_k} K=4 {tail}")
            for a in agents
        ]
        return want + [f"iqrl walker-walk state {d} compile={mode_k} K=4 {tail}" for d in ("tf32", "bf16")]

    default = [r.key for r in plan.part2_rows()]
    assert default == keys("false", "false")  # no test passed yet: eager
    assert all(r.extra == ("seed_steps=1000",) for r in plan.part2_rows())
    compiled = plan.EAGER_WAYS | {(False, "true"), (True, "true")}
    assert [r.key for r in plan.part2_rows(ways=compiled)] == keys("true", "true")
    graphs = compiled | {(True, "cudagraphs")}  # captured groups verified, single seeds only compiled
    assert [r.key for r in plan.part2_rows(ways=graphs)] == keys("cudagraphs", "true")
    full = [r.key for r in plan.part2_rows(full=True)]
    old = list(dict.fromkeys(r.key for r in plan.full_rows()))
    assert full == default + old and len(default) == 21 and len(old) == 297
    on_request = [
        "iqrl walker-walk state fp32 compile=cudagraphs K=32",
        "mrq atari:Breakout pixels fp32 compile=false K=1",
    ]
    on_request += [
        "iqrl walker-walk state fp32 compile=false K=1 packed=2",
        "td3 walker-walk state bf16 compile=true K=1",
    ]
    assert set(on_request) <= set(old) - set(default)


def test_performance_md_gpu_section_is_generated_from_the_committed_results():
    """Regenerate with `python -m apps.gpu_report doc` (or `collect`, which does it too): the section, and the
    figure of the committed learning runs beside them (none without one)."""
    assert not results.out_of_date(results.load_rows())


def closure(roots: list[str]) -> set[str]:
    """The installed distributions `roots` require, and what those require (not into extras)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: set[str] = set()
    todo = [Requirement(r) for root in roots for r in metadata.requires(root) or []]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if req.marker and not req.marker.evaluate({"extra": ""}) or name in found:
            continue
        found.add(name)
        todo += [Requirement(r) for r in metadata.requires(name) or []]
    return found


def image_site(dest: Path) -> Path:
    """A site folder with links to this environment's installs of the packages the GPU image holds
    (wheels.IMAGE_HAS: torch, numpy, pandas, ...) and of what they require, and nothing else."""
    from packaging.utils import canonicalize_name

    from apps.gpu_report.wheels import IMAGE_HAS

    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    image = [name for name in IMAGE_HAS if name in installed]
    dest.mkdir()
    for name in {*image, *closure(image)}:
        dist = installed[name]
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            src = Path(dist.locate_file(top))
            if top != "__pycache__" and src.exists() and not (dest / top).exists():
                (dest / top).symlink_to(src)
    return dest


ISOLATED = """
import sys
sys.path[:0] = sys.argv[1:4]
import ale_py, dm_control, gymnasium, minigrid, mujoco, omegaconf, rliable, submitit
carried = (ale_py, dm_control, gymnasium, minigrid, mujoco, omegaconf, rliable, submitit)
assert all(m.__file__.startswith(sys.argv[1]) for m in carried)
import iqrl.bench.cli, apps.gpu_report.parts, iqrl.multiseed.runs, analysis.reference.table, slurm.submit
from iqrl.envs.make import make_env
tasks = ("walker-walk", "cartpole-swingup", "dog-run", "atari:Breakout", "minigrid:MiniGrid-Empty-5x5-v0")
for task in tasks:
    env = make_env(task, 0, 2, 10)
    env.reset()
from iqrl.train import main
sys.exit(main(["agent=td3", "task=walker-walk", "steps=200", "episode_length=100", "seed_steps=100",
               "eval_every=200", "eval_episodes=1", "agent.mlp_dims=[16,16]", f"out={sys.argv[4]}"]))
"""


@pytest.mark.network
def test_wheel_set_runs_the_project_beside_the_gpu_images_packages_alone(tmp_path, monkeypatch):
    """`make gpu-wheels` for this Python: installed with --no-index into a folder, beside only the GPU
    image's packages, it imports the project, builds the report's environments and trains a short run.
    Downloads the wheels (pip's cache keeps them); skipped when no package index can be reached."""
    from apps.gpu_report.wheels import build

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    for option, value in (("RETRIES", "1"), ("TIMEOUT", "20"), ("DEFAULT_TIMEOUT", "20")):
        monkeypatch.setenv(f"PIP_{option}", value)  # an unreachable index: a skip within a minute, not a hang
    try:
        build(tmp_path / "whl", python)
    except subprocess.CalledProcessError as e:
        if "download" not in e.cmd or os.environ.get("CI"):  # a build failure, or CI, which has an index
            raise
        pytest.skip(f"pip download of the wheel set failed (exit {e.returncode}): no index reachable?")
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    wheels = [str(w) for w in (tmp_path / "whl").glob("*.whl")]
    subprocess.run([*install, "--target", str(site), *wheels], check=True)
    base = image_site(tmp_path / "image")
    argv = [
        sys.executable,
        "-I",
        "-S",
        "-c",
        ISOLATED,
        str(site),
        str(base),
        str(REPO),
        str(tmp_path / "run"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "eval.csv").exists()


def test_dreamerv3_paper_scale_runs_seed_as_its_code_and_the_docs_say_so():
    """DreamerV3's paper-scale runs leave the seed phase to its code's count (DV3-7): 4,096 env steps with
    DMC's 16 envs, 4,352 on Atari 100k; docs/learning-check.md's commands write the same numbers."""
    import re

    from apps.gpu_report import plan
    from iqrl.config.build import build_config

    runs = [r for r in plan.paper_scale_runs() if r.agent == "dreamerv3"]
    dmc = [r for r in runs if not r.task.startswith("atari:")]
    assert dmc and all(not any(k.startswith("seed_steps=") for k in r.keys) for r in dmc)
    seeded = {
        r.task: (build_config(list(r.keys)).seed_steps, build_config(list(r.keys)).train_envs) for r in runs
    }
    assert seeded == {"walker-walk": (4096, 16), "cheetah-run": (4096, 16), "atari:Pong": (4352, 1)} | {
        "atari:Breakout": (4352, 1)
    }
    text = (REPO / "docs" / "learning-check.md").read_text()
    block = text[text.index("**Paper scale, for the GPU report**") :]
    block = block[: block.index("```", block.index("```") + 3)]
    assert sorted(re.findall(r"seed_steps=(\d+)", block)) == ["4096", "4096", "4352"]
