"""The suite's profile from the file that `IQRL_TEST_CPU=FILE make test` writes (tests/conftest.py: a JSON
line per test, its CPU seconds with the children it waited for, and its wall seconds): the total, the slowest
tests and the files that cost most. CPU seconds change far less with the machine's other load than wall
times do.

    .venv/bin/python scripts/test_profile.py FILE [--top 20]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in open(args.file) if line.strip()]
    cpu, wall = sum(r["cpu_s"] for r in rows), sum(r["wall_s"] for r in rows)
    print(f"{len(rows)} tests: {cpu:.0f} s of CPU, {wall:.0f} s of the workers' wall time")
    print(f"\nthe {args.top} slowest tests (CPU s, wall s):")
    for r in sorted(rows, key=lambda r: -r["cpu_s"])[: args.top]:
        print(f"{r['cpu_s']:8.1f} {r['wall_s']:8.1f}  {r['test']}")
    files, tests = Counter(), Counter()
    for r in rows:
        files[r["test"].split("::")[0]] += r["cpu_s"]
        tests[r["test"].split("[")[0]] += r["cpu_s"]  # a parametrised test's cases together
    print(f"\nthe {args.top} costliest test functions, every case together (CPU s):")
    for name, s in tests.most_common(args.top):
        print(f"{s:8.1f}  {name}")
    print(f"\nthe {args.top} costliest files (CPU s):")
    for name, s in files.most_common(args.top):
        print(f"{s:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
