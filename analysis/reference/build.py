"""`make reference`: the published-curves tables of analysis/reference/data, built again from released files.

    python -m analysis.reference.build [--out build/reference] [--from FOLDER] [--raw FOLDER]

Every released file the tables use (analysis.reference.sources) is downloaded from its repository at its
commit (kept in --raw, default OUT/raw) or, with --from, found in FOLDER as `<owner>/<repo>/<path>` (the
layout of --raw), and must have its recorded sha256. A file missing or altered is one `error:` line naming it
and its source, exit status 2, before any table is written. Then every table is built with the readers of
analysis.reference.released and analysis.reference.released_dmc, written into OUT (gzip level 9 without a
timestamp, so the same files give the same bytes) with PROVENANCE.md, and compared with the shipped table of
the same name: built from the files recorded, each is identical to it byte for byte, and the command says so
per table."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analysis.errors import AnalysisError
from analysis.reference.released import (
    read_bbf_scores,
    read_dreamerv3_scores,
    read_drq_results,
    read_mrq_results,
    read_simba_results,
)
from analysis.reference.released_dmc import read_dcmpc_results, read_iqrl_draft, read_tcrl_results
from analysis.reference.sources import SOURCES, Source
from analysis.reference.table import SHIPPED

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "build" / "reference"
ORDER = ["source", "algorithm", "task", "seed", "env_step"]


def build_tables(root: Path) -> dict[str, pd.DataFrame]:
    """The tables from the released files under `root` (`<owner>/<repo>/<path>`), each in the published-curves
    layout (analysis.reference.table), rows sorted by source, algorithm, task, seed and env step."""
    dmc, suites = read_dcmpc_results(root / "aidanscannell/dcmpc/results/data")
    draft = root / "aidanscannell/iqrl-minimal/paper/figs/plotting/baseline-comparison"
    mrq = root / "facebookresearch/MRQ/results"
    tables = {
        "published_dmc.csv.gz": [dmc, read_tcrl_results(root / "zhaoyi11/tcrl/results/tcrl.csv")]
        + [read_iqrl_draft(draft)],
        "published_suites.csv.gz": [suites],
        "simbav2.csv.gz": [read_simba_results(root / "dojeon-ai/SimbaV2/results")],
        "drq.csv.gz": [read_drq_results(root / "dmksjfl/DR.Q/results")],
        "mrq.csv.gz": [
            read_mrq_results(mrq / "gym_results.txt"),
            read_mrq_results(mrq / "atari_results.txt"),
        ],
        "bbf.csv.gz": [
            read_bbf_scores(root / "google-research/google-research/bigger_better_faster/scores/RR8_BBF.csv")
        ],
        "dreamerv3.csv.gz": [read_dreamerv3_scores(root / "danijar/dreamerv3/scores")],
    }
    return {
        name: pd.concat(parts, ignore_index=True).sort_values(ORDER, kind="stable", ignore_index=True)
        for name, parts in tables.items()
    }


def table_bytes(df: pd.DataFrame) -> bytes:
    """A table as the shipped file holds it: CSV (floats as Python writes them, the shortest decimal that
    reads back as the same double), gzip level 9 with no name and no timestamp: the bytes depend on the rows
    only."""
    return gzip.compress(df.to_csv(index=False, lineterminator="\n").encode(), compresslevel=9, mtime=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gather(
    sources: tuple[Source, ...], from_dir: Path | None, raw: Path, fetch: Callable[[str], bytes]
) -> dict[str, bytes]:
    """{`<repo>/<path>`: its bytes} of every released file, each with its recorded sha256: from `from_dir`
    when given, else from `raw` where an earlier download left it, else downloaded with `fetch(url)` and kept
    in `raw`. AnalysisError (one line: the first file missing or altered, its source, and how many more) when
    one is not there or differs."""
    found, problems = {}, []
    for source in sources:
        for path, expected in source.files.items():
            key = f"{source.repo}/{path}"
            local = (from_dir or raw) / key
            data = local.read_bytes() if local.is_file() else None
            if data is None and from_dir is not None:
                problems.append(f"{local} is missing (the file of {source.url(path)}, sha256 {expected})")
                continue
            if data is None or (sha256(data) != expected and from_dir is None):
                try:
                    data = fetch(source.url(path))
                except (OSError, urllib.error.URLError) as exc:
                    problems.append(
                        f"cannot download {key} from {source.url(path)} ({getattr(exc, 'reason', exc)}): "
                        f"put the file at {local}, or build offline with FROM=<folder of the released files>"
                    )
                    continue
                if sha256(data) == expected:
                    write_atomic(local, data)
            if sha256(data) != expected:
                where = f"{local} has" if from_dir else f"{source.url(path)} sent a file with"
                problems.append(
                    f"{where} sha256 {sha256(data)}, not {expected}: not the file of {source.url(path)}"
                )
                continue
            found[key] = data
    if problems:
        more = f" (and {len(problems) - 1} more file(s) missing or altered)" if len(problems) > 1 else ""
        raise AnalysisError(problems[0] + more)
    return found


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def provenance(sources: tuple[Source, ...], tables: dict[str, pd.DataFrame]) -> str:
    """PROVENANCE.md: each table's rows and sources, then each source's repository, commit, licence, files
    (path, sha256, URL), and what the tables keep and drop of it."""
    lines = [
        "# Provenance of the published-curves tables",
        "",
        "Written by `make reference` (analysis/reference/build.py) from analysis/reference/sources.py; do "
        "not edit. `make reference` downloads every file below at its commit, checks its sha256 and builds "
        "these tables again; `make reference FROM=<folder>` does it offline from copies laid out as "
        "`<folder>/<owner>/<repo>/<path>`. The layout of the tables: analysis/reference/table.py; how the "
        "figures use them: docs/figures.md.",
        "",
        "| table | rows | sources |",
        "|---|---|---|",
    ]
    for name, df in tables.items():
        lines.append(
            f"| `{name}` | {len(df)} | {', '.join(f'`{s}`' for s in sorted(df['source'].unique()))} |"
        )
    for source in sources:
        lines += [
            "",
            f"## {source.repo} at {source.commit[:7]}",
            "",
            f"- repository: https://github.com/{source.repo} at commit `{source.commit}`",
            f"- licence: {source.licence}",
            f"- tables: {', '.join(f'`{t}`' for t in source.tables)} (source {', '.join(source.sources)})",
            "- files:",
        ]
        lines += [f"  - `{path}` sha256 `{sha}` ({source.url(path)})" for path, sha in source.files.items()]
        lines += [f"- {note}" for note in source.notes]
    return "\n".join(lines) + "\n"


def build(
    out: Path,
    from_dir: Path | None = None,
    raw: Path | None = None,
    sources: tuple[Source, ...] = SOURCES,
    fetch: Callable[[str], bytes] = download,
    shipped: Path = SHIPPED,
) -> list[str]:
    """Gather and check the released files (`gather`), build the tables, write them and PROVENANCE.md into
    `out`; returns one line per file written, saying whether it equals the one in `shipped`."""
    out = Path(out)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise AnalysisError(f"REFERENCE_DIR={out}: {p} is a file, not a folder")
    if from_dir is not None and not Path(from_dir).is_dir():
        raise AnalysisError(f"FROM={from_dir} is not a folder of released files (<owner>/<repo>/<path>)")
    if raw is None:
        raw = DEFAULT_OUT / "raw" if out.resolve() == Path(shipped).resolve() else out / "raw"
    files = gather(sources, Path(from_dir) if from_dir else None, Path(raw), fetch)
    with tempfile.TemporaryDirectory() as staging:  # exactly the files checked, nothing else of FROM
        for key, data in files.items():
            (Path(staging) / key).parent.mkdir(parents=True, exist_ok=True)
            (Path(staging) / key).write_bytes(data)
        tables = build_tables(Path(staging))
    written = {name: table_bytes(df) for name, df in tables.items()}
    written["PROVENANCE.md"] = provenance(sources, tables).encode()
    report = []
    for name, data in written.items():
        write_atomic(out / name, data)
        same = (Path(shipped) / name).is_file() and (Path(shipped) / name).read_bytes() == data
        rows = f"{len(tables[name])} rows, " if name in tables else ""
        state = "identical to the shipped file" if same else f"differs from the shipped {name}"
        report.append(f"{out / name}: {rows}{len(data) / 2**20:.2f} MiB, {state}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m analysis.reference.build", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"folder of the tables (default {DEFAULT_OUT})")
    p.add_argument("--from", dest="from_dir", default=None, help="folder of the released files: no download")
    p.add_argument("--raw", default=None, help="where downloads are kept (default OUT/raw)")
    args = p.parse_args(argv)
    try:
        report = build(Path(args.out), args.from_dir, Path(args.raw) if args.raw else None)
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
