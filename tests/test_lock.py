"""The dependency lock (uv.lock, `make lock`): it holds pyproject.toml's requirements, its pip exports
hold its versions, and the installer reads the uv version it pins. A pin changed without `make lock` fails
here with one line naming the command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIX = "pyproject.toml and uv.lock disagree: run `make lock` and commit uv.lock and requirements/"


def uv() -> str:
    """The venv's uv (the dev extra installs the lock's), else the one on PATH."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert found, "uv is not installed: it is in the dev extra (make install)"
    return found


def lock_check(project: Path) -> subprocess.CompletedProcess:
    """`uv lock --check` of the project in `project`, offline: whether uv.lock still resolves its
    pyproject.toml (uv compares the requirements recorded in the lock; no index is read)."""
    return subprocess.run(
        [uv(), "lock", "--check", "--offline", "--directory", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_lock_holds_pyprojects_requirements():
    if lock_check(REPO).returncode != 0:
        pytest.fail(FIX, pytrace=False)


def test_a_pin_changed_without_make_lock_fails_the_check(tmp_path):
    """The check above can fail: the same lock beside a pyproject.toml with one pin moved."""
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(REPO / name, tmp_path / name)
    assert lock_check(tmp_path).returncode == 0, "a copy of the project checks as the project does"
    pyproject = (tmp_path / "pyproject.toml").read_text()
    assert '"tqdm>=4.66"' in pyproject
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('"tqdm>=4.66"', '"tqdm>=4.67"'))
    assert lock_check(tmp_path).returncode != 0


def locked_versions() -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for package in tomllib.loads((REPO / "uv.lock").read_text())["package"]:
        versions.setdefault(package["name"], set()).add(package["version"])
    return versions


@pytest.mark.parametrize("install_set", ["base", "dev"])
def test_the_pip_exports_are_the_locks_own(install_set):
    """requirements/<set>.txt (scripts/install.sh's pip fallback) is what `uv export` writes from the lock
    now: every pin a locked version with its hashes, no package left out or added, torch left to the
    installer's wheel source."""
    extra = ["--extra", "dev"] if install_set == "dev" else []
    export = [uv(), "export", "--frozen", "--no-emit-project", "--no-emit-package", "torch"]
    fresh = subprocess.run(
        [*export, *extra, "--format", "requirements-txt", "--directory", str(REPO)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (REPO / "requirements" / f"{install_set}.txt").read_text()

    def body(text: str) -> list[str]:  # without the header, which names the output file
        return [line for line in text.splitlines() if not line.startswith("#")]

    assert body(committed) == body(fresh), FIX
    pins = re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^ ;\\]+)", committed, re.MULTILINE)
    assert len(pins) > 50 and "torch" not in dict(pins)
    versions = locked_versions()
    assert all(v in versions[n] for n, v in pins)
    assert committed.count("--hash=sha256:") >= len(pins)


def test_the_installer_bootstraps_the_uv_the_lock_pins():
    """scripts/install.sh reads the uv version out of uv.lock (sed, before any Python package is installed);
    the lock's uv is the dev extra's pin."""
    script = (REPO / "scripts" / "install.sh").read_text()
    sed = re.search(r"uv_pin=\$\(sed -n '([^']+)' uv.lock\)", script).group(1)
    pinned = subprocess.run(["sed", "-n", sed, "uv.lock"], cwd=REPO, capture_output=True, text=True).stdout
    (dev_pin,) = [
        r
        for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"][
            "dev"
        ]
        if r.startswith("uv==")
    ]
    assert pinned.strip() == dev_pin.removeprefix("uv==") and locked_versions()["uv"] == {pinned.strip()}


def test_the_installer_refuses_an_unknown_set_before_touching_anything(tmp_path):
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "install.sh"), "everything"],
        capture_output=True,
        text=True,
        env={"VENV": str(tmp_path / "venv"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: install set must be base or dev, got 'everything'"
    assert not (tmp_path / "venv").exists()
