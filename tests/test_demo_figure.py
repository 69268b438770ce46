"""The demo's figure draws srank and the encoder's dormant share (tau = 0.1) beside the latent rank and the
active codebook, from the run's training rows; an older run folder without those columns still draws."""

from __future__ import annotations

import pandas as pd


def demo_rows(**diagnostics) -> pd.DataFrame:
    """iqrl and td3 evaluated at 0 and 800 env steps; iqrl's training rows at 400 and 800 carry its rank,
    codebook share and the given columns ({column: [value at 400, value at 800]}); td3 logs a loss only."""
    rows = [
        {"run": agent, "env_step": step, "episode_return": value}
        for agent, values in (("iqrl", (100.0, 300.0)), ("td3", (120.0, 250.0)))
        for step, value in zip((0, 800), values)
    ]
    rows.append({"run": "td3", "env_step": 400, "q_loss": 1.0})
    for k, step in enumerate((400, 800)):
        rows.append(
            {"run": "iqrl", "env_step": step, "latent_rank_pct": 50.0, "active_codebook_pct_mean": 40.0}
            | {column: values[k] for column, values in diagnostics.items()}
        )
    return pd.DataFrame(rows)


def test_demo_figure_draws_srank_and_the_dormant_encoder_share_in_percent_beside_rank_and_codebook():
    """srank 10 then 12 drawn as logged on an axis from 0; dormant shares 0.0 and 0.25 drawn as 0% and 25% on
    0..105%; td3 (no latent) has no line in either."""
    import matplotlib.pyplot as plt

    from apps import demo

    table = demo_rows(**{"latent_srank": [10.0, 12.0], "encoder_dormant_tau0.1": [0.0, 0.25]})
    fig = demo.demo_figure(table, None, "no published curve")
    _, _, _, srank, dormant = fig.axes
    assert [(ln.get_xdata().tolist(), ln.get_ydata().tolist()) for ln in srank.get_lines()] == [
        ([400, 800], [10.0, 12.0])
    ]
    assert [ln.get_ydata().tolist() for ln in dormant.get_lines()] == [[0.0, 25.0]]
    assert srank.get_ylim()[0] == 0 and srank.get_ylim()[1] > 12 and dormant.get_ylim() == (0, 105)
    assert srank.get_ylabel() == "srank\n(delta = 0.01)"
    assert dormant.get_ylabel() == "Dormant encoder\nunits (%, tau = 0.1)"
    plt.close(fig)


def test_demo_figure_of_a_run_folder_without_srank_or_dormant_columns_still_draws_its_rank():
    """A run written before srank and dormant units were logged: their panels say no run logs them, the rank
    panel is drawn as before."""
    import matplotlib.pyplot as plt

    from apps import demo

    fig = demo.demo_figure(demo_rows(), None, "no published curve")
    _, rank, _, srank, dormant = fig.axes
    assert [ln.get_ydata().tolist() for ln in rank.get_lines()] == [[50.0, 50.0]]
    for panel in (srank, dormant):
        assert panel.get_lines() == [] and [t.get_text() for t in panel.texts] == ["no run logs it"]
    plt.close(fig)
