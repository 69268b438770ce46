"""pytest plugin of the GPU report's part 1 (`pytest -p apps.gpu_report.pytest_rows`): one JSON row per test
appended to the file that IQRL_REPORT_ROWS names, as each test ends, so a run cut off keeps its outcomes.
Every collected test first gets a row with outcome `collected`: one never reached keeps that outcome."""

from __future__ import annotations

import json
import os

ROWS_ENV = "IQRL_REPORT_ROWS"


def write(row: dict) -> None:
    path = os.environ.get(ROWS_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"part": 1, "kind": "test", **row}) + "\n")


def pytest_collection_finish(session) -> None:
    """The tests that will run: after `--deselect` (part 1 leaves out those that passed before)."""
    for item in session.items:
        write({"test": item.nodeid, "outcome": "collected"})


def pytest_runtest_logreport(report) -> None:
    """The call's outcome, and setup's or teardown's where they did not pass (a skip is setup's)."""
    if report.when != "call" and report.passed:
        return
    row = {"test": report.nodeid, "outcome": report.outcome, "when": report.when}
    row["seconds"] = round(report.duration, 2)
    if report.skipped and isinstance(report.longrepr, tuple):
        row["reason"] = report.longrepr[2]
    elif report.failed:
        lines = report.longreprtext.strip().splitlines() or [""]
        row["reason"] = lines[-1][:300]
        # pytest's "E   " lines: the assertion's message (which agent, update, metric), kept even when the
        # part's budget kills pytest before its failure summary is printed
        row["detail"] = "\n".join(line[4:] for line in lines if line.startswith("E   "))[:4000]
    write(row)
