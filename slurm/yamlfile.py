"""Reading the harness's own YAML files (sweep files, cluster profiles).

A key given twice in one mapping is an error naming the key and both lines: ``yaml.safe_load`` would keep
the last value silently, so a second ``grid:`` would quietly replace the first one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from iqrl.core.checks import not_utf8

MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *anchor` may be followed by keys that override merged ones


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = key in first_line
            except TypeError:  # unhashable key: the base class reports it
                continue
            if seen:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first given at line {first_line[key] + 1})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def is_int(value: Any) -> bool:
    """An integer as YAML gives it (``true``/``false`` load as bool, which Python counts as int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """The YAML document in ``path``; unreadable files, files that are not UTF-8 and invalid YAML (duplicate
    keys included) raise ``error`` with one line naming the file, ``what`` it is, and where the problem is."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: {what} {not_utf8(path)}") from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{path}: invalid YAML{where}: {problem}") from None
