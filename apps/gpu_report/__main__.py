"""python -m apps.gpu_report: `make gpu-report` and `make gpu-wheels`.

    python -m apps.gpu_report part first|1|2|3|all --out DIR [--smoke] [--budget-s S] [--full]
    python -m apps.gpu_report wheels [--python 3.12] [--glibc 2.28] [--out .whl] [--no-gl]
    python -m apps.gpu_report collect DIR     # a GPU's part*.jsonl -> docs/gpu-results/, then `doc`
    python -m apps.gpu_report doc [--check]   # regenerate the GPU section of docs/performance.md

`part`: on a GPU machine (docs/performance.md, "On a GPU"); `first` is the GPU's first command (the captured
group's check at paper sizes, then a trained policy evaluated where the published curve has points:
apps/gpu_report/first.py; it needs CUDA); `--smoke` runs every
part on the CPU at tiny sizes (what `make test` checks); part 2 measures the campaigns' end-to-end rows
(apps/gpu_report/plan.py, campaign_rows), and with `--full` every agent in every mode and precision too. Each
part writes DIR/part<N>.jsonl as it goes (the first command: DIR/part0.jsonl) and ends with a summary table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    part = sub.add_parser("part", help="run part 1, 2, 3 or all of them")
    part.add_argument("part", choices=["first", "1", "2", "3", "all"])
    part.add_argument("--out", type=Path, default=Path("gpu-report"))
    part.add_argument("--smoke", action="store_true", help="on the CPU at tiny sizes")
    part.add_argument(
        "--budget-s", type=float, default=None, help="seconds per part (default: 480; the smoke: none)"
    )
    part.add_argument(
        "--full",
        action="store_true",
        help="part 2: every planned row, not only the campaigns' end-to-end ones",
    )
    wheels = sub.add_parser("wheels", help="the wheel set the GPU machine lacks, and its GL libraries")
    wheels.add_argument("--python", default="3.12", help="the GPU machine's Python, major.minor")
    wheels.add_argument("--glibc", default="2.28", help="the newest manylinux glibc tag to accept")
    wheels.add_argument("--out", type=Path, default=Path(".whl"))
    wheels.add_argument("--no-gl", action="store_true", help="leave out the GL libraries (.gl/, pixel rows)")
    collect = sub.add_parser("collect", help="merge the rows of a GPU's parts into docs/gpu-results/")
    collect.add_argument("src", type=Path)
    doc = sub.add_parser("doc", help="regenerate the GPU section of docs/performance.md")
    doc.add_argument("--check", action="store_true", help="exit 1 if the section is out of date")
    args = p.parse_args(argv)
    if args.command == "part" and args.part == "first":
        from apps.gpu_report.first import run_first

        return run_first(args.out, args.smoke, args.budget_s)
    if args.command == "part":
        from apps.gpu_report.parts import run_part

        for n in [1, 2, 3] if args.part == "all" else [int(args.part)]:
            if rc := run_part(n, args.out, args.smoke, args.budget_s, args.full):
                return rc
        return 0
    if args.command == "wheels":
        from apps.gpu_report.wheels import prepare

        return prepare(args.out, args.python, args.glibc, gl=not args.no_gl)
    from apps.gpu_report import results

    try:  # collect, doc: a fault of a file read or written is one line naming it
        if args.command == "collect":
            print(f"wrote {results.collect(args.src, results.RESULTS)}")
        rows = results.load_rows(results.RESULTS)
        if getattr(args, "check", False):
            stale = results.out_of_date(rows, results.PERFORMANCE_MD)
            print("docs/performance.md's GPU section is " + ("out of date" if stale else "up to date"))
            return int(stale)
        changed = results.write_doc(rows, results.PERFORMANCE_MD)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("docs/performance.md: GPU section " + ("regenerated" if changed else "unchanged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
