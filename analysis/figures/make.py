"""`make figures`: every figure and score table from a results folder.

    python -m analysis.figures.make --results R [--out O] [--reference [1|FOLDER|FILE]]
                                    [--steps 100000,500000]
                                    [--reference-gym MRQ_RESULTS] [--reference-atari MRQ_RESULTS]
                                    [--reference-bbf BBF_SCORES] [--reference-simba SIMBAV2_RESULTS]
                                    [--reference-drq DRQ_RESULTS] [--reference-dreamerv3 DREAMERV3_SCORES]
                                    [--exclude-partial] [--reps-curve N] [--reps-final N] [--seed K]
                                    [--x steps|wall]

--x wall draws the sample-efficiency curves against each run's wall-clock hours (eval.csv's wall_time_s) in
place of env steps. Bad input (missing/empty results, malformed steps, an --x other than steps or wall, a
reference that is missing or cannot be read) prints one `error:` line and exits with status 2. Data issues
(partial runs, runs left out of a step, skipped figures) print `warning:` / `note:` lines. Nothing under
RESULTS is written; the load cache lives in OUT/.cache.
Published curves (analysis.reference.overlays): --reference alone (REFERENCE=1) draws the tables that ship in
analysis/reference/data; --reference-<source> reads that source from a checkout of its repository instead.
Bootstrap repetitions: --reps-curve (env IQRL_REPS_CURVE, default 2000) per curve point, profile and
probability of improvement; --reps-final (env IQRL_REPS_FINAL, default 20000) for the final intervals,
the score tables and the ablation points.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

from analysis.errors import AnalysisError, AnalysisWarning, warn
from analysis.figures.curves import (
    diagnostic_figures,
    dmc_hard_figure,
    finite_diagnostics,
    split_suites,
    task_curve_figure,
)
from analysis.figures.index_page import watch_index
from analysis.figures.pooled import suite_aggregates
from analysis.figures.sweeps import ablation_figures, transfer_figures
from analysis.reference.overlays import CHECKOUTS, Overlays, gather_overlays, of_suite
from analysis.reference.table import resolve_reference
from analysis.runs.load import cross_sweep_runs, eval_rows, load_results
from analysis.runs.synthetic import MARKER
from analysis.stats.metrics import X_AXES
from iqrl.runfolder.errors import os_error_line

DEFAULT_STEPS = "100000,500000,1000000"


def parse_steps(text: str) -> list[int]:
    """'100000,500k,1M' -> [100000, 500000, 1000000] (sorted, unique); AnalysisError when malformed."""
    steps = []
    for piece in text.split(","):
        piece = piece.strip().replace("_", "")
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", piece)
        if not m:
            raise AnalysisError(
                f"malformed STEPS {text!r}: expected comma-separated env steps like 100000,500000"
            )
        value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
        if not value.is_integer() or value <= 0:
            raise AnalysisError(
                f"malformed STEPS {text!r}: {piece!r} is not a positive whole number of steps"
            )
        steps.append(int(value))
    return sorted(set(steps))


def parse_x(text: str) -> str:
    """The sample-efficiency curves' x axis, a key of metrics.X_AXES; AnalysisError for any other."""
    if text not in X_AXES:
        raise AnalysisError(f"X={text!r}: the curves' x axis is steps (env steps) or wall (wall-clock hours)")
    return text


