"""analysis/'s rooms as docs/layout.md lists them: the page names every room on disk and no other, and a
module of one room imports only its own room, the rooms the page lists before it and analysis.errors."""

from __future__ import annotations

import re
from pathlib import Path

from test_imports import import_graph

ROOT = Path(__file__).resolve().parents[1]


def listed_rooms(page: str) -> list[str]:
    """The sub-folders the page's tree lists under `analysis/`, in the page's order (lowest first)."""
    tree = page.split("\nanalysis/", 1)[1].split("\n")[1:]
    rooms = []
    for line in tree:
        if m := re.match(r"  (\w+)/ ", line):
            rooms.append(m.group(1))
        elif not line.startswith(" "):
            break
    return rooms


def rooms_on_disk() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "analysis").glob("*/__init__.py"))


def upward_in_analysis(graph: dict[str, set[str]], rooms: list[str]) -> list[str]:
    """Edges between analysis modules that reach a room listed after the importer's (or, from a module outside
    every room, into one)."""
    floor = {f"analysis.{r}": i for i, r in enumerate(rooms)}

    def room_of(module: str) -> int | None:
        return floor.get(".".join(module.split(".")[:2]))

    bad = []
    for a, targets in graph.items():
        if not a.startswith("analysis"):
            continue
        for b in targets:
            if not b.startswith("analysis."):
                continue
            ra, rb = room_of(a), room_of(b)
            if rb is not None and (ra is None or rb > ra):
                bad.append(f"{a} -> {b}")
    return sorted(bad)


def test_the_room_list_is_read_from_the_tree_up_to_the_next_top_level_folder():
    page = "\n".join(
        [
            "```",
            "iqrl/   x",
            "  nn/   y",
            "analysis/   z",
            "  runs/   a",
            "          b",
            "  figures/   c",
            "slurm/  d",
        ]
        + ["  x/  e", "```"]
    )
    assert listed_rooms(page) == ["runs", "figures"]


def test_the_layout_page_lists_every_room_of_analysis_and_no_other():
    listed = listed_rooms((ROOT / "docs" / "layout.md").read_text())
    assert sorted(listed) == rooms_on_disk() == ["figures", "reference", "runs", "stats"]


def test_the_direction_check_finds_an_import_that_points_up_or_out_of_the_rooms():
    rooms = ["runs", "stats", "figures"]
    graph = {
        "analysis.stats.metrics": {"analysis.runs.load", "analysis.errors", "iqrl.envs.tasks"},
        "analysis.runs.load": {"analysis.figures.plots", "analysis.runs.identity"},
        "analysis.errors": {"analysis.stats.metrics"},
    }
    assert upward_in_analysis(graph, rooms) == [
        "analysis.errors -> analysis.stats.metrics",
        "analysis.runs.load -> analysis.figures.plots",
    ]


def test_analysis_rooms_import_only_the_rooms_listed_before_them():
    rooms = listed_rooms((ROOT / "docs" / "layout.md").read_text())
    found = upward_in_analysis(import_graph(), rooms)
    assert not found, "analysis imports that point up its rooms (docs/layout.md's order): " + "; ".join(found)
