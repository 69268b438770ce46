"""OUT/index.html of `make figures`: per method and task, the run folders drawn and their videos, so a point
of a figure leads to its episodes."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path


def watch_index(table, results: Path, out: Path) -> Path:
    """OUT/index.html: per method and task, the run folders drawn and their videos (RUN/videos/*.mp4,
    by env step: iqrl.video), linked relative to OUT, so a point of a figure leads to its episodes."""

    def link(path: Path, text: str) -> str:
        return f'<a href="{html.escape(os.path.relpath(path, out))}">{html.escape(text)}</a>'

    rows = []
    runs = table.drop_duplicates("run").sort_values(["method", "task", "seed", "run"], kind="stable")
    for (method, task), group in runs.groupby(["method", "task"], sort=False):
        cells = []
        for run, seed in zip(group["run"], group["seed"]):
            videos = sorted(
                (results / run / "videos").glob("*.mp4"),
                key=lambda p: (int(re.match(r"\d*", p.name).group() or -1), p.name),
            )
            links = [link(results / run, f"seed {seed}")] + [link(v, v.stem) for v in videos]
            cells.append(" ".join(links))
        rows.append(
            f"<tr><td>{html.escape(method)}</td><td>{html.escape(task)}</td><td>"
            + "<br>".join(cells)
            + "</td></tr>"
        )
    page = (
        "<!doctype html><meta charset=utf-8><title>Runs and videos</title>\n<h1>Runs and videos</h1>\n"
        "<p>Videos: &lt;env step&gt;[-ep&lt;k&gt;]-return&lt;return&gt; (docs/watching.md).</p>\n"
        "<table border=1 cellpadding=4><tr><th>method</th><th>task</th><th>runs and videos</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(page)
    return out / "index.html"
