"""`make bench` input checks (throughput itself is measured by `make bench`, never in a test)."""

import pytest

from iqrl.bench import main


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds must be a comma-separated list of ints >= 1"),
    (["--seeds", "a,4"], "--seeds must be a comma-separated list of ints >= 1"),
    (["--agents", "nope"], "unknown agent"),
    (["--tasks", "walker-nope"], "walker-nope"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "b.json").exists()
