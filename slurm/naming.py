"""Override values as trainer dotlist text, and stable, readable variant names derived from them.

A variant name is a pure function of its overrides (order-independent), so re-running a sweep — or another
sweep with the same overrides — finds the same folder: ``{}`` -> ``default``, ``{agent.horizon: 3}`` ->
``horizon=3``, ``{agent.fsq_levels: [8, 5, 5, 5]}`` -> ``fsq_levels=8-5-5-5``, two keys ->
``fsq_levels=8-8,latent_dim=64``. Names that would need characters outside ``[A-Za-z0-9._+=,-]``, or grow
past ``MAX_LEN``, are shortened and get a hash suffix so that distinct overrides never share a name.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

MAX_LEN = 80
_PLAIN_STR = re.compile(r"^[A-Za-z_][A-Za-z0-9_./+-]*$")  # safe as a plain YAML scalar anywhere
_PLAIN_TOP = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./+=,~-]*$")  # ... outside lists (paths, variant names)
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,-]")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "none", "~", "y", "n"}


def dotlist_value(value: Any, _in_list: bool = False) -> str:
    """Format a YAML scalar or (nested) list so that OmegaConf's dotlist parser reads it back unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r}")
        return repr(value)
    if isinstance(value, str):
        plain = _PLAIN_STR if _in_list else _PLAIN_TOP
        if plain.match(value) and value.lower() not in _YAML_WORDS:
            return value
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dotlist_value(v, True) for v in value) + "]"
    raise TypeError(
        f"unsupported value {value!r} ({type(value).__name__}); use numbers, strings, booleans or lists"
    )


def dotlist(overrides: Mapping[str, Any]) -> list[str]:
    """``{"agent.horizon": 3}`` -> ``["agent.horizon=3"]``, keys in the mapping's order."""
    return [f"{k}={dotlist_value(v)}" for k, v in overrides.items()]


def _name_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_name_value(v) for v in value) if value else "empty"
    return dotlist_value(value).strip('"')


def short_key(key: str) -> str:
    """Agent hyper-parameters are the common case, so ``agent.`` is dropped from names."""
    return key[len("agent.") :] if key.startswith("agent.") else key


def variant_name(overrides: Mapping[str, Any]) -> str:
    """Stable folder name for a set of overrides (``default`` when there are none)."""
    if not overrides:
        return "default"
    raw = ",".join(f"{short_key(k)}={_name_value(overrides[k])}" for k in sorted(overrides))
    name = _UNSAFE.sub("_", raw)
    if name == raw and len(name) <= MAX_LEN:
        return name
    canonical = json.dumps(sorted((k, overrides[k]) for k in overrides), separators=(",", ":"))
    digest = hashlib.sha1(canonical.encode()).hexdigest()[:8]
    return f"{name[: MAX_LEN - 9]}~{digest}"
