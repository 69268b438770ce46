"""The list of shipped sweep files in the docs, written from ablations/*.yaml: `make switches`.

A page holds the list between `<!-- sweeps:files -->` and `<!-- /sweeps -->`: one line per sweep file, with
its agents, tasks and seeds as `make sweep` expands them and the first sentence of its header comment. A sweep
file added, removed or changed without `make switches` fails tests/test_sweep_docs.py.

    python -m slurm.sweep_docs            # rewrite the list in README.md and docs/*.md
    python -m slurm.sweep_docs --check    # exit 1, naming the pages that differ from what it writes
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from iqrl.agent_docs import ROOT, pages
from slurm.spec import load_sweep
from slurm.submit import default_task_groups

MARKED = re.compile(r"(<!-- sweeps:files -->)(.*?)(<!-- /sweeps -->)", re.S)
ABLATIONS = ROOT / "ablations"


def headline(path: Path) -> str:
    """The first sentence of the file's leading comment: up to the first `.`, `:` or `?` outside brackets."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text, depth = " ".join(lines), 0
    for k, c in enumerate(text):
        depth += (c in "([") - (c in ")]")
        if depth == 0 and c in ".:?" and (k + 1 == len(text) or text[k + 1] == " "):
            return text[: k + (c == "?")]
    return text


def count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def sweep_list(folder: Path = ABLATIONS) -> str:
    """One line per sweep file of `folder`: its name, agents, tasks, seeds and headline."""
    lines = []
    for path in sorted(folder.glob("*.yaml")):
        sweep = load_sweep(path, default_task_groups())
        size = ", ".join(
            (
                count(len(sweep.agents), "agent"),
                count(len(sweep.tasks), "task"),
                count(len(sweep.seeds), "seed"),
            )
        )
        lines.append(f"- `{path.name}` ({size}): {headline(path)}")
    return "\n\n" + "\n".join(lines) + "\n\n"


def written(text: str, folder: Path = ABLATIONS) -> str:
    return MARKED.sub(lambda m: m[1] + sweep_list(folder) + m[3], text)


def stale(root: Path, folder: Path = ABLATIONS) -> list[Path]:
    """The pages under `root` whose list differs from what the sweep files of `folder` give."""
    return [p for p in pages(root) if (t := p.read_text()) != written(t, folder)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurm.sweep_docs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a page is not up to date")
    args = parser.parse_args(argv)
    old = stale(ROOT)
    if args.check:
        if old:
            shown = ", ".join(str(p.relative_to(ROOT)) for p in old)
            print(f"the sweep lists of {shown} are not up to date: run `make switches`", file=sys.stderr)
        return int(bool(old))
    for p in old:
        p.write_text(written(p.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
