"""The rows a GPU report commits (docs/gpu-results/<gpu>-<date>.jsonl, one machine's rows of one day): the
keys each kind of row carries and reading them, which rows' rates stand, and the tests of tests/test_cuda.py
whose passes let a compile mode train. A GPU report writes and summarises them; sweep projections price
runs by their rates and read from them which K-seed modes a GPU verified.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Part 1's tests that a compile mode's update matches the eager one on the GPU, by mode (`compile=`): of one
#: agent (K = 1), and of a K-seed group (the report's part 3, and a sweep's K-seed groups, train only in modes
#: they passed). A captured group counts only by the test at paper sizes (16 seeds, 12 updates, every
#: piece replayed): a 2-seed tiny group's pass said nothing of the groups the bench timed.
MATCH_TEST = "tests/test_cuda.py::test_cuda_compiled_and_graph_captured_updates_match_eager[{}]"
GROUP_MATCH_TEST = "tests/test_cuda.py::test_cuda_compiled_and_graph_captured_k_seed_group_matches_eager[{}]"
GROUP_GRAPHS_TEST = (
    "tests/test_cuda.py::test_cuda_graph_captured_k_seed_group_replays_the_compiled_one_at_paper_sizes"
)
MODE_TESTED_BY = {"true": "False", "cudagraphs": "True"}


def group_match_test(mode: str) -> str:
    """The test whose pass lets a K-seed group train in compile mode `mode` ("true", "cudagraphs")."""
    return GROUP_GRAPHS_TEST if mode == "cudagraphs" else GROUP_MATCH_TEST.format(MODE_TESTED_BY[mode])


def rate_stands(row: dict) -> bool:
    """Whether a bench row's rate may be used (projections, the learning run's mode, a part's list of what is
    done): it ran without error, and is neither `stale` (timed by code since fixed: measured again by the next
    GPU) nor flagged (`flag`: its peak memory below what a completed update holds)."""
    return row.get("kind") == "bench" and not {"error", "stale", "flag"} & set(row)


def run_row_stands(row: dict) -> bool:
    """An end-to-end row (`make bench --end-to-end`, kind `run`) that measured a rate."""
    return row.get("kind") == "run" and not {"error", "stale"} & set(row) and bool(row.get("env_steps_per_s"))


def latest_test_outcomes(rows: list[dict]) -> dict[str, str]:
    """{test id: its last outcome}: `not reached` for a test the part collected but never ran (cut off)."""
    out: dict[str, str] = {}
    for r in rows:
        if r["kind"] == "test" and (r["outcome"] != "passed" or out.get(r["test"]) in (None, "not reached")):
            out[r["test"]] = "not reached" if r["outcome"] == "collected" else r["outcome"]
    return out


#: The keys the section reads of a row of each kind (besides `part`, which every row but a committed
#: file's machine row has); a failed row (`error`) has only the first of its kind's.
ROW_KEYS = {
    "machine": ("gpu", "date"),
    "test": ("test", "outcome"),
    "bench": (
        *("key", "seeds", "packed", "updates_per_s", "env_steps_per_s"),
        *("hours_per_1m", "ops_per_update", "compile_s", "peak_mem_mb"),
    ),
    "learn": ("key", "mode", "seeds", "env_steps", "wall_s"),
    "host_share": (
        *("key", "device", "act_ms", "act_ops", "act_syncs", "update_ops", "update_syncs"),
        *("eval_act_calls_per_step", "eval_s_at_length"),
    ),
    "overlap": ("key", "collect_s", "update_s", "wall_1_s", "wall_2_s", "hidden"),
}


#: How much of a row read_jsonl checks: what names it (its kind's first key), also its `part` (what a merge
#: reads: row_id), or also what the section reads of it (ROW_KEYS).
CHECKS = ("name", "merge", "section")


def missing_keys(row: dict, check: str) -> list[str]:
    """The keys `row` lacks of those `check` (CHECKS) needs."""
    need = ROW_KEYS.get(row["kind"], ())
    need = need if check == "section" and "error" not in row else need[:1]
    part = ("part",) if check != "name" and row["kind"] != "machine" else ()
    return [k for k in (*part, *need) if k not in row]


def read_jsonl(path: Path, cut_tail: bool = False, check: str = "name") -> list[dict]:
    """The rows of a JSON-lines file. ValueError (one line naming the file, and the line where one is at
    fault) for bytes that are not text, a line that is not a JSON object, or a row without the keys
    `check` needs (CHECKS, `missing_keys`). With `cut_tail` a last line cut
    off mid-write (a part killed while writing its row: no newline at its end) is left out, with a
    warning."""
    try:
        text = path.read_bytes().decode()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: bytes that are not UTF-8 text, not rows of JSON") from None
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if cut_tail and number == len(lines):  # the last line, with no newline after it
                print(f"warning: {path} line {number}: cut off mid-row ({e.msg}); left out", file=sys.stderr)
                continue
            raise ValueError(f"{path} line {number}: not a JSON row ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("kind"), str):
            raise ValueError(f"{path} line {number}: a row is a JSON object with a `kind`, got {line[:60]!r}")
        if missing := missing_keys(row, check):
            raise ValueError(f"{path} line {number}: a {row['kind']} row without {', '.join(missing)}")
        rows.append(row)
    return rows
