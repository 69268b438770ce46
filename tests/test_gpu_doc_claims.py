"""The figures that docs/performance.md's "On a GPU" derives by hand from its eager H100 table, recomputed
from that table (the section's other figures are generated from docs/gpu-results and checked)."""

from __future__ import annotations

import re
from pathlib import Path

PERFORMANCE_MD = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def h100_rows() -> list[dict]:
    """The eager H100 table's rows: agent, dtype, K, updates/s per seed (each run's figure: a cell may hold a
    second run's in brackets), all seeds, ops per update."""
    text = PERFORMANCE_MD.read_text()
    table = text[text.index("| agent | dtype | K seeds |") :].split("\n\n")[0].splitlines()[2:]
    rows = []
    for line in table:
        agent, dtype, k, per_seed, all_seeds, ops, _ = [c.strip() for c in line.strip("|").split("|")]
        runs = [float(x) for x in re.findall(r"\d+\.\d+", per_seed)]
        rows.append(
            {"agent": agent, "dtype": dtype, "k": int(k), "runs": runs, "all": float(all_seeds)}
            | {"ops": float(ops) if ops else None}
        )
    return rows


def claim(pattern: str) -> tuple[str, ...]:
    found = re.search(pattern, " ".join(PERFORMANCE_MD.read_text().split()))
    assert found, pattern
    return found.groups()


def test_the_cost_per_operator_and_per_update_are_the_tables():
    rows = [r for r in h100_rows() if r["ops"]]
    per_op = [1e6 / (rate * r["ops"]) for r in rows for rate in r["runs"]]
    low, high = claim(r"every row above costs (\d+)-([\d.]+) µs per operator")
    assert (round(min(per_op)), round(max(per_op), 1)) == (int(low), float(high))
    iqrl = [r for r in rows if r["agent"] == "iqrl" and r["dtype"] == "fp32"][0]
    td3 = [r for r in rows if r["agent"] == "td3" and r["dtype"] == "fp32"][0]
    ops, low, high, td3_ops, td3_ms = claim(
        r"iqrl's (\d+) operators about (\d+)-(\d+) ms, td3's (\d+) about (\d+) ms"
    )
    assert (round(iqrl["ops"]), round(td3["ops"])) == (int(ops), int(td3_ops))
    assert sorted(round(1000 / rate) for rate in iqrl["runs"]) == [int(low), int(high)]
    assert round(1000 / td3["runs"][0]) == int(td3_ms)


def test_sixteen_seeds_throughput_against_one_in_the_same_run():
    """The K-seed rows are the second run's (`--seeds 1,2,4,8,16`): K = 1 there is the bracketed figure."""
    rows = {(r["agent"], r["dtype"], r["k"]): r for r in h100_rows()}
    one, sixteen = rows[("iqrl", "fp32", 1)]["runs"][-1], rows[("iqrl", "fp32", 16)]
    ratio, per_seed = claim(
        r"16 seeds in one process give ([\d.]+)x the throughput of one in the same run \(([\d.]+)"
    )
    assert round(sixteen["all"] / one, 1) == float(ratio) and sixteen["runs"] == [float(per_seed)]
