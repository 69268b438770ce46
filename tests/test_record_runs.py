"""scripts/record_runs.py compare: which recorded variants differ, and whether CHANGES says why."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("record_runs", REPO / "scripts" / "record_runs.py")
record_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(record_runs)


def recording(root: Path, returns: dict[str, float]) -> Path:
    for name, value in returns.items():
        (root / name).mkdir(parents=True)
        (root / name / "eval.csv").write_text(f"env_step,episode_return,wall_time_s\n0,{value},1.5\n")
    return root


def test_compare_tells_expected_differences_from_unexplained_ones(tmp_path, capsys):
    old = recording(tmp_path / "old", {"td3": 1.0, "sac": 2.0, "kseed-sac": 3.0, "mrq": 4.0})
    new = recording(tmp_path / "new", {"td3": 1.0, "sac": 2.5, "kseed-sac": 3.5, "mrq": 4.5, "dqn": 5.0})
    (new / "td3" / "eval.csv").write_text("env_step,episode_return,wall_time_s\n0,1.0,9.9\n")  # time only
    changes = {"evaluation streams": ["sac", "kseed-*"], "seed phases": []}
    assert record_runs.compare(old, new, changes) == 1
    lines = capsys.readouterr().out.splitlines()
    first = "eval.csv row 0 episode_return"
    assert lines == [
        f"kseed-sac            differs as expected (evaluation streams): {first}: 3.0 vs 3.5",
        f"mrq                  DIFFERS, no reason in CHANGES: {first}: 4.0 vs 4.5",
        f"sac                  differs as expected (evaluation streams): {first}: 2.0 vs 2.5",
        "td3                  identical",
        f"dqn                  new variant (not in {old})",
        "CHANGES: evaluation streams: 2 of the 2 variants it names differ",
        "CHANGES: seed phases: 0 of the 0 variants it names differ",
        "1 of 4 identical, 2 differ as CHANGES says, 1 differ unexplained; 1 new",
    ]
    assert record_runs.compare(old, new, {**changes, "a fix": ["mrq"]}) == 0  # every difference explained


def test_every_variant_runs_a_registered_command():
    assert {module for module, _ in record_runs.VARIANTS.values()} == {"train", "multiseed"}
    assert all(any(a.startswith("agent=") for a in args) for _, args in record_runs.VARIANTS.values())