def check_out(out: Path) -> None:
    """OUT is a folder, or can be made one, before anything is read or written: AnalysisError (one line) when
    it or a folder above it is a file, or no file can be made in its nearest existing folder (made and removed
    again: mode bits do not tell /proc, a read-only file system, or what root may write)."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise AnalysisError(f"OUT={out}: {p} is a file, not a folder; choose another OUT=")
            try:
                tempfile.TemporaryFile(dir=p, prefix=".probe.").close()
            except OSError as e:
                raise AnalysisError(
                    f"OUT={out} cannot be written: {os_error_line(e, p)}; choose another OUT="
                ) from None
            return


def _int_arg(name: str, value, minimum: int = 1) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = minimum - 1
    if n < minimum:
        raise AnalysisError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.figures.make", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", required=True, help="folder holding run folders (any depth)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument(
        "--reference",
        nargs="?",
        const="1",
        default=None,
        help="overlay published curves: no value (or 1) = every table that ships in analysis/reference/data; "
        "a folder of such tables (make reference REFERENCE_DIR=) or one table file",
    )
    checkouts = {
        "gym": "MR.Q's per-seed Gym curves: results/gym_results.txt of a facebookresearch/MRQ checkout",
        "atari": "MR.Q's per-seed Atari curves: results/atari_results.txt of a facebookresearch/MRQ checkout",
        "bbf": "the Atari 100k scores released with BBF, a point per game at 400k env steps and rows of the "
        "Atari score tables: bigger_better_faster/scores/RR8_BBF.csv of a google-research/google-research "
        "checkout",
        "simba": "the curves released with SimbaV2: the `results` folder of a dojeon-ai/SimbaV2 checkout",
        "drq": "the curves released with DR.Q: the `results` folder of a dmksjfl/DR.Q checkout",
        "dreamerv3": "DreamerV3's released scores and pixel baselines: the `scores` folder of a "
        "danijar/dreamerv3 checkout",
    }
    for key, what in checkouts.items():
        p.add_argument(
            f"--reference-{key}", default=None, help=f"{what} (in place of the shipped table's, if any)"
        )
    p.add_argument(
        "--steps", default=DEFAULT_STEPS, help=f"env steps for final scores (default {DEFAULT_STEPS})"
    )
    p.add_argument("--exclude-partial", action="store_true", help="drop runs whose status is not done")
    p.add_argument(
        "--x",
        default="steps",
        help="the sample-efficiency curves' x axis: steps (env steps, default) or wall (wall-clock hours)",
    )
    p.add_argument("--reps-curve", default=os.environ.get("IQRL_REPS_CURVE", "2000"))
    p.add_argument("--reps-final", default=os.environ.get("IQRL_REPS_FINAL", "20000"))
    p.add_argument("--seed", default="0", help="bootstrap seed (default 0)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write OUT/.cache")
    return p


def make_figures(
    results,
    out,
    *,
    steps: list[int],
    reference: Path | None = None,
    reference_gym: Path | None = None,
    reference_atari: Path | None = None,
    reference_bbf: Path | None = None,
    reference_simba: Path | None = None,
    reference_drq: Path | None = None,
    reference_dreamerv3: Path | None = None,
    overlays: Overlays | None = None,
    exclude_partial=False,
    reps_curve=2000,
    reps_final=20000,
    seed=0,
    use_cache=True,
    x="steps",
) -> dict:
    """Load, estimate, plot and tabulate; returns {"figures": [paths], "tables": [paths], "notes": [...]}.
    reference: the published tables' folder or file (analysis.reference.table.resolve_reference), or None;
    reference_<key>: a source's released results read from a checkout (analysis.reference.overlays.CHECKOUTS);
    overlays: those already gathered (analysis.reference.overlays.gather_overlays), in place of the
    reference_*. x: the sample-efficiency curves' axis (`parse_x`)."""
    from analysis.figures import plots

    def note(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, AnalysisWarning, stacklevel=2)

    out = Path(out)
    notes: list[str] = []
    # Each sweep's own runs for its ablations; everything else counts a repeated run once across sweeps.
    sweep_table, info = load_results(
        results,
        cache_dir=out / ".cache" if use_cache else None,
        exclude_partial=exclude_partial,
        per_sweep=True,
    )
    sweep_table = finite_diagnostics(sweep_table, note)
    table = cross_sweep_runs(sweep_table)
    evals, suite_evals = split_suites(eval_rows(table))
    plots.setup_style()
    colors = plots.method_colors(sweep_table["method"].unique())

    # Pooled figures and score tables, per suite on its own score (analysis.stats.scores); published per-run
    # scores (BBF's Atari 100k) join the tables and the panels of their suite.
    checkouts = {
        "gym": reference_gym,
        "atari": reference_atari,
        "bbf": reference_bbf,
        "simba": reference_simba,
        "drq": reference_drq,
        "dreamerv3": reference_dreamerv3,
    }
    if overlays is None:
        overlays = gather_overlays(reference, checkouts, note)
    written, table_paths, scores, suite_scores = [], [], None, {}
    if evals.empty:
        note("no DMC runs: the DMC pooled figures and score tables (returns / 1000) are skipped")
    else:
        written, table_paths, scores = suite_aggregates(
            evals, "dmc", out, steps, colors, reps_curve, reps_final, seed, note, x=x
        )
    for suite, rows in suite_evals.items():
        figs, paths, suite_scores[suite] = suite_aggregates(
            rows,
            suite,
            out,
            steps,
            colors,
            reps_curve,
            reps_final,
            seed,
            note,
            of_suite(overlays.points, suite),
            x=x,
        )
        written, table_paths = written + figs, table_paths + paths

    # Per-task learning curves, with the published curves of their tasks: DMC returns, then each other suite's
    # score (analysis.figures.curves.SUITE_SCORES).
    if not evals.empty:
        written += task_curve_figure(
            evals, "dmc", overlays.curves, out, colors, seed, note, "per_task_curves"
        )
        written += dmc_hard_figure(evals, overlays.curves, out, colors, seed, note)
    for suite, rows in suite_evals.items():
        written += task_curve_figure(
            rows,
            suite,
            overlays.curves,
            out,
            colors,
            seed,
            note,
            f"per_task_curves_{suite}",
            points=of_suite(overlays.points, suite),
        )

    # Diagnostics of the iQRL paper: latent rank, active codebook share.
    written += diagnostic_figures(table, colors, seed, out, note)

    # Transfer: target tasks by arm, scratch as the reference (docs/transfer.md).
    written += transfer_figures(sweep_table, steps, reps_final, seed, out, note)

    # Ablations: one figure per swept key of every (sweep, agent), from that sweep's own runs.
    written += ablation_figures(sweep_table, colors, steps, reps_final, seed, out, note)
    index = watch_index(table, Path(results), out)
    return {
        "figures": written,
        "tables": table_paths,
        "notes": notes,
        "info": info,
        "scores": scores,
        "suite_scores": suite_scores,
        "index": index,
    }


