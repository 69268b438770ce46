"""A run's identity: agent, task, variant, seed, sweep, overrides and config values, from its config.yaml or,
for runs copied without one, from the sweep layout `[<sweep>/]<agent>/<task>/[<variant>/]seed<k>`; and the
canonical form of override and config values (`[8, 5]` and `8-5` -> "8-5") that the tidy table stores
(analysis.runs.load builds the table; analysis.runs.repeats compares runs by these values)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from analysis.errors import text_of
from iqrl.envs.tasks import TASK_GROUPS, folder_task

_SEED_DIR = re.compile(r"^seed_?(\d+)$")


# ---------------------------------------------------------------------------------------------------
# Names and values
# ---------------------------------------------------------------------------------------------------
def canonical_value(value) -> str:
    """A canonical string for an override/config value: lists joined by '-', bools lower-case.

    >>> canonical_value([8, 5, 5]), canonical_value("[8,5,5]"), canonical_value("8-5-5"),
    canonical_value(True)
    ('8-5-5', '8-5-5', '8-5-5', 'true')
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError:
                parsed = None
            if isinstance(parsed, list):
                return canonical_value(parsed)
        if text.lower() in ("true", "false"):
            return text.lower()
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "-".join(canonical_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return "null"
    return str(value)


def override_key(key: str) -> str:
    """'agent.horizon' -> 'horizon'; other dotted keys are kept as they are."""
    key = key.strip()
    return key[len("agent.") :] if key.startswith("agent.") else key


def parse_overrides(overrides: list[str] | None = None, variant: str | None = None) -> dict[str, str]:
    """Overrides as {key: canonical value}; from config.yaml's list when given, else from the variant name.

    Variant names join `key=value` pairs with ',' and may themselves contain ',' inside a value that
    was not dash-joined (`fsq_levels=8,5,horizon=3`): a piece without '=' continues the previous value.

    >>> parse_overrides(["agent.horizon=3", "agent.fsq_levels=[8,5]"])
    {'horizon': '3', 'fsq_levels': '8-5'}
    >>> parse_overrides(variant="fsq_levels=8-5-5-5,use_fsq=false")
    {'fsq_levels': '8-5-5-5', 'use_fsq': 'false'}
    """
    pairs: list[list[str]] = []
    if overrides:
        for item in overrides:
            key, sep, value = str(item).partition("=")
            if sep:
                pairs.append([key.lstrip("+~"), value])
    elif variant and variant != "default":
        for piece in variant.split(","):
            if "=" in piece:
                pairs.append(list(piece.split("=", 1)))
            elif pairs:
                pairs[-1][1] += "," + piece
            else:
                pairs.append([piece, ""])
    out: dict[str, str] = {}
    for key, value in pairs:
        value = value.strip()
        if "," in value and not value.startswith("["):
            value = f"[{value}]"
        out[override_key(key)] = canonical_value(value)
    return out


def _flatten(mapping: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[override_key(name)] = canonical_value(value)
    return out


# ---------------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------------
def _is_variant_dir(name: str) -> bool:
    return name == "default" or "=" in name


@functools.cache
def known_tasks() -> frozenset[str]:
    """Every task name the core knows: its task groups and dm_control's suite (when importable)."""
    tasks = {t for group in TASK_GROUPS.values() for t in group}
    try:
        from iqrl.envs.dmc import all_tasks

        tasks.update(all_tasks())
    except Exception:  # dm_control missing or broken: the task groups still anchor the layout
        pass
    return frozenset(tasks)


@functools.cache
def known_agents() -> frozenset[str]:
    """The registered agent names (imports torch: only asked for when no known task anchors a layout)."""
    try:
        from iqrl.core.registry import agent_names

        return frozenset(agent_names())
    except Exception:
        return frozenset()


def identity_from_layout(rel_parts: tuple[str, ...]) -> dict:
    """Identity from `[<sweep>/]<agent>/<task>/[<variant>/]seed<k>` (path parts relative to RESULTS; <task>
    a task's folder name, `iqrl.envs.tasks.folder_task`).

    The variant folder is optional and may have any name (`small` from `make validate --small`), so the
    parts above the seed folder are anchored, in this order, on: a known task name (the folder above
    seed<k>, else the one above that, whose child is then the variant); a variant folder named `default`
    or holding `=`; a registered agent name (two, else three, folders above seed<k>). Without any anchor
    the folder above seed<k> is the task (no variant).

    >>> identity_from_layout(("abl", "iqrl", "walker-walk", "horizon=3", "seed2"))["variant"]
    'horizon=3'
    >>> identity_from_layout(("validate", "td3", "walker-walk", "small", "seed0"))["agent"]
    'td3'
    """
    if not rel_parts or not _SEED_DIR.match(rel_parts[-1]):
        raise ValueError("the folder name is not seed<k>")
    seed = int(_SEED_DIR.match(rel_parts[-1]).group(1))
    rest = rel_parts[:-1]
    if len(rest) < 2:
        raise ValueError("expected <agent>/<task>/<variant>/seed<k>")
    tasks = known_tasks()
    if rest[-1] in tasks:
        has_variant = False
    elif len(rest) >= 3 and rest[-2] in tasks:
        has_variant = True
    elif _is_variant_dir(rest[-1]):
        has_variant = True
    elif rest[-2] in known_agents():
        has_variant = False
    elif len(rest) >= 3 and rest[-3] in known_agents():
        has_variant = True
    else:
        has_variant = False
    variant = "default"
    if has_variant:
        variant, rest = rest[-1], rest[:-1]
    if len(rest) < 2:
        raise ValueError("expected <agent>/<task>/<variant>/seed<k>")
    return {
        "agent": rest[-2],
        "task": folder_task(rest[-1]),  # `atari-Pong` (or `atari:Pong`, as folders were named) -> atari:Pong
        "variant": variant,
        "seed": seed,
        "sweep": "/".join(rest[:-2]),
    }


def read_identity(run_dir: Path, results: Path) -> dict:
    """Agent, task, variant, seed, sweep, overrides, config values of one run (config.yaml, else layout)."""
    cfg = {}
    cfg_path = run_dir / "config.yaml"
    if cfg_path.exists():
        with text_of(cfg_path):
            cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        if not isinstance(cfg, dict):
            cfg = {}
    agent_cfg = cfg.get("agent")
    agent = agent_cfg.get("name") if isinstance(agent_cfg, dict) else agent_cfg
    from_cfg = {
        "agent": agent,
        "task": cfg.get("task"),
        "variant": cfg.get("variant"),
        "seed": cfg.get("seed"),
        "sweep": cfg.get("sweep"),
    }
    layout, layout_error = {}, ""
    if any(v is None or v == "" for v in from_cfg.values()):  # the layout only fills what the config lacks
        try:
            layout = identity_from_layout(run_dir.relative_to(results).parts)
        except ValueError as exc:
            layout_error = str(exc)
    ident = {
        "agent": agent if agent else layout.get("agent"),
        "task": from_cfg["task"] or layout.get("task"),
        "variant": from_cfg["variant"] or layout.get("variant") or "default",
        "seed": from_cfg["seed"] if from_cfg["seed"] is not None else layout.get("seed"),
        "sweep": from_cfg["sweep"] or layout.get("sweep") or "",
        "has_config": bool(cfg),
    }
    missing = [k for k in ("agent", "task", "seed") if ident[k] is None]
    if missing:
        why = layout_error or "config.yaml lacks them"
        raise ValueError(f"cannot tell {', '.join(missing)} ({why})")
    cfg_overrides = cfg.get("overrides")
    ident["overrides"] = parse_overrides(
        cfg_overrides if cfg_overrides else None, None if cfg_overrides else ident["variant"]
    )
    flat = _flatten({k: v for k, v in cfg.items() if k not in ("meta", "overrides")})
    flat.pop("name", None)
    ident["config_values"] = flat
    ident["target_steps"] = cfg.get("steps")
    ident["source"], ident["source_parts"] = source_of(cfg)
    meta = cfg.get("meta")
    ident["lock"] = str(meta.get("lock") or "") if isinstance(meta, dict) else ""  # '' before locks
    ident["latent"] = latent_of(meta if isinstance(meta, dict) else {})
    return ident


#: Override keys that change the latent's width or codebook: a method that sets one says both in its label.
LATENT_KEYS = frozenset(
    {"fsq_levels", "latent_dim", "use_fsq", "quantizer", "vq_dim", "vq_codebook_size", "quant_group_dim"}
)


def latent_of(meta: dict) -> tuple[int, int | None] | None:
    """(width, codebook size) of the latent a run built (config.yaml's meta.latent_width and
    meta.codebook_size; the size None without a codebook), or None where the meta does not record them."""
    width, size = meta.get("latent_width"), meta.get("codebook_size")
    if not isinstance(width, int) or not (size is None or isinstance(size, int)):
        return None
    return width, size or None


def latent_in(method: str) -> str:
    """'width D, codebook K' of a method label that `latent_label` extended, else ''."""
    found = re.search(r" \((width \d+, (?:codebook \d+|no codebook))\)$", method)
    return found.group(1) if found else ""


def latent_label(overrides: dict, latent: tuple[int, int | None] | None) -> str:
    """' (width D, codebook K)' for a run whose overrides change its latent (LATENT_KEYS: in the FSQ sweeps a
    layout's codebook size and its width vary together unless the sweep holds the width), else ''."""
    if latent is None or not LATENT_KEYS & {k.rsplit(".", 1)[-1] for k in overrides}:
        return ""
    width, size = latent
    return f" (width {width}, {f'codebook {size}' if size else 'no codebook'})"


def source_of(cfg: dict) -> tuple[str, str]:
    """(source, source_parts) of a run's config (docs/transfer.md#provenance); ('', '') from scratch."""
    meta = cfg.get("meta")
    init = meta.get("init") if isinstance(meta, dict) else None
    if not isinstance(init, dict):
        return "", ""
    source = f"{init['sweep']}:{init['variant']}" if init.get("sweep") else str(init.get("run") or "")
    parts = "+".join(init.get("parts") or [])
    frozen = "+".join(init.get("frozen") or [])
    return source, parts + (f"; frozen: {frozen}" if frozen else "")
