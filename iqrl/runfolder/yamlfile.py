"""config.yaml and other YAML files: the writer (atomic), the readers, and UnreadableConfig for a
config.yaml that holds no run config.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from iqrl.runfolder.atomic import atomic_write_text
from iqrl.runfolder.errors import CAUSES


def write_yaml(path: Path, data: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


# YAML's safe loader in libyaml's C where PyYAML was built with it (its wheels are): the same documents, read
# about ten times faster (a dry sweep reads every existing run folder's config.yaml).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> dict | None:
    p = Path(path)
    return yaml.load(p.read_text(), Loader=SAFE_LOADER) if p.exists() else None


class UnreadableConfig(ValueError):
    """A run folder's config.yaml that holds no run config; str() is one line naming the file."""


def read_config(run_dir: Path) -> dict | None:
    """The run's config.yaml as a dict; None when the folder has none; UnreadableConfig (one line naming the
    file and what it holds instead: bytes that are not text, a folder, a YAML list) otherwise."""
    path = Path(run_dir) / "config.yaml"
    if not os.path.lexists(path):
        return None
    try:
        data = yaml.load(path.read_bytes().decode(), Loader=SAFE_LOADER)
    except OSError as e:
        why = CAUSES.get(e.errno) or (e.strerror or str(e)).lower()
    except UnicodeDecodeError:
        why = "bytes that are not UTF-8 text"
    except yaml.YAMLError as e:
        why = f"not YAML: {getattr(e, 'problem', None) or type(e).__name__}"
    else:
        if isinstance(data, dict):
            return data
        why = "empty" if data is None else f"a YAML {type(data).__name__}, not a mapping of keys"
    raise UnreadableConfig(f"{path} holds no run config ({why}); remove it or choose another out=")
