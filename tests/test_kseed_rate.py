"""A K-seed group's closing line counts what this process ran: after a resume, the env steps its seeds trained
since their checkpoint, not the whole run's (status.json holds the run's)."""

from __future__ import annotations

import json
import re

from iqrl.multiseed.runs import main as kseed_main
from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK

from conftest import stop_after_steps, tiny_argv

SHORT = ["episode_length=100", "seed_steps=200", "eval_every=200", "diag_every=200", "checkpoint_every=200"]


def group_steps(out: str) -> int:
    (steps,) = re.findall(r"^group of 2 seeds: (\d+) env steps in [\d.]+ s, \d+ env steps/s", out, re.M)
    return int(steps)


def test_a_resumed_group_rates_only_the_env_steps_this_process_trained(tmp_path, capsys):
    root = tmp_path / "group"
    argv = [a for a in tiny_argv("td3", root, steps=600, extra=SHORT) if not a.startswith("seed=")]
    argv += ["seeds=1,2", "env_workers=false"]
    # each seed asks after each of its agent steps: the group stops at one env step, with a checkpoint there
    assert kseed_main(argv, should_stop=stop_after_steps(150)) == EXIT_INTERRUPTED
    stopped = [json.loads((root / f"seed{s}" / "status.json").read_text())["env_step"] for s in (1, 2)]
    assert stopped[0] == stopped[1] and 0 < stopped[0] < 600
    assert group_steps(capsys.readouterr().out) == 2 * stopped[0]
    assert kseed_main(argv) == EXIT_OK
    assert group_steps(capsys.readouterr().out) == 2 * (600 - stopped[0])  # not 2 x 600
