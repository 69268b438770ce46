"""slurm/cost.py: what an update of a config costs (counted on the CPU), the fits turning counts into seconds,
their checks against measured rows, and the prices and refusals built on them (slurm/projection.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from slurm.cost import (
    FEATURES,
    Counts,
    bench_config,
    config_id,
    count,
    counts_of,
    cpu_rows,
    fit,
    holdout,
    read_table,
)
from slurm.cost_report import doc_lines, ratio_checks

ROOT = Path(__file__).resolve().parents[1]


def test_a_config_recounted_now_has_the_tables_counts():
    """The committed table holds what `count` finds today (td3's bench config: the cheapest to recount)."""
    row = read_table()[config_id("td3", bench_config("td3"))]
    assert count("td3", "walker-walk", "state") == Counts(*(row[f] for f in (*FEATURES, "act_launches")))


def test_the_table_holds_every_config_of_the_priced_sweeps():
    """Every distinct config of the sweeps the docs price is in the table: their DRY counts nothing (main's:
    the test of its price below, which would count a missing one)."""
    from iqrl.config.build import build_config
    from slurm.spec import built_config, config_runs
    from slurm.submit import load

    table = read_table()
    for name in ("fsq_levels", "horizon", "network"):
        _, runs = load(ROOT / "ablations" / f"{name}.yaml", Path("/r"), None, validator=None)
        for r in config_runs(runs).values():
            cfg = built_config(build_config, tuple(r.argv(Path("/r"))))
            assert config_id(r.agent, cfg) in table, (name, r.key)


def test_the_fit_recovers_the_constants_that_made_the_seconds():
    """Seconds made as 2 ns per 1000 FLOPs + 1 ns per 100 bytes + 20 us per launch: the fit finds those
    constants, and each row held out is predicted exactly; relative errors weigh every row alike."""
    counts = [
        Counts(1e9, 1e8, 500, 0),
        Counts(4e10, 1e9, 300, 0),
        Counts(2e9, 5e9, 900, 0),
        Counts(1e8, 3e7, 50, 0),
    ]
    rows = [(str(i), c, 2e-12 * c.flops + 1e-11 * c.bytes + 2e-5 * c.launches) for i, c in enumerate(counts)]
    f = fit(rows)
    assert f.coef == pytest.approx((2e-12, 1e-11, 2e-5), rel=1e-6)
    assert [name for name, *_ in holdout(rows)] == ["0", "1", "2", "3"]
    assert all(abs(e) < 1e-6 for *_, e in holdout(rows))
    launches = fit(rows[:1], ("launches",))  # one row, launches alone: its seconds per launch
    assert launches.seconds(counts[1]) == pytest.approx(rows[0][2] / 500 * 300)


def test_the_gpu_rows_are_predicted_from_the_others_within_a_quarter():
    """Hold-one-out over docs/gpu-results' eager K = 1 rows: each within +-25% of its measured seconds."""
    from slurm.cost import GPU_FEATURES
    from slurm.projection import fit_rows, measured_rows

    samples = [(name, c, s) for name, c, s, _ in fit_rows(measured_rows())]
    errors = {name.split("`")[1].split()[0]: e for name, _, e in holdout(samples, GPU_FEATURES)}
    assert set(errors) == {"iqrl", "td3", "bro-utd10"}
    assert all(abs(e) <= 0.25 for e in errors.values()), errors


def test_the_cpu_fit_predicts_the_measured_ratios_of_three_variants_within_a_quarter():
    """docs/cpu-results.jsonl: `make bench` rows of this CPU. The fit to the agents' default rows predicts
    each variant's time per update against its default: a 3x wider FSQ latent, horizon 10, BRO at UTD 10."""
    checks = {name: (measured, predicted) for name, measured, predicted in ratio_checks(cpu_rows())}
    assert set(checks) == {"iqrl agent.fsq_levels=[8,8,8,5,5,5]", "iqrl agent.horizon=10", "bro agent.utd=10"}
    for name, (measured, predicted) in checks.items():
        assert abs(predicted / measured - 1) <= 0.25, (name, measured, predicted)


def test_the_docs_pricing_tables_are_the_fits_of_the_committed_rows():
    """docs/sweeps.md's tables (`python -m slurm.cost_report --doc`) recomputed from the committed rows."""
    assert "\n".join(doc_lines()) in (ROOT / "docs" / "sweeps.md").read_text()


def test_main_prices_every_agent_from_its_own_update_and_the_docs_total_is_it():
    """ablations/main.yaml on the GPU rows: every line measured or modeled, its source and error named; the
    total of docs/sweeps.md is this one."""
    from slurm.projection import projection_lines
    from slurm.submit import load

    _, runs = load(ROOT / "ablations" / "main.yaml", Path("/r"), None, validator=None)
    lines = projection_lines(runs, Path("/r"))
    assert all("(measured" in line or "(modeled" in line for line in lines[2:]), lines
    assert all("expected error +-" in line for line in lines[2:] if "(modeled" in line)
    total = lines[0].split(": ", 1)[1].split(" for ")[0]
    assert f"projected GPU-hours at the fastest measured rows (...): {total} for 2240 runs" in (
        ROOT / "docs" / "sweeps.md"
    ).read_text().replace("\n", " ")


def test_a_longer_horizon_is_priced_at_its_counted_update_against_the_measured_default():
    """ablations/horizon.yaml: horizon 10's updates/s are the measured default row's over the ratio of
    their modeled seconds (launches alone on the GPU), higher priced than the default."""
    from slurm.projection import project
    from slurm.submit import load

    _, runs = load(ROOT / "ablations" / "horizon.yaml", Path("/r"), None, validator=None)
    rows = [p for p in project(runs, Path("/r")) if p.rate.row]
    default = next(p for p in rows if p.rate.ratio == 1.0)
    ratio = (
        counts_of("iqrl", bench_config("iqrl", extra=["agent.horizon=10"])).launches
        / counts_of("iqrl", bench_config("iqrl")).launches
    )
    ten = [p for p in rows if p.rate.ratio == pytest.approx(ratio, rel=1e-9)]
    assert ten and all(p.rate.updates_per_s == round(default.rate.updates_per_s / ratio, 3) for p in ten)
    assert ratio > 1.4 and math.isclose(default.rate.updates_per_s, 43.225)


def test_a_local_sweep_of_more_cpu_hours_than_the_limit_waits_for_yes(tmp_path, capsys, monkeypatch):
    """A local sweep projected above 24 CPU-hours here: one `error:` line with the figure, exit 2, nothing
    started or written; with --yes it starts. A dry run prints CPU-hours on a CPU profile."""
    from slurm import submit
    from slurm.__main__ import main
    from slurm.projection import project
    from slurm.submit import load

    sweep = tmp_path / "big.yaml"
    sweep.write_text("name: big\nagents: [iqrl]\ntasks: [walker-walk]\nseeds: 2\nsteps: 1000000\n")
    _, runs = load(sweep, tmp_path / "res", None, validator=None)
    hours = sum(p.gpu_hours for p in project(runs, tmp_path / "res", device="cpu"))
    argv = ["sweep", str(sweep), "--results", str(tmp_path / "res"), "--cluster", "local"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: 2 runs would take about {hours:,.0f} CPU-hours on this machine (over 24; DRY=1 prints each "
        "agent's): add --yes (YES=1) to start them\n"
    )
    assert hours > 24 and not (tmp_path / "res").exists()
    started = []
    monkeypatch.setattr(submit, "_run_local", lambda *a: started.append(a) or 0)
    assert main([*argv, "--yes"]) == 0 and len(started) == 1
    assert main([*argv, "--dry"]) == 0
    assert (
        "projected CPU-hours at the fastest measured rows (this CPU's bench rows" in capsys.readouterr().out
    )
