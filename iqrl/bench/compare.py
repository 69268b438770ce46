"""`python -m iqrl.bench --compare OLD NEW`: the speed ratios between two bench files.

It imports the standard library only (bench files are JSON lists of rows).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def compare(old_path: str, new_path: str) -> int:
    """Print new/old updates/s per row present in both files; rows in only one are named."""

    def key(r: dict) -> tuple:  # rows of bench files from before `obs` are state rows
        return (
            r["agent"],
            r["task"],
            r["device"],
            r["dtype"],
            r["compile"],
            r.get("seeds", 1),
            r.get("obs", "state"),
        )

    files = []
    for p in (old_path, new_path):  # each file on its own: an error names the one that is bad
        try:
            files.append({key(r): r for r in json.loads(Path(p).read_text())})
        except (OSError, ValueError) as e:
            why = str(e)
        except KeyError as e:
            why = f"a row lacks the field {e}"
        except TypeError:
            why = "not a bench file's JSON list of rows"
        else:
            continue
        print(f"error: cannot read bench file {p}: {why}", file=sys.stderr)
        return 2
    old, new = files
    print(
        f"{'agent':<14} {'task':<12} {'device':<7} {'dtype':<5} {'seeds':>5} {'updates/s old':>14} "
        f"{'new':>8} "
        f"{'ratio':>6}"
    )
    unpaired, unknown = [], 0
    for k, r in new.items():
        if k not in old:
            continue
        if differs := setting_change(old[k], r):
            unpaired.append(f"{label(k)} ({differs})")
            continue
        unknown += RECORDED[0] not in old[k] or RECORDED[0] not in r
        o = old[k]["updates_per_s"]
        ratio = f"{r['updates_per_s'] / o:>5.2f}x" if o else "   n/a"
        print(
            f"{r['agent']:<14} {r['task']:<12} {r['device']:<7} {r['dtype']:<5} {r.get('seeds', 1):>5} "
            f"{o:>14.2f} {r['updates_per_s']:>8.2f} {ratio}"
        )
    if unknown:
        print(
            f"{unknown} pair(s) above include a row that records no --set keys or train_envs (a bench file "
            "from before rows recorded them): make sure both were measured with the same ones"
        )
    if unpaired:
        print(f"not compared, measured with other settings ({len(unpaired)}): {'; '.join(unpaired)}")
    for side, only in (("old", old.keys() - new.keys()), ("new", new.keys() - old.keys())):
        if only:
            print(f"only in the {side} file ({len(only)}): {', '.join(map(label, sorted(only, key=str)))}")
    return 0


#: What a row records of how it was measured beside its key (bench rows from before these record neither).
RECORDED = ("set", "train_envs")


def setting_change(old: dict, new: dict) -> str:
    """How two rows of one key were measured differently ('' where not, or where a row records nothing): a
    rate under other `--set` keys or another number of envs per seed is no measure of a code change."""
    if not all(f in row for f in RECORDED for row in (old, new)):
        return ""
    return "; ".join(f"{f} {old[f]} vs {new[f]}" for f in RECORDED if old[f] != new[f])


def label(key: tuple) -> str:
    a, t, d, dt, _, k, o = key
    return f"{a} {t} {d} {dt} K={k} {o}"
