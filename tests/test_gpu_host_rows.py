"""Part 1's host-share and overlap rows (apps/gpu_report/plan.py host_rows, parts.py host_part) and their
tables in the generated GPU section (results.py host_lines)."""

from __future__ import annotations

import json
import time

from apps.gpu_report import parts, plan, results


def test_the_plan_holds_a_k16_host_share_and_overlap_row_with_their_commands():
    share, overlap = plan.host_rows()
    assert share.key == "host_share iqrl walker-walk K=16"
    assert share.argv("cuda", "o.json") == [
        *("--host-share", "--tasks", "walker-walk", "--seeds", "16", "--device", "cuda", "--out", "o.json")
    ]
    assert overlap.key == "overlap iqrl cartpole-balance K=16 steps=600"
    assert overlap.argv("cuda", "o.json") == [
        *("--overlap", "600", "--tasks", "cartpole-balance", "--seeds", "16", "--device", "cuda"),
        *("--out", "o.json"),
    ]
    (smoke,) = plan.host_rows(smoke=True)
    assert smoke.argv("cpu", "o.json")[-5:] == [f"--set={kv}" for kv in plan.SMOKE_IQRL]


def test_part1_keeps_its_tests_most_of_its_budget_beside_the_host_rows():
    """60 s for the host share and 150 s for the overlap: 210 s of part 1's 480, the tests get 270."""
    assert [r.expected_s for r in plan.host_rows()] == [60.0, 150.0]
    assert plan.HOST_ROWS_S == 210.0
    assert parts.BUDGET_S - plan.HOST_ROWS_S == 270.0 >= parts.BUDGET_S / 2


def test_host_part_leaves_out_measured_rows_and_those_whose_seconds_do_not_fit(tmp_path, monkeypatch):
    share, overlap = plan.host_rows()
    measured = {"part": 1, "kind": "host_share", "key": share.key, "act_ms": 1.0}
    monkeypatch.setattr(parts, "committed_rows", lambda part: [measured] if part == 1 else [])
    ran = []
    monkeypatch.setattr(parts, "host_result", lambda row, device, deadline: ran.append(row) or {})
    log = parts.RowLog(tmp_path / "part1.jsonl", 1)
    parts.host_part(log, smoke=False, deadline=time.monotonic() + 100.0)  # 150 s expected: no room
    assert ran == []
    assert log.rows() == [
        {"part": 1, "kind": "missing", "key": overlap.key, "reason": "no time left in the part"}
    ]
    monkeypatch.setenv("IQRL_REPORT_ALL", "1")  # both again; the overlap fits 200 s
    failed = {"kind": "overlap", "error": "RuntimeError: boom"}
    monkeypatch.setattr(parts, "host_result", lambda row, device, deadline: ran.append(row) or failed)
    log = parts.RowLog(tmp_path / "part1.jsonl", 1)
    parts.host_part(log, smoke=False, deadline=time.monotonic() + 200.0)
    assert ran == [share, overlap]
    assert [(r["kind"], r["key"]) for r in log.rows()] == [("overlap", share.key), ("overlap", overlap.key)]


SHARE = {"part": 1, "kind": "host_share", "key": "host_share iqrl walker-walk K=16", "device": "cuda:0"}
SHARE.update(act_ms=0.8, act_ops=45.0, act_syncs=1.0, update_ops=1118.5, update_syncs=0.0)
SHARE.update(eval_act_calls_per_step=1.0, eval_s=0.2, eval_s_at_length=4.5)
OVERLAP = {"part": 1, "kind": "overlap", "key": "overlap iqrl cartpole-balance K=16 steps=600"}
OVERLAP.update(collect_s=0.004, update_s=0.02, wall_1_s=0.024, wall_2_s=0.021, hidden=0.75)


def section_of(tmp_path, rows: list[dict]) -> str:
    machine = {
        "kind": "machine",
        "date": "2026-11-29",
        "gpu": "NVIDIA H200",
        "driver": "580",
        "torch": "2.11",
    }
    (tmp_path / "h200.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [machine, *rows]))
    return results.section(results.load_rows(tmp_path))


def test_the_section_shows_committed_host_rows_with_their_device(tmp_path):
    text = section_of(tmp_path, [SHARE, OVERLAP])
    assert (
        "| host_share iqrl walker-walk K=16 | NVIDIA H200 | cuda:0 "
        "| 0.8 | 45.0 | 1.0 | 1118.5 | 0.0 | 1.0 | 4.5 |" in text
    )
    # an overlap row without a device measured on the CPU (`make bench --overlap` on the CPU)
    assert (
        "| overlap iqrl cartpole-balance K=16 steps=600 | NVIDIA H200 | cpu "
        "| 0.004 | 0.02 | 0.024 | 0.021 | 0.75 |" in text
    )
    assert "Not measured on a GPU yet." not in text
    assert "- part 1: host_share" not in text and "- part 1: overlap" not in text


def test_the_section_says_not_measured_without_host_rows_and_shows_a_failure(tmp_path):
    failed = {"part": 1, "kind": "overlap", "key": OVERLAP["key"], "error": "RuntimeError: boom"}
    lines = results.host_lines(results.load_rows(tmp_path) or [{**failed, "gpu": "NVIDIA H200"}])
    assert lines == [
        "Host share of a K-seed group (`make bench --host-share`, per K-seed round: all K seeds' step):",
        "",
        "Not measured on a GPU yet.",
        "",
        "Collection hidden behind the updates by two cohorts (`make bench --overlap`):",
        "",
        "| " + " | ".join(results.OVERLAP_HEADER) + " |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        "| overlap iqrl cartpole-balance K=16 steps=600 | NVIDIA H200 "
        "| failed: RuntimeError: boom |  |  |  |  |  |",
        "",
    ]
    text = section_of(tmp_path, [])
    assert text.count("Not measured on a GPU yet.") == 2
    assert (
        "- part 1: host_share iqrl walker-walk K=16\n- part 1: overlap iqrl cartpole-balance K=16 steps=600"
        in text
    )
