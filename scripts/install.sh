#!/usr/bin/env bash
# Installs the locked dependencies into the virtual environment: bash scripts/install.sh base|dev
#   base: what train, demo, sweeps, figures, video and bench need; dev: those, pytest, ruff, uv, every suite
#   and tracker (the dev extra).
# One resolution for every set: uv.lock (`make lock`). uv installs it: the uv on PATH, else the lock's uv
# version bootstrapped into the venv with pip. Where uv cannot be had (or INSTALLER=pip), pip installs the
# same versions from the lock's hash-pinned export, requirements/<set>.txt. torch, pinned in pyproject.toml,
# is installed apart, as before the lock: from a local wheel directory where the machine has one
# (TORCH_WHEELS, default /opt/wheels: the CPU build), else from the package index.
# VENV (default .venv) and PYTHON (the interpreter that creates it, default python3) as in the Makefile.
set -euo pipefail
set=${1:?usage: bash scripts/install.sh base|dev}
case $set in base | dev) ;; *) echo "error: install set must be base or dev, got '$set'" >&2; exit 2 ;; esac
case ${INSTALLER:-uv} in uv | pip) ;; *) echo "error: INSTALLER must be uv or pip, got '$INSTALLER'" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
wheels=${TORCH_WHEELS:-/opt/wheels}
links=()
[ -d "$wheels" ] && links=(--find-links "$wheels")
torch=$(sed -n 's/^ *"\(torch==[^"]*\)",.*/\1/p' pyproject.toml)
# the uv the lock pins (its dev extra), so a bootstrapped uv reads the lock it wrote
uv_pin=$(sed -n '/^name = "uv"$/{n;s/^version = "\(.*\)"$/\1/p;q}' uv.lock)

test -x "$venv/bin/python" || "${PYTHON:-python3}" -m venv "$venv"
uv=""
if [ "${INSTALLER:-uv}" = uv ]; then
    if [ -x "$venv/bin/uv" ]; then
        uv=$venv/bin/uv
    elif command -v uv >/dev/null; then
        uv=$(command -v uv)
    elif "$venv/bin/python" -m pip install -q "uv==$uv_pin"; then
        uv=$venv/bin/uv
    else
        echo "warning: uv could not be installed; pip installs the same versions from requirements/$set.txt" >&2
    fi
fi
if [ -n "$uv" ]; then
    extras=()
    [ "$set" = dev ] && extras=(--extra dev)
    # --inexact: leave what the lock does not name (torch, the dev set after a base install) installed
    UV_PROJECT_ENVIRONMENT=$venv "$uv" sync -q --frozen --inexact --no-install-package torch "${extras[@]}"
    "$uv" pip install -q --python "$venv/bin/python" "${links[@]}" "$torch"
else
    "$venv/bin/python" -m pip install -q --require-hashes --no-deps -r "requirements/$set.txt"
    "$venv/bin/python" -m pip install -q "${links[@]}" "$torch"
    "$venv/bin/python" -m pip install -q --no-deps -e .
fi
# The bytecode of what a run and a sweep import, compiled once here (Python reads it whatever
# PYTHONDONTWRITEBYTECODE says): the first `make demo` or dry sweep then starts as fast as the later ones.
PYTHONDONTWRITEBYTECODE="" "$venv/bin/python" -c "import iqrl.train, apps.demo, slurm.submit, torch._dynamo, analysis.runs.load, analysis.figures.plots"
