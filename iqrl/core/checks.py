"""The one validation helper (a list of (condition, message) pairs, the first failing one raised) and the one
error a run refuses with."""

from __future__ import annotations

from collections.abc import Iterable


def require(checks: Iterable[tuple[bool, str]], error: type[Exception] = ValueError) -> None:
    """Raise `error(message)` for the first check whose condition is false.

    Convention: an agent config's messages name its keys without the `agent.` prefix or with it; the run
    config (`iqrl.config.validate.validate`) adds the prefix where it is missing, so the user always reads
    `agent.<key>`.
    """
    for ok, msg in checks:
        if not ok:
            raise error(msg)


class Refused(RuntimeError):
    """The run cannot start (or go on) and nothing (more) is written: its one-line reason, exit 2."""