def _show_warning(message, category, filename, lineno, file=None, line=None):
    prefix = "warning" if issubclass(category, AnalysisWarning) else f"warning ({category.__name__})"
    print(f"{prefix}: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # restores the caller's warning settings afterwards
        warnings.showwarning = _show_warning
        warnings.simplefilter("always", AnalysisWarning)
        return _run(args)


def _run(args) -> int:
    from analysis.figures import plots

    start = time.time()
    try:
        steps = parse_steps(args.steps)
        x = parse_x(args.x)
        check_out(Path(args.out))
        reference = resolve_reference(args.reference)
        checkouts = {key: getattr(args, f"reference_{key}") for key in CHECKOUTS}
        checkouts = {key: Path(path) if path else None for key, path in checkouts.items()}
        # read once, before anything is written: a table or file that cannot be read is an error here
        overlays = gather_overlays(reference, checkouts, warn)
        synthetic = (Path(args.results) / MARKER).exists()  # analysis.runs.synthetic's made-up returns
        with plots.watermark("SYNTHETIC DATA" if synthetic else ""):
            result = make_figures(
                args.results,
                args.out,
                steps=steps,
                overlays=overlays,
                exclude_partial=args.exclude_partial,
                reps_curve=_int_arg("--reps-curve", args.reps_curve),
                reps_final=_int_arg("--reps-final", args.reps_final),
                seed=_int_arg("--seed", args.seed, minimum=0),
                use_cache=not args.no_cache,
                x=x,
            )
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = result["info"]
    print(
        f"wrote {len(result['figures']) // 2} figures (PNG+PDF) and {len(result['tables'])} tables to "
        f"{args.out} from {info.n_runs} runs{' (cached table)' if info.from_cache else ''} "
        f"in {time.time() - start:.0f}s; runs and videos: {result['index']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
