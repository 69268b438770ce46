#!/usr/bin/env bash
# One part of the GPU report on a bare GPU machine (docs/performance.md, "On a GPU"), run in the repository's
# root with .whl and .gl beside it:  bash scripts/gpu_part.sh first|1|2|3 (first: the
# GPU's first command, the captured group's check at paper sizes and a learning run end to end)
# Installs the carried wheels (make gpu-wheels) to /tmp/site once per machine, unpacks the GL libraries
# for the pixel rows, runs the part with its rows and log in $OUT (gpu-report/ where OUT is unset).
# GPU_SITE (default /tmp/site) is where the wheels go; SMOKE=1 runs the part at smoke size, on a CPU (without
# carried wheels: with $PYTHON, default python3, and its packages: what make test runs);
# BUDGET_S sets the part's budget in seconds (default 480, the first command 540; less: two parts in one command);
# FULL=1 gives part 2 every planned row (every agent in every mode and precision, the K-seed, pixel, Atari and
# packed rows), not only the campaigns' end-to-end rows.
set -uo pipefail
part=${1:?usage: bash scripts/gpu_part.sh first|1|2|3}
out=${OUT:-gpu-report}
mkdir -p "$out"
if [ -n "${SMOKE:-}" ] && [ ! -e .whl/python-version ]; then
    # the CPU smoke form (make test): this checkout's Python ($PYTHON) and packages, no wheels to install
    PYTHONUNBUFFERED=1 "${PYTHON:-python3}" -m apps.gpu_report part "$part" --out "$out" --smoke \
        ${BUDGET_S:+--budget-s "$BUDGET_S"} ${FULL:+--full} 2>&1 | tee "$out/part$part.log"
    exit "${PIPESTATUS[0]}"
fi
have=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
want=$(cat .whl/python-version 2>/dev/null || echo "none: run make gpu-wheels and carry .whl")
echo "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); the carried wheels are for Python $want"
if [ "$have" != "$want" ]; then
    echo "error: rebuild the wheels for this machine: make gpu-wheels GPU_PYTHON=$have" >&2
    exit 2
fi
site=${GPU_SITE:-/tmp/site}
if [ ! -e "$site/.installed" ]; then  # a warm machine keeps the site from an earlier part
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl \
        && touch "$site/.installed" || exit 2
fi
if ls .gl/*.deb >/dev/null 2>&1; then  # EGL for the pixel rows (apps/gpu_report/wheels.py GL_DEBS)
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
export PYTHONPATH=$site:$PWD PYTHONUNBUFFERED=1
python3 -m apps.gpu_report part "$part" --out "$out" ${SMOKE:+--smoke} ${BUDGET_S:+--budget-s "$BUDGET_S"} \
    ${FULL:+--full} 2>&1 | tee "$out/part$part.log"
exit "${PIPESTATUS[0]}"
