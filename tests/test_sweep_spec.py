"""Sweep files: grid expansion, variant names, budgets, errors, and the shipped ablations/*.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slurm.naming import dotlist_value, variant_name
from slurm.spec import SweepError, load_sweep, parse_sweep

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {"easy": ["walker-walk", "cartpole-balance"], "medium": ["cheetah-run"], "hard": ["dog-run"]}


def parse(text: str):
    return parse_sweep(yaml.safe_load(text), "x.yaml", "x", GROUPS)


BASE = "agents: [iqrl]\ntasks: [walker-walk]\nseeds: 1\nsteps: 1000\n"


def test_minimal_sweep_has_one_default_variant():
    s = parse(BASE)
    runs = s.runs()
    assert [r.key for r in runs] == ["iqrl/walker-walk/default/seed0"]
    assert runs[0].run_dir("R") == Path("R/x/iqrl/walker-walk/default/seed0")
    assert runs[0].overrides == ()


def test_grid_is_a_product_and_zip_advances_together():
    s = parse(
        BASE
        + """
grid:
  agent.horizon: [1, 3]
  agent.rho: [0.5, 0.9]
zip:
  - {agent.fsq_levels: [[8, 8], [8, 5, 5, 5]], agent.latent_dim: [64, 32]}
"""
    )
    names = list(s.variants)
    assert len(names) == 2 * 2 * 2
    assert "fsq_levels=8-8,horizon=1,latent_dim=64,rho=0.5" in names
    assert "fsq_levels=8-5-5-5,horizon=3,latent_dim=32,rho=0.9" in names
    # zipped keys never mix: no [8, 8] with latent_dim 32
    assert not any("fsq_levels=8-8" in n and "latent_dim=32" in n for n in names)


def test_variants_axis_combines_with_grid_and_empty_mapping_is_default():
    s = parse(BASE + "variants: [{}, {agent.use_fsq: false}]\n")
    assert list(s.variants) == ["default", "use_fsq=false"]
    s = parse(BASE + "variants: [{}, {agent.use_fsq: false}]\ngrid: {agent.horizon: [2]}\n")
    assert list(s.variants) == ["horizon=2", "horizon=2,use_fsq=false"]


def test_groups_expand_in_order_without_duplicates_and_seeds_count_or_list():
    s = parse("agents: [iqrl, td3]\ntasks: [easy, walker-walk, hard]\nseeds: [3, 7]\nsteps: 5\n")
    assert s.tasks == ("walker-walk", "cartpole-balance", "dog-run")
    assert s.seeds == (3, 7)
    assert len(s.runs()) == 2 * 3 * 2
    assert [r.agent for r in s.runs(agents=["td3"])] == ["td3"] * 6
    assert parse(BASE.replace("seeds: 1", "seeds: 3")).seeds == (0, 1, 2)


def test_per_group_budgets():
    s = parse(
        "agents: [iqrl]\ntasks: [easy, medium, hard]\nseeds: 1\n"
        "steps: {easy: 1000000, medium: 2000000, hard: 3_000_000}\n"
    )
    assert {r.task: r.steps for r in s.runs()} == {
        "walker-walk": 1_000_000,
        "cartpole-balance": 1_000_000,
        "cheetah-run": 2_000_000,
        "dog-run": 3_000_000,
    }
    s = parse("agents: [iqrl]\ntasks: [hard, reacher-easy]\nseeds: 1\nsteps: {hard: 3, default: 9}\n")
    assert {r.task: r.steps for r in s.runs()} == {"dog-run": 3, "reacher-easy": 9}


def test_fixed_and_per_agent_overrides_are_recorded_but_not_in_the_variant_name():
    s = parse(
        "agents: [iqrl, td3]\ntasks: [walker-walk]\nseeds: 1\nsteps: 10\n"
        "fixed: {eval_every: 5, agent.mlp_dims: [64, 64]}\nper_agent: {iqrl: {agent.latent_dim: 16}}\n"
        "grid: {agent.batch_size: [32]}\n"
    )
    iqrl, td3 = s.runs()
    assert iqrl.variant == td3.variant == "batch_size=32"
    assert iqrl.overrides == (
        "agent.batch_size=32",
        "agent.latent_dim=16",
        "agent.mlp_dims=[64,64]",
        "eval_every=5",
    )
    assert td3.overrides == ("agent.batch_size=32", "agent.mlp_dims=[64,64]", "eval_every=5")
    argv = iqrl.argv("/res")
    assert argv[:4] == ["agent=iqrl", "task=walker-walk", "seed=0", "steps=10"]
    assert "out=/res/x/iqrl/walker-walk/batch_size=32/seed0" in argv
    assert "variant=batch_size=32" in argv and "sweep=x" in argv
    assert argv[-4:] == list(iqrl.overrides)


def test_per_task_overrides_reach_only_that_tasks_runs_and_stay_out_of_the_variant_name():
    s = parse(
        "agents: [iqrl]\ntasks: [cartpole-swingup, walker-walk]\nseeds: 1\nsteps: 10\n"
        "per_task: {cartpole-swingup: {action_repeat: 8}}\nvariants: [{obs: pixels}]\n"
    )
    cartpole, walker = s.runs()
    assert cartpole.variant == walker.variant == "obs=pixels"  # the observation type names the variant
    assert cartpole.overrides == ("action_repeat=8", "obs=pixels")
    assert walker.overrides == ("obs=pixels",)


def test_variant_names_are_stable_readable_and_injective():
    assert variant_name({}) == "default"
    assert variant_name({"agent.horizon": 3}) == "horizon=3"
    assert variant_name({"agent.fsq_levels": [8, 5, 5, 5]}) == "fsq_levels=8-5-5-5"
    assert variant_name({"agent.use_fsq": False}) == "use_fsq=false"
    assert variant_name({"agent.consistency_loss": "mse"}) == "consistency_loss=mse"
    assert variant_name({"agent.tc_loss_sign": -1}) == "tc_loss_sign=-1"
    assert variant_name({"agent.enc_lr": 0.0003}) == "enc_lr=0.0003"
    assert variant_name({"eval_every": 5}) == "eval_every=5"
    # order of keys does not matter
    a = variant_name({"agent.latent_dim": 64, "agent.fsq_levels": [8, 8]})
    assert (
        a
        == variant_name({"agent.fsq_levels": [8, 8], "agent.latent_dim": 64})
        == "fsq_levels=8-8,latent_dim=64"
    )
    # unsafe characters or long names: shortened with a hash, still distinct
    x, y = variant_name({"agent.note": "a b"}), variant_name({"agent.note": "a/b"})
    assert x != y and x.startswith("note=a_b~") and "/" not in y
    long = variant_name({f"agent.k{i}": i for i in range(40)})
    assert len(long) <= 80 and long != variant_name({f"agent.k{i}": i + 1 for i in range(40)})


def test_dotlist_values_round_trip_through_omegaconf():
    from omegaconf import OmegaConf

    for v in [
        3,
        0.0003,
        1e-05,
        True,
        None,
        "mse",
        "on",
        "1e-3",
        [8, 5, 5, 5],
        [[1, 2], []],
        "/a/b=c,d",
        "a b",
    ]:
        assert OmegaConf.to_container(OmegaConf.from_dotlist([f"k={dotlist_value(v)}"]))["k"] == v


@pytest.mark.parametrize(
    "text, message",
    [
        ("agents: [iqrl]\n", "missing required key 'tasks'"),
        (BASE + "grdi: {}\n", "unknown key 'grdi'"),
        (BASE.replace("seeds: 1", "seeds: 0"), "seeds: a count must be at least 1"),
        (BASE.replace("seeds: 1", "seeds: [1, 1]"), "seeds: duplicate"),
        (BASE.replace("steps: 1000", "steps: 1e6"), "write 1000000"),
        (BASE.replace("steps: 1000", "steps: {easy: 5, wild: 3}"), "steps: unknown group 'wild'"),
        (
            "agents: [iqrl]\ntasks: [medium]\nseeds: 1\nsteps: {easy: 5}\n",
            "no budget for task 'cheetah-run' (group medium)",
        ),
        (BASE.replace("agents: [iqrl]", "agents: []"), "agents: expected a non-empty list"),
        (BASE + "grid: {agent.horizon: 3}\n", "grid.agent.horizon: expected a non-empty list"),
        (BASE + "grid: {}\n", "grid: expected a non-empty mapping"),
        (BASE + "variants: []\n", "variants: expected a non-empty list"),
        (BASE + "zip: []\n", "zip: expected a list of axes"),
        (BASE + "grid: {seed: [1, 2]}\n", "'seed' is set by the sweep itself"),
        (BASE + "grid: {'agent..x': [1]}\n", "is not a config key"),
        (BASE + "zip: [{agent.a: [1, 2], agent.b: [1]}]\n", "zipped lists must have equal lengths"),
        (BASE + "fixed: {agent.horizon: 3}\ngrid: {agent.horizon: [1]}\n", "also set in fixed"),
        (BASE + "variants: [{}, {}]\n", "both give variant 'default'"),
        (BASE + "fixed: {agent.x: {a: 1}}\n", "mappings are not supported"),
        (BASE + "per_agent: {td3: {agent.x: 1}}\n", "'td3' is not one of the sweep's agents"),
        (BASE + "per_task: {dog-run: {action_repeat: 4}}\n", "'dog-run' is not one of the sweep's tasks"),
        (
            BASE + "fixed: {action_repeat: 2}\nper_task: {walker-walk: {action_repeat: 4}}\n",
            "also set in fixed",
        ),
        (BASE + "name: 'a b'\n", "not a usable folder name"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_malformed_sweeps_give_one_line_errors(text, message):
    with pytest.raises(SweepError) as e:
        parse(text)
    assert message in str(e.value)
    assert str(e.value).startswith("x.yaml: ") and "\n" not in str(e.value)


def test_invalid_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("agents: [iqrl\ntasks: x\n")
    with pytest.raises(SweepError, match=r"bad.yaml: invalid YAML at line \d+") as e:
        load_sweep(p, GROUPS)
    assert "\n" not in str(e.value)
    with pytest.raises(SweepError, match="cannot read sweep file"):
        load_sweep(tmp_path / "nope.yaml", GROUPS)


@pytest.mark.parametrize("command", ["sweep", "status"])
def test_a_sweep_file_that_is_not_utf8_is_one_line_naming_it(tmp_path, capsys, command):
    """A sweep file saved in Latin-1 (a comment's é) was a UnicodeDecodeError's traceback naming no file."""
    from slurm.__main__ import main

    p = tmp_path / "latin1.yaml"
    p.write_bytes("agents: [td3]\ntasks: [cartpole-balance]\n# café\n".encode("latin-1"))
    assert (
        main([command, str(p), "--results", str(tmp_path / "results"), *["--dry"] * (command == "sweep")])
        == 2
    )
    assert capsys.readouterr().err.splitlines() == [
        f"error: {p}: sweep file is not UTF-8 text (byte 0xe9 on line 3)"
    ]
    assert sorted(tmp_path.iterdir()) == [p]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            BASE + "grid: {agent.horizon: [1]}\ngrid: {agent.rho: [0.5]}\n",
            "invalid YAML at line 6, column 1: duplicate key 'grid' (first given at line 5)",
        ),
        (
            BASE + "grid:\n  agent.horizon: [1, 3]\n  agent.horizon: [5]\n",
            "invalid YAML at line 7, column 3: duplicate key 'agent.horizon' (first given at line 6)",
        ),
        (BASE + "variants: [{agent.use_fsq: false, agent.use_fsq: true}]\n", "duplicate key 'agent.use_fsq'"),
    ],
)
def test_duplicate_keys_are_rejected_with_key_and_line(tmp_path, text, message):
    p = tmp_path / "dup.yaml"
    p.write_text(text)
    with pytest.raises(SweepError) as e:
        load_sweep(p, GROUPS)
    assert str(e.value).startswith(f"{p}: ") and message in str(e.value) and "\n" not in str(e.value)


def test_yaml_merge_keys_may_override_merged_entries(tmp_path):
    p = tmp_path / "merge.yaml"
    p.write_text(
        BASE + "fixed: &f {eval_every: 5, agent.horizon: 3}\nper_agent: {iqrl: {<<: *f, eval_every: 7}}\n"
    )
    with pytest.raises(SweepError, match="also set in fixed"):  # parsed; rejected by the sweep rules only
        load_sweep(p, GROUPS)


# ---------------------------------------------------------------------------- against the real trainer config
def _validate(path, results: Path, agents=None):
    """Load a shipped sweep against `results` (a test's own tmp_path: the validator reads run folders)."""
    from slurm.submit import load

    return load(ROOT / "ablations" / path, Path(results), agents)


@pytest.mark.parametrize(
    "name",
    [
        "smoke.yaml",
        "fsq_levels.yaml",
        "fsq_levels_equal_width.yaml",
        "horizon.yaml",
        "components.yaml",
        "latent_dim.yaml",
        "quantizer.yaml",
        "stochastic.yaml",
        "pixels.yaml",
        "network.yaml",
        "sota.yaml",
    ],
)
def test_shipped_sweeps_validate_against_build_config(name, tmp_path):
    """Every shipped sweep validates; a run's config as the validation checks its folder with (the config's
    built once, the run's seed and folder put in: slurm.submit.run_config) is the trainer's build of the run's
    own command line, for the smallest seed of each config (the config is built for the largest)."""
    from iqrl.config.build import build_config
    from slurm.spec import config_key, config_runs
    from slurm.submit import run_config

    sweep, runs = _validate(name, tmp_path)
    assert runs and sweep.name == name[:-5]
    configs, smallest = config_runs(runs), {}
    for r in runs:
        smallest.setdefault(config_key(r), r)
    for r in smallest.values():
        assert run_config(r, configs, tmp_path, build_config) == build_config(r.argv(tmp_path)), r.key


def test_shipped_sweeps_cover_the_requested_settings():
    from slurm.submit import default_task_groups

    def variants(name):
        return load_sweep(ROOT / "ablations" / name, default_task_groups()).variants

    fsq = variants("fsq_levels.yaml")
    sizes = set()
    for ov in fsq.values():
        if "agent.fsq_levels" in ov:
            k = 1
            for level in ov["agent.fsq_levels"]:
                k *= level
            sizes.add(k)
    assert min(sizes) == 2**4 and max(sizes) == 2**16 and "use_fsq=false" in fsq
    assert [v["agent.horizon"] for v in variants("horizon.yaml").values()] == [1, 2, 3, 5, 7, 10]
    comp = variants("components.yaml")
    assert {
        "default",
        "use_rec_loss=true",
        "use_rew_loss=true",
        "use_projection=true",
        "use_target_encoder=false",
        "consistency_loss=mse",
        "tc_loss_sign=1",
    } <= set(comp)
    assert len(variants("latent_dim.yaml")) >= 5
    main = load_sweep(ROOT / "ablations" / "main.yaml", default_task_groups())
    assert main.seeds == (0, 1, 2, 3, 4)
    assert {main.steps_for(t) for t in default_task_groups()["easy"] + default_task_groups()["medium"]} == {
        1_000_000
    }
    assert {main.steps_for(t) for t in default_task_groups()["hard"]} == {3_000_000}
    assert {"iqrl", "td3", "td7", "tcrl", "dcwm", "mrq", "sac"} <= set(main.agents)


def test_every_agent_a_sweep_file_names_is_registered():
    """Each shipped sweep names registered agents only (in `agents:` and `per_agent:`). Which agents a sweep
    runs is the sweep's choice: a new agent joins one when someone adds it, no test asks for it."""
    from iqrl.core.registry import agent_names

    for path in sorted((ROOT / "ablations").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        named = [*data.get("agents", []), *(data.get("per_agent") or {})]
        unknown = sorted(set(named) - set(agent_names()))
        assert not unknown, f"ablations/{path.name} names agents the registry lacks: {unknown}"


def test_main_sweep_runs_agents_that_act_in_its_tasks_and_every_run_validates(tmp_path):
    """main.yaml is the paper benchmark on DMC: the agents it names act in boxes, and every run validates."""
    from iqrl.core.registry import action_agents
    from slurm.submit import default_task_groups

    main = load_sweep(ROOT / "ablations" / "main.yaml", default_task_groups())
    assert set(main.agents) <= set(action_agents("box"))
    _validate("main.yaml", tmp_path)


def test_the_pixel_sweep_runs_pixel_methods_from_pixels_at_the_planet_action_repeats(tmp_path):
    from iqrl.core.registry import agent_class, agent_names

    sweep, runs = _validate("pixels.yaml", tmp_path)
    pixel_classes = {  # DMC's pixel methods: those that act in boxes
        agent_class(a)
        for a in agent_names()
        if agent_class(a).PIXELS and "box" in agent_class(a).ACTION_SPACES
    }
    swept = {agent_class(a) for a in sweep.agents}
    assert swept <= pixel_classes
    assert list(sweep.variants) == ["obs=pixels"]
    planet = {"cartpole-swingup": 8, "reacher-easy": 4, "cheetah-run": 4, "finger-spin": 2, "walker-walk": 2}
    for run in runs:  # one update per agent step, as the pixel papers: updates_per_step = 1 / action_repeat
        ov = dict(o.split("=", 1) for o in run.overrides)
        assert float(ov["updates_per_step"]) * int(ov["action_repeat"]) == 1.0 and ov["obs"] == "pixels"
        assert int(ov["action_repeat"]) == planet.get(run.task, 4)  # ball_in_cup-catch: 4


def test_unknown_config_key_or_bad_value_is_rejected_before_submission(tmp_path):
    from slurm.submit import load

    p = tmp_path / "bad.yaml"
    p.write_text(BASE + "grid: {agent.horizn: [1, 2]}\n")
    with pytest.raises(
        SweepError,
        match=r"run iqrl/walker-walk/horizn=1/seed0: unknown config key 'agent.horizn' "
        r"\(did you mean agent.horizon\?\)",
    ):
        load(p, tmp_path / "results")
    p.write_text(BASE + "grid: {agent.consistency_loss: [cos, l1]}\n")
    with pytest.raises(SweepError, match="consistency_loss must be cos or mse"):
        load(p, tmp_path / "results")
    p.write_text(BASE.replace("[iqrl]", "[iqrl, nope]"))
    with pytest.raises(SweepError, match="not in the registry: nope"):
        load(p, tmp_path / "results")
    # Only the largest seed can be out of range (the eval env is seeded seed + 10000 < 2**32).
    p.write_text(BASE.replace("seeds: 1", "seeds: [0, 4294967295, 3]"))
    with pytest.raises(SweepError, match=r"run iqrl/walker-walk/default/seed4294967295: .*seed"):
        load(p, tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_dry_projects_gpu_hours_from_each_runs_updates_and_the_measured_rates(tmp_path):
    """updates = (steps - seed_steps) x rate (the run's updates_per_step, else the agent's own 0.5); hours =
    updates over the updates/s of the agent's row in the GPU report's results (td3 158.6 here); an agent no
    row measured (mrq) at the eager fit to the rows (td3's alone: seconds per launch), named so."""
    from slurm.cost import bench_config, counts_of
    from slurm.projection import project, projection_lines

    from conftest import write_gpu_results

    rates = write_gpu_results(tmp_path / "gpu", {"td3 walker-walk state fp32 compile=false K=1": 158.6})
    runs = parse(
        "agents: [td3, mrq]\ntasks: [walker-walk]\nseeds: 2\nsteps: 17200\nfixed: {seed_steps: 10000}\n"
        "variants: [{}, {updates_per_step: 1.0}]\n"
    ).runs()
    rows = {r.agent: r for r in project(runs, tmp_path, rates)}
    # per agent: 2 seeds x ((17200 - 10000) x 0.5 + 7200 x 1.0) = 21600 updates
    assert [(r.runs, r.updates) for r in rows.values()] == [(4, 21600), (4, 21600)]
    assert rows["td3"].gpu_hours == pytest.approx(21600 / 158.6 / 3600) and rows["td3"].measured
    per_launch = 1 / 158.6 / counts_of("td3", bench_config("td3")).launches
    mrq = counts_of("mrq", bench_config("mrq")).launches * per_launch
    assert rows["mrq"].gpu_hours == pytest.approx(21600 * mrq / 3600, rel=1e-3) and not rows["mrq"].measured
    lines = projection_lines(runs, tmp_path, rates=rates)
    assert lines[0].startswith("projected GPU-hours at the fastest measured rows")
    assert lines[0].endswith(": 0 for 8 runs, 0.0M updates") and lines[1].startswith("  (rule: ")
    td3 = "(measured: NVIDIA H100 2026-12-01 `td3 walker-walk state fp32 compile=false K=1`, updates only"
    assert td3 in lines[2]
    fit = "(modeled: the eager fit to NVIDIA H100's eager K=1 rows of td3, updates only"
    assert fit in lines[3] and lines[3].endswith("; expected error not known (one row)): 0 GPU-hours")


def test_dry_prices_runs_end_to_end_else_updates_plus_collection_and_evaluation(tmp_path):
    """A config at its agent's end-to-end row (a whole run's env steps/s per seed) where one exists; else its
    update row plus its env steps, training's and evaluation's, at the collection rate the row measured for
    its K; each line says which; stale and flagged rows price nothing. 2 seeds of td3, 20k env steps (10k
    seed steps), 0.5 updates per env step: 5000 updates; 3 evaluations of 10 episodes of 1000 steps: 30000
    evaluation env steps."""
    import json

    from slurm.projection import project, projection_lines

    gpu = tmp_path / "gpu"
    gpu.mkdir()
    bench = {"kind": "bench", "agent": "td3", "task": "walker-walk", "obs": "state", "dtype": "fp32"}
    bench |= {"device": "cuda", "compile": False, "packed": 1}
    rows = [
        {"kind": "machine", "gpu": "GPU X", "date": "2026-12-01"},
        {**bench, "key": "td3 walker-walk state fp32 compile=false K=1", "seeds": 1, "updates_per_s": 100.0,
         "env_steps_per_s": 1000.0},
        {**bench, "key": "td3 walker-walk state fp32 compile=false K=2", "seeds": 2, "updates_per_s": 10.0,
         "group_env_steps_per_s": 4000.0},
        # a stale row and one whose peak memory was below its floor claim more, and price nothing
        {**bench, "key": "td3 walker-walk state fp32 compile=true K=1", "seeds": 1, "updates_per_s": 1e4,
         "compile": True, "stale": "old"},
        {**bench, "key": "td3 walker-walk state fp32 compile=cudagraphs K=2", "seeds": 2,
         "updates_per_s": 1e4, "compile": "cudagraphs", "flag": "peak below its floor"},
    ]  # fmt: skip
    (gpu / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sweep = "agents: [td3]\ntasks: [walker-walk]\nseeds: 2\nsteps: 20000\nfixed: {seed_steps: 10000}\n"
    runs = parse(sweep).runs()
    (row,) = project(runs, tmp_path, gpu)
    # K=1: 5000 / 100 + (20000 + 30000) / 1000 = 100 s per seed, 2 GPUs; K=2: 5000 / 10 + 50000 / 2000 = 525 s
    assert row.rate.how == "eager K=1" and row.gpu_hours == pytest.approx(2 * 100 / 3600)
    line = projection_lines(runs, tmp_path, rates=gpu)[2]
    assert "K=1`, updates + collection and evaluation at 1000.0 env steps/s)" in line
    end_to_end = {**bench, "kind": "run", "key": "td3 walker-walk state fp32 compile=false K=2 end-to-end"}
    rows.append({**end_to_end, "seeds": 2, "env_steps_per_s": 1000.0})  # 20 s per seed, one GPU for both
    (gpu / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (row,) = project(runs, tmp_path, gpu)
    assert row.rate.how == "eager K=2" and row.gpu_hours == pytest.approx(20 / 3600)
    line = projection_lines(runs, tmp_path, rates=gpu)[2]
    assert "at 1000.0 env steps/s per seed end to end (measured end to end: GPU X 2026-12-01 `td3" in line
    (other,) = project(parse(sweep + "variants: [{updates_per_step: 1.0}]\n").runs(), tmp_path, gpu)
    assert not other.rate.end_to_end  # another update rate than the whole run measured


def test_dry_prices_a_config_at_its_cheapest_measured_row_per_seed_gpu_hour(tmp_path):
    """Two rows of iqrl: eager alone at 60 updates/s, eager K = 4 at 20 per seed (80 per GPU), and a failed
    compiled row that claims 1000: the failed one is ignored. 4 seeds of 3600 updates each share one GPU at
    K = 4: 3600 / 20 / 3600 = 0.05 GPU-hours (0.0125 per seed, a run's hours / K), against 4 x 3600 / 60 /
    3600 = 0.0667 one per GPU. With 5 seeds a K = 4 row takes ceil(5 / 4) = 2 GPUs (0.1): one per GPU
    (0.0833) is cheaper. With 3 seeds no group of 4 forms. A precision, or a mode the run sets itself, that
    no row measured takes the stand-in."""
    from slurm.projection import project

    from conftest import write_gpu_results

    rates = write_gpu_results(
        tmp_path / "gpu",
        {
            "iqrl walker-walk state fp32 compile=false K=1": 60.0,
            "iqrl walker-walk state fp32 compile=false K=4": 20.0,
            "iqrl walker-walk state fp32 compile=true K=1": "RuntimeError: the compiled update failed",
        },
        gpu="NVIDIA H200",
    )
    sweep = "agents: [iqrl]\ntasks: [walker-walk]\nsteps: 17200\nfixed: {seed_steps: 10000}\n"

    def projected(seeds: int, extra: str = ""):
        (row,) = project(parse(sweep + f"seeds: {seeds}\n" + extra).runs(), tmp_path, rates)
        return row

    four = projected(4)
    assert four.runs == 4 and four.updates == 4 * 3600
    assert four.rate.how == "eager K=4" and four.gpu_hours == pytest.approx(0.05)
    assert four.rate.row == "NVIDIA H200 2026-12-01 `iqrl walker-walk state fp32 compile=false K=4`"
    five = projected(5)
    assert five.rate.how == "eager K=1" and five.gpu_hours == pytest.approx(5 * 3600 / 60 / 3600)
    assert projected(3).rate.how == "eager K=1"
    assert not projected(4, "variants: [{precision: bf16}]\n").measured  # fp32 rows price fp32 runs only
    assert not projected(4, "variants: [{compile: true}]\n").measured  # a pinned mode: its rows only


def test_dry_with_a_gpu_hour_budget_says_whether_the_measured_modes_fit(tmp_path):
    """GPU_HOURS=: agent, its fastest measured mode and K, GPU-hours, then the total against the budget: it
    fits, or none fits and the cheapest measured combination's cost, or an agent has no measured row."""
    from slurm.projection import projection_lines

    from conftest import write_gpu_results

    rows = {
        "iqrl walker-walk state fp32 compile=true K=1": 36.0,
        "td3 walker-walk state fp32 compile=false K=1": 1,
    }
    rates = write_gpu_results(tmp_path / "gpu", rows)  # td3's eager row: the fit that prices mrq
    sweep = "agents: [iqrl]\ntasks: [walker-walk]\nsteps: 1010000\nseeds: 2\nfixed: {seed_steps: 10000}\n"
    runs = parse(sweep).runs()  # 2 seeds x 500k updates at 36/s: 7.7 GPU-hours
    table = projection_lines(runs, tmp_path, 10, rates)[3:]
    assert table[0].startswith("budget 10 GPU-hours, measured rows only")
    assert table[1].split() == ["iqrl", "compiled", "K=1", "8"]
    assert table[2] == "  fits: 8 of 10 GPU-hours in the modes and K above"
    assert projection_lines(runs, tmp_path, 5, rates)[-1] == (
        "  none fits: the cheapest measured combination costs 8 > 5"
    )
    both = parse("agents: [iqrl, mrq]\ntasks: [walker-walk]\nsteps: 17200\nseeds: 2\n").runs()
    last = projection_lines(both, tmp_path, 700, rates)
    assert last[-2].split()[:3] == ["mrq", "no", "measured"]
    assert last[-1].startswith("  no measured combination covers the sweep: 1 agent(s) have no measured row")
    assert "(mrq; " in last[-1] and "of the 700 (fits)" in last[-1]


def test_the_atari_sweeps_run_the_100k_protocol_on_the_26_games_with_an_fsq_arm(tmp_path):
    from iqrl.envs.tasks import ATARI_26

    for name in ("atari.yaml", "atari_fsq_levels.yaml"):
        sweep, runs = _validate(name, tmp_path)
        assert sorted({r.task for r in runs}) == sorted(ATARI_26) and sweep.seeds == (0, 1, 2, 3, 4)
        fixed = dict(o.split("=", 1) for o in runs[0].overrides)
        assert fixed["protocol"] == "atari100k" and fixed["updates_per_step"] == "0.25"  # 1 per agent step
        assert {r.steps for r in runs} == {400_000}  # 100k agent steps of 4 frames
    assert {"iqrl", "mrq", "drq-eps"} <= set(load_sweep(ROOT / "ablations/atari.yaml", {}).agents)
    fsq = load_sweep(ROOT / "ablations/atari_fsq_levels.yaml", {}).variants
    assert {"use_fsq=false", "default"} <= set(fsq) and len(fsq) >= 3


@pytest.mark.parametrize("value", ["inf", "1e400"])
def test_a_nonfinite_grid_value_is_rejected_before_submission(tmp_path, value):
    """YAML reads `inf` and `1e400` as text (`.inf`, a float, the sweep file's check refuses); the trainer's
    config reads them as infinity and refuses it for the run."""
    from slurm.submit import load

    p = tmp_path / "bad.yaml"
    p.write_text(BASE + f"grid: {{agent.lr: [{value}, 0.001]}}\n")
    with pytest.raises(
        SweepError, match=r"run iqrl/walker-walk/lr=.*: agent.lr must be a finite number, got inf"
    ):
        load(p, tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_main_sweeps_header_names_how_many_agents_it_runs_and_every_one_it_leaves_out():
    """main.yaml's header says it runs 16 of the 25 registered agents and names where each other one runs:
    the count and the names are the registry's and the file's own."""
    import re

    from iqrl.core.registry import agent_names

    text = (ROOT / "ablations" / "main.yaml").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    agents = yaml.safe_load(text)["agents"]
    (ran, registered), *_ = re.findall(r"(\d+) of the (\d+) registered agents", header)
    assert (int(ran), int(registered)) == (len(agents), len(agent_names()))
    left_out = set(agent_names()) - set(agents)
    named = {a for a in agent_names() if re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", header)}
    assert named - set(agents) == left_out
