"""The overlap row of `make bench` (iqrl/bench/overlap.py): its figures from the jobs' walls, and the K and
STEPS it refuses in one line before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from iqrl.bench.cli import main as bench_main
from iqrl.bench.overlap import SEED_STEPS, job_wall, overlap_numbers, overlap_refusal


def test_the_overlap_figures_are_per_updating_env_step_with_the_seed_phase_taken_out():
    # 1200 env steps: collection alone 1.2 s (1 ms per env step); the updating jobs' first 200 env steps
    # collect only (0.2 s), their other 1000 take 5.2 s (one group) and 4.6 s (cohorts): 5.2 and 4.6 ms
    row = overlap_numbers(1200, collect=1.2, update=4.0, wall_1=5.4, wall_2=4.8)
    assert SEED_STEPS == 200
    assert row == {
        "collect_s": 0.001,
        "update_s": 0.004,
        "wall_1_s": 0.0052,
        "wall_2_s": 0.0046,
        "hidden": 0.6,  # (5.2 - 4.6) / 1.0
        "hidden_raw": 0.6,
        "clipped": False,
        "update_vs_collect": 4.0,
        "wall_2_vs_1": 0.885,
    }
    slower = overlap_numbers(1200, collect=1.2, update=4.0, wall_1=5.4, wall_2=6.4)
    assert (slower["hidden"], slower["hidden_raw"], slower["clipped"]) == (0.0, -1.0, True)
    more = overlap_numbers(1200, collect=1.2, update=4.0, wall_1=5.4, wall_2=2.4)
    assert (more["hidden"], more["hidden_raw"], more["clipped"]) == (1.0, 3.0, True)


def test_a_jobs_wall_is_its_slowest_seeds_loop_less_its_evaluations(tmp_path):
    splits = [
        {"collect": 1.0, "act": 0.5, "update": 3.0, "evaluate": 9.0, "write": 0.5},
        {"collect": 1.5, "act": 0.5, "update": 2.0, "evaluate": 1.0, "write": 0.25},
    ]
    for s, split in enumerate(splits):
        (tmp_path / f"seed{s}").mkdir()
        status = {"state": "done", "env_step": 10, "steps": 10, "time_split": split}
        (tmp_path / f"seed{s}" / "status.json").write_text(json.dumps(status))
    assert job_wall(tmp_path, 2) == (5.0, 2.5)


@pytest.mark.parametrize(
    "k, steps, line",
    [
        (2, 1200, "--overlap measures two cohorts of K / 2 >= 2 seeds: --seeds takes even K >= 4, got 2"),
        (6, 1200, None),
        (5, 1200, "--overlap measures two cohorts of K / 2 >= 2 seeds: --seeds takes even K >= 4, got 5"),
        (4, 200, "--overlap takes more than the jobs' 200 seed steps, got 200"),
    ],
)
def test_what_an_overlap_row_cannot_measure_is_one_line(k, steps, line):
    assert overlap_refusal(k, steps) == line


def test_the_bench_refuses_an_overlap_it_cannot_measure_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_main(["--overlap", "1200", "--seeds", "4,2", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --overlap measures two cohorts of K / 2 >= 2 seeds: --seeds takes even K >= 4, got 2"
    ]
    assert bench_main(["--overlap", "1200", "--seeds", "4", "--agents", "td3", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --overlap measures iqrl's K-seed jobs, got --agents td3"
    ]
    if not torch.cuda.is_available():
        assert bench_main(["--overlap", "1200", "--seeds", "4", "--device", "cuda", "--out", str(out)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            "error: --device cuda needs a CUDA GPU, and this machine has none"
        ]
    assert not out.exists()


ROOT = Path(__file__).resolve().parents[1]


def doc_figures(rows: list[dict]) -> dict[str, str]:
    """docs/performance.md's figures of collection beside the update and of evaluation over seeds, from
    docs/cpu-overlap.jsonl's rows (the overlap row, and the host-share row of K = 4)."""
    o = next(r for r in rows if r["kind"] == "overlap")
    h = next(r for r in rows if r["kind"] == "host_share" and r["seeds"] == 4)
    raw = o["hidden_raw"]
    return {
        "threads": o["hardware"].rsplit(", ", 1)[1].split()[0],
        "collect_ms": f"{o['collect_s'] * 1000:.2f}",
        "update_ms": f"{o['update_s'] * 1000:.1f}",
        "wall_1_ms": f"{o['wall_1_s'] * 1000:.1f}",
        "wall_2_ms": f"{o['wall_2_s'] * 1000:.1f}",
        "wall_2_vs_1": f"{o['wall_2_vs_1']}",
        "hidden_raw": f"{raw}",
        "clip_words": "clipped to 0: two cohorts ran slower than one group"
        if raw < 0
        else "clipped to 1"
        if raw > 1
        else "not clipped",
        "update_vs_collect": f"{o['update_vs_collect']:.0f}",
        "most": f"{100 * o['collect_s'] / o['wall_1_s']:.1f}",
        "eval_episodes": f"{h['eval_episodes']}",
        "eval_calls": f"{h['eval_act_calls_per_step']:g}",
        "eval_ms": f"{h['eval_ms_per_step']:.1f}",
        "eval_s": f"{h['eval_s']:.2f}",
        "eval_at_length": f"{h['eval_s_at_length']:.1f}",
    }


#: The sentences of docs/performance.md that carry the figures, as doc_figures fills them.
DOC_SENTENCES = [
    "collection {collect_ms} ms per env step of the group, update {update_ms} ms,",
    "wall {wall_1_ms} ms in one group and {wall_2_ms} ms in two cohorts (`wall_2_vs_1` {wall_2_vs_1}),",
    "so `hidden_raw` {hidden_raw}, {clip_words}.",
    "the update is {update_vs_collect} times collection, so hiding all of it would save {most}% of the wall",
    "K = 4, {eval_episodes} episodes, {eval_calls} acting call per evaluation step, {eval_ms} ms per step,",
    "{eval_s} s for the bench's episodes of 20 env steps and {eval_at_length} s at walker-walk's 1000",
]


def test_the_docs_figures_are_the_committed_rows():
    rows = [json.loads(line) for line in (ROOT / "docs" / "cpu-overlap.jsonl").read_text().splitlines()]
    text = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    figures = doc_figures(rows)
    for sentence in DOC_SENTENCES:
        assert sentence.format(**figures) in text
    assert rows[0]["hidden"] == min(max(rows[0]["hidden_raw"], 0.0), 1.0)
