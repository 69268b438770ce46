"""The one validation helper (a list of (condition, message) pairs, the first failing one raised), the one
error a run refuses with, and what an error line says of a file that is not UTF-8."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


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


def not_utf8(path: Path) -> str:
    """What an error line says of a file that a UTF-8 decoder refused: its first bad byte and that byte's
    line (the decoder's message names no file; a reader decoding in chunks gives an offset in its chunk)."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return f"is not UTF-8 text (byte {data[e.start]:#04x} on line {line})"
    return "is UTF-8 text"
