"""The analysis' one error and warning convention: bad input is an AnalysisError (one line, `error:` at the
command line, exit 2); what the user should know about the data is an AnalysisWarning (`warning:` lines).
Every module of analysis/ raises and warns through these."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

from iqrl.core.checks import not_utf8


class AnalysisError(Exception):
    """Bad input to the analysis (missing/empty results, malformed arguments). One-line message."""


class AnalysisWarning(UserWarning):
    """Something the user should know about the data (partial runs, runs left out, skipped figures)."""


def warn(message: str) -> None:
    warnings.warn(message, AnalysisWarning, stacklevel=2)


def shown(items: list[str], limit: int = 3, sep: str = ", ") -> str:
    """The first `limit` items joined, then how many more there are (warnings stay one line)."""
    more = f"{sep}... ({len(items) - limit} more)" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


@contextlib.contextmanager
def text_of(path: Path):
    """Reading `path` inside: a file that is not UTF-8 raises ValueError naming it and its first bad byte."""
    try:
        yield
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} {not_utf8(path)}") from None
