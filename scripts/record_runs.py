"""Short runs of every agent and switch variant, recorded to compare two versions of the code bit for bit.

    python scripts/record_runs.py record OUT [--only NAME,...] [--jobs 2]
    python scripts/record_runs.py compare OLD NEW

`record` trains each variant of `VARIANTS` (reacher-easy, seed 3, 2400 env steps, tiny networks, CPU, one
thread per run) through the command lines a user runs (`python -m iqrl.train`, and `python -m
iqrl.multiseed` for the K-seed rows) into OUT/<name>. `compare` says, per variant, whether every eval.csv
and train.csv of NEW equals OLD's, the columns that measure time (iqrl.runfolder.layout.TIME_COLUMNS: wall
time, throughput, the time split) left out, and names the first cell that differs; beside a variant that
differs, the reasons `CHANGES` gives for it. Exit status 1 when a variant differs for no reason given there
(or is missing).

For a change that must not move any number (a refactor): record before, change, record again, compare.
A change that moves numbers on purpose says which and why in `CHANGES`, so that `compare` tells its
expected differences from the others.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from iqrl.runfolder.layout import TIME_COLUMNS

REPO = Path(__file__).resolve().parents[1]

RUN = [
    "task=reacher-easy",
    "steps=2400",
    "episode_length=400",
    "seed_steps=800",
    "eval_every=800",
    "eval_episodes=2",
    "diag_every=400",
    "checkpoint_every=1200",
    "agent.batch_size=16",
]
SMALL = ["agent.mlp_dims=[32,32]"]
LATENT = [*SMALL, "agent.latent_dim=8", "agent.enc_mlp_dims=[32]"]
MPPI = ["agent.num_samples=32", "agent.num_pi_trajs=4", "agent.num_elites=8", "agent.iterations=2"]
PIXELS = ["obs=pixels", "image_size=32", "frame_stack=2"]

#: name -> (command module, arguments). Every agent, the switches that change an update's steps, the
#: run keys that change how an update runs (compile, precision, pixels, perturbations), and the K-seed mode.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "iqrl": ("train", ["agent=iqrl", *LATENT]),
    "iqrl-official": ("train", ["agent=iqrl-official", *LATENT]),
    "iqrl-ae": ("train", ["agent=iqrl-ae", *LATENT]),
    "iqrl-ae-rec-only": ("train", ["agent=iqrl-ae", *LATENT, "agent.use_tc_loss=false"]),
    "iqrl-sac": ("train", ["agent=iqrl-sac", *LATENT]),
    "iqrl-vq": ("train", ["agent=iqrl", *LATENT, "agent.quantizer=vq"]),
    "iqrl-simnorm": ("train", ["agent=iqrl", *LATENT, "agent.quantizer=simnorm"]),
    "iqrl-heads": (
        "train",
        ["agent=iqrl", *LATENT, "agent.use_rew_loss=true", "agent.use_projection=true", "agent.nstep=3"],
    ),
    "iqrl-compiled": ("train", ["agent=iqrl", *LATENT, "compile=true"]),
    "iqrl-bf16": ("train", ["agent=iqrl", *LATENT, "precision=bf16"]),
    "iqrl-perturbed": ("train", ["agent=iqrl", *LATENT, "obs_noise=0.1", "sticky_actions=0.1"]),
    "iqrl-pixels": ("train", ["agent=iqrl", *LATENT, *PIXELS]),
    "td3": ("train", ["agent=td3", *SMALL]),
    "td3-pixels": ("train", ["agent=td3", *SMALL, *PIXELS, "agent.feature_dim=8", "agent.image_pad=2"]),
    "sac": ("train", ["agent=sac", *SMALL]),
    "td7": ("train", ["agent=td7", *SMALL, "agent.zs_dim=16", "agent.enc_mlp_dims=[32,32]"]),
    "td7-no-checkpoints": (
        "train",
        ["agent=td7", *SMALL, "agent.zs_dim=16", "agent.enc_mlp_dims=[32,32]", "agent.use_checkpoints=false"],
    ),
    "mrq": (
        "train",
        [
            "agent=mrq",
            *SMALL,
            "agent.zs_dim=16",
            "agent.za_dim=8",
            "agent.zsa_dim=16",
            "agent.enc_mlp_dims=[32,32]",
            "agent.target_update_every=50",
        ],
    ),
    "mrq-pixels": (
        "train",
        [
            "agent=mrq",
            *SMALL,
            *PIXELS,
            "agent.zs_dim=16",
            "agent.za_dim=8",
            "agent.zsa_dim=16",
            "agent.target_update_every=50",
        ],
    ),
    "tcrl": ("train", ["agent=tcrl", *LATENT]),
    "taco": ("train", ["agent=taco", *SMALL, "agent.state_enc_dims=[32]", "agent.feature_dim=16"]),
    "taco-pixels": ("train", ["agent=taco", *SMALL, *PIXELS, "agent.feature_dim=16"]),
    "sac-ae": ("train", ["agent=sac-ae", *SMALL, "agent.feature_dim=8"]),
    "sac-ae-pixels": ("train", ["agent=sac-ae", *SMALL, *PIXELS, "agent.feature_dim=8"]),
    "sac-ae-no-decoder": (
        "train",
        ["agent=sac-ae", *SMALL, "agent.feature_dim=8", "agent.use_decoder=false"],
    ),
    "dreamerv3": (
        "train",
        [
            "agent=dreamerv3",
            "agent.deter=32",
            "agent.hidden=16",
            "agent.units=32",
            "agent.batch_length=8",
            "agent.train_ratio=64",
        ],
    ),
    "dcwm": ("train", ["agent=dcwm", *LATENT, *MPPI]),
    "dcwm-mf": ("train", ["agent=dcwm", *LATENT, "agent.mpc=false"]),
    "dcwm-compiled": ("train", ["agent=dcwm", *LATENT, *MPPI, "compile=true"]),
    "kseed-iqrl": ("multiseed", ["seeds=3,4", "agent=iqrl", *LATENT]),
    "kseed-iqrl-sac": ("multiseed", ["seeds=3,4", "agent=iqrl-sac", *LATENT]),
    "kseed-td3": ("multiseed", ["seeds=3,4", "agent=td3", *SMALL]),
    "kseed-sac": ("multiseed", ["seeds=3,4", "agent=sac", *SMALL]),
    "kseed-sac-pixels": ("multiseed", ["seeds=3,4", "agent=sac", *SMALL, *PIXELS, "agent.feature_dim=8"]),
}


#: Why recorded numbers move on purpose: a reason -> the variants it changes (names or fnmatch patterns;
#: "*" every variant). `compare` prints each reason beside the variants it names that differ; a difference no
#: reason covers is unexplained (exit status 1). A change that moves numbers adds its entry here, saying
#: what changed; an entry whose variants a later baseline records already changed may go.
CHANGES: dict[str, list[str]] = {
    # Seed phases (seed_steps' default the agent's code's): every variant here sets seed_steps=800, so none
    # should move; listed to say so.
    "seed phases: the default of seed_steps is the agent's code's (RUN sets seed_steps, so no variant)": [],
    # Evaluation's own generator (docs/run-folder.md, "Evaluation"): no variant's evaluation drew from the
    # training generator at its defaults (mrq's and dr-q's official_gumbel_eval=true would, none is recorded).
    "evaluation streams: acting while evaluating draws from the agent's eval_generator (no variant)": [],
    # Evaluations from (seed, env step) (eval_reseed, docs/run-folder.md "Evaluation"): every evaluation's
    # episodes start from other initial states (step 0's too), so every eval.csv changes; no train.csv does.
    "eval_reseed: each evaluation starts from (seed, env step): every variant's eval.csv, no train.csv": [
        "*"
    ],
    # Acting in one forward (Updater.act): a K-seed group's seeds act through one batched forward over the
    # stacked networks, whose kernels round otherwise than a seed's own; single runs compute as before.
    "K-seed acting: the seeds' actions in one batched forward, rounded otherwise (the K-seed variants)": [
        "kseed-*"
    ],
}


def reasons_for(name: str, changes: dict[str, list[str]] = CHANGES) -> list[str]:
    """The reasons `changes` gives for variant `name` to differ."""
    return [why for why, names in changes.items() if any(fnmatch.fnmatchcase(name, n) for n in names)]


def record_one(name: str, out: Path) -> tuple[str, int, float]:
    module, args = VARIANTS[name]
    run = out / name
    seed = [] if module == "multiseed" else ["seed=3"]
    cmd = [sys.executable, "-m", f"iqrl.{module}", *args, *RUN, *seed, f"out={run}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    t = time.time()
    log = out / f"{name}.log"
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    return name, rc, time.time() - t


def record(out: Path, names: list[str], jobs: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with ThreadPoolExecutor(jobs) as pool:
        for name, rc, seconds in pool.map(lambda n: record_one(n, out), names):
            print(
                f"{name:<20} {'ok' if rc == 0 else f'FAILED (exit {rc}, {out / name}.log)'} {seconds:.0f} s"
            )
            failed += rc != 0
    return 1 if failed else 0


def table(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(f)]


def csv_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*.csv"))


def compare_one(old: Path, new: Path) -> str | None:
    """None when every CSV of the two run folders agrees (time columns aside), else the first difference."""
    files = csv_files(old)
    if files != csv_files(new):
        return f"other files: {[str(f) for f in files]} vs {[str(f) for f in csv_files(new)]}"
    if not files:
        return "no CSV files"
    for f in files:
        a, b = table(old / f), table(new / f)
        if len(a) != len(b):
            return f"{f}: {len(a)} rows vs {len(b)}"
        for i, (ra, rb) in enumerate(zip(a, b)):
            if list(ra) != list(rb):
                return f"{f}: columns {list(ra)} vs {list(rb)}"
            for k in ra:
                if ra[k] != rb[k]:
                    return f"{f} row {i} {k}: {ra[k]} vs {rb[k]}"
    return None


def compare(old: Path, new: Path, changes: dict[str, list[str]] = CHANGES) -> int:
    """Per variant of OLD: identical, or what differs first and the reasons `changes` gives for it (or that it
    gives none); then the variants only NEW holds. 1 when a difference is unexplained, else 0."""
    names = sorted(p.name for p in old.iterdir() if p.is_dir())
    expected = unexplained = 0
    moved: dict[str, int] = dict.fromkeys(changes, 0)  # per reason, its variants that differ
    for name in names:
        what = (
            compare_one(old / name, new / name) if (new / name).is_dir() else "missing in the new recording"
        )
        reasons = reasons_for(name, changes) if (new / name).is_dir() else []
        if what is None:
            print(f"{name:<20} identical")
        elif reasons:
            print(f"{name:<20} differs as expected ({'; '.join(reasons)}): {what}")
            expected += 1
            for why in reasons:
                moved[why] += 1
        else:
            print(f"{name:<20} DIFFERS, no reason in CHANGES: {what}")
            unexplained += 1
    added = sorted(p.name for p in new.iterdir() if p.is_dir() and not (old / p.name).is_dir())
    for name in added:
        print(f"{name:<20} new variant (not in {old})")
    for why, n in moved.items():
        named = [v for v in names if reasons_for(v, {why: changes[why]})]
        print(f"CHANGES: {why}: {n} of the {len(named)} variants it names differ")
    same = len(names) - expected - unexplained
    print(
        f"{same} of {len(names)} identical, {expected} differ as CHANGES says, {unexplained} differ "
        "unexplained" + (f"; {len(added)} new" if added else "")
    )
    return 1 if unexplained else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    r.add_argument("--jobs", type=int, default=2)
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "compare":
        return compare(args.old, args.new)
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"error: unknown variants {unknown}; valid: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    return record(args.out, names, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
