"""A seed of a K-seed group computes in its own slot of the group's stacks: its place among the command's
`seeds=` in a group as wide as that list, in every process that trains it. A seed's numbers depend on its
slot (its slices' offsets in the stacked tensors select other kernel paths: on this CPU the step-0 evaluation
of seed 3 of `seeds=2,3` differs in the 8th digit between slot 1 of a pair and slot 0 of a lone seed, with
three evaluation episodes side by side), so a group resumed after one of its seeds finished, while another
failed, used to rebuild itself from the seeds left and move them: the resumed seed then ended other than the
uninterrupted run, at float precision, whenever the seed that failed was not the first (which seed fails
first depends on the threads' timing: tests/test_faults.py's K-seed test failed 1 run in 7)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from faults import Faults, only

from iqrl.multiseed import group as group_module
from iqrl.multiseed.runs import main as kseed_main
from iqrl.runfolder.exits import EXIT_FAILED, EXIT_OK
from iqrl.runfolder.layout import TIME_COLUMNS

from conftest import tiny_argv

# three evaluation episodes side by side: each seed's observations [3, 5] in the stacked input, a slot's at an
# offset that is no multiple of 16 bytes (the kernels this CPU picks round such a slot otherwise)
KEYS = ["episode_length=100", "seed_steps=200", "eval_every=200", "diag_every=200", "checkpoint_every=200"]
KEYS += ["eval_episodes=3", "env_workers=false"]


def argv(root) -> list[str]:
    keys = [a for a in tiny_argv("td3", root, steps=600, extra=KEYS) if not a.startswith("seed=")]
    return [*keys, "seeds=2,3"]


def results(run) -> dict[str, list[dict]]:
    out = {}
    for name in ("eval.csv", "train.csv"):
        with open(run / name) as f:
            out[name] = [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]
    return out


@pytest.fixture
def places(monkeypatch) -> list[list[int]]:
    """Each group made: the slot of each of its agents' seeds (their SeedUpdater's), and the stacks' width."""
    made = []
    init = group_module.SeedGroup.__init__

    def recording(self, agents, *args, **kwargs):
        init(self, agents, *args, **kwargs)
        made.append(([a.updater.k for a in agents], self.slots))

    monkeypatch.setattr(group_module.SeedGroup, "__init__", recording)
    return made


@pytest.mark.parametrize("checkpoint", [1, 2])  # seed 3 fails at its first (restarts) or second checkpoint
def test_a_seed_resumed_after_its_partner_finished_keeps_its_slot_and_its_numbers(
    tmp_path, places, checkpoint
):
    """seeds=2,3: seed 3's checkpoint write fails (disk full) at env step 200 x `checkpoint`, seed 2 trains on
    alone to its end; the re-run trains seed 3 alone, in slot 1 of two as before, to the results of the group
    never interrupted, bit for bit."""
    reference, root = tmp_path / "reference", tmp_path / "group"
    assert kseed_main(argv(reference)) == EXIT_OK
    faults = only(Faults(root / "seed3", checkpoint, "enospc"), "write .ckpt").install()
    try:
        assert kseed_main(argv(root)) == EXIT_FAILED
    finally:
        faults.uninstall()
    assert (root / "seed2" / "status.json").read_text().count('"done"') == 1
    assert kseed_main(argv(root)) == EXIT_OK
    assert places == [([0, 1], 2), ([0, 1], 2), ([1], 2)]  # the re-run's group: seed 3 alone, in slot 1
    for s in (2, 3):
        assert results(root / f"seed{s}") == results(reference / f"seed{s}"), f"seed {s}"


# ---------------------------------------------------------------------- a packed job of seeds (slurm/pack.py)
SEEDS_STARTED: list[list[str]] = []


def record_seeds(argv, should_stop=None) -> int:
    """The K-seed command a packed job starts, recorded (its `seeds_entry` in the test below)."""
    SEEDS_STARTED.append(list(argv))
    return EXIT_OK


def test_a_packed_jobs_seeds_keep_their_places_when_some_are_done(tmp_path):
    """A packed job of seeds 0, 1, 2 in seeds mode, seed 0 done: its K-seed command still lists seed 0 (which
    it skips, keeping its place), and a requeue keeps the done run for that (beside the interrupted ones)."""
    from slurm.pack import Pack
    from slurm.run import Run

    import fake_trainer

    dirs = [tmp_path / "root" / f"seed{s}" for s in range(3)]
    for d, state in zip(dirs, ("done", "interrupted", None)):
        d.mkdir(parents=True)
        if state:
            fake_trainer._status(d, state, 100, 1000)
    runs = tuple(Run(str(d), ("agent=td3", f"seed={s}", f"out={d}")) for s, d in enumerate(dirs))
    pack = Pack(runs, mode="seeds", seeds_entry="test_kseed_slots:record_seeds")
    SEEDS_STARTED.clear()
    pack()
    assert SEEDS_STARTED == [["agent=td3", "seeds=0,1,2", f"out={tmp_path / 'root'}"]]
    again = pack.checkpoint().function
    assert [Path(r.run_dir).name for r in again.runs] == ["seed0", "seed1", "seed2"]
