"""`make gpu-wheels`: the wheels a bare GPU machine lacks to run this project, for its Python, in one folder
copied to it with the checkout (.whl/; with the working tree at most 64 MiB, CARRY_LIMIT_MB), and the GL
libraries of its pixel rows (.gl/). scripts/gpu_part.sh installs them there with `pip install --no-index
--target`.

Which wheels: the project's dependencies (pyproject.toml, without extras but `atari` and `minigrid`, for the
discrete agents' rows and tests), at the versions of the lock (uv.lock, `make lock`: the resolution every
install uses) for the GPU machine's Python on Linux x86_64, and theirs, except the packages the GPU
machine's image holds (IMAGE_HAS, torch among them; their own dependencies come with them) and
imageio-ffmpeg (a 65 MB ffmpeg binary for `make video`, which the report does not use). A package with no
wheel on the index (an sdist only, such as rliable) is built here, and must be pure Python, so that it runs
on any Python.
Two wheels are trimmed to fit the carry limit: files no import of this project reaches leave dm_control
(its locomotion, soccer and test assets: 41 of its 54 MB) and mujoco (its experimental studio, 15 of 25 MB);
tests/test_gpu_report.py installs the set into an environment of torch and the image's packages alone and
imports and steps the project's environments with it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
#: The Python packages of the image of the GPU machines the report first ran on, as listed on 2026-11-17.
IMAGE_HAS = frozenset(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
    certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings
    cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils
    execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-
    xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax
    jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
    lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
    matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions
    nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
    nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
    nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-
    nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless
    optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
    pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-
    cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov
    pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich
    sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
    sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
    tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
    tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
    transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
    werkzeug wheel wrapt xarray xxhash yarl zipp""".split()
)
LEFT_OUT = {"imageio-ffmpeg": "ffmpeg for make video only (65 MB)"}
#: The extras the report needs besides the base dependencies: ale-py for its Atari rows (mrq, dqn, ...),
#: minigrid for the discrete agents' runs in tests/test_cuda.py (their tiny task).
EXTRAS = ("atari", "minigrid")
LOCK = REPO / "uv.lock"
#: Folders of a wheel that no import of this project reaches (dm_control.suite imports neither locomotion
#: nor the test assets; `import mujoco` does not import mujoco.experimental), removed to fit the carry limit.
TRIM = {
    "dm-control": ("dm_control/locomotion/", "dm_control/mujoco/testing/", "dm_control/blender/"),
    "mujoco": ("mujoco/experimental/",),
}
#: The debs that give those machines EGL (their Ubuntu's packages), unpacked by scripts/gpu_part.sh.
GL_DEBS = ("libvulkan1", "libegl1", "libglvnd0", "libopengl0", "libgl1", "libglx0", "libgles2")
#: What those machines took with each command: the checkout, its wheels and GL libraries included.
CARRY_LIMIT_MB = 64.0


def linux_env(python: str) -> dict[str, str]:
    """The environment markers of CPython `python` (e.g. "3.12") on Linux x86_64."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "os_name": "posix",
        "extra": "",
    }


def locked(python: str, extras=EXTRAS, stop=frozenset(), lock: Path = LOCK) -> dict[str, str]:
    """{name: version} of what the project requires (with `extras`) on CPython `python` under Linux x86_64,
    and what those require, as uv.lock resolved them; not followed into the names in `stop`."""
    entries: dict[str, list[dict]] = {}
    for package in tomllib.loads(lock.read_text())["package"]:
        entries.setdefault(package["name"], []).append(package)
    (project,) = entries["iqrl-bench"]
    todo = list(project.get("dependencies", []))
    todo += [d for extra in extras for d in project["optional-dependencies"][extra]]
    env, found = linux_env(python), {}
    while todo:
        dep = todo.pop()
        name = dep["name"]
        if name in found or name in stop or ("marker" in dep and not Marker(dep["marker"]).evaluate(env)):
            continue
        # a package the lock resolved twice (one version per Python or platform) is named with its version
        (package,) = [p for p in entries[name] if dep.get("version", p["version"]) == p["version"]]
        found[name] = package["version"]
        todo += package.get("dependencies", [])
        todo += [d for x in dep.get("extra", []) for d in package.get("optional-dependencies", {})[x]]
    return dict(sorted(found.items()))


def needed(python: str) -> dict[str, str]:
    """{name: locked version} of this project's dependencies that the GPU machine lacks: not followed
    into packages the image has (their own dependencies are there with them)."""
    return locked(python, stop=IMAGE_HAS | set(LEFT_OUT))


def platforms(glibc: str) -> list[str]:
    """pip's --platform values for manylinux x86_64 wheels up to glibc `glibc` (pip matches tags exactly)."""
    newest = int(glibc.split(".")[1])
    tags = [f"manylinux_2_{n}_x86_64" for n in range(newest, 4, -1)]
    return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def python_refused(python: str) -> str:
    """Why the wheel set cannot be built for CPython `python` ('' where it can): not major.minor, or outside
    the project's requires-python (pyproject.toml)."""
    if not re.fullmatch(r"\d+\.\d+", python):
        return f"--python {python!r}: give the GPU machine's Python as major.minor, e.g. 3.12"
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    if f"{python}.0" not in SpecifierSet(wanted):
        return f"--python {python}: the project needs Python {wanted} (pyproject.toml's requires-python)"
    return ""


def pip(cmd: list[str], what: str) -> None:
    """Run pip; ValueError (one line: `what` and pip's last line) where it fails (no index reachable, no
    wheel of a version)."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        said = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise ValueError(f"pip could not {what}: {said[-1] if said else f'exit {done.returncode}'}")


def download(packages: dict[str, str], python: str, glibc: str, dest: Path) -> None:
    """Wheels of `packages` for CPython `python` on manylinux x86_64 into dest; a package with only an sdist
    on the index is built into a wheel here, which must then be pure Python."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest)]
    cmd += ["--python-version", python, "--implementation", "cp"]
    cmd += [a for tag in platforms(glibc) for a in ("--platform", tag)]
    pip(cmd + [f"{n}=={v}" for n, v in packages.items()], f"download the wheels for Python {python}")
    for sdist in [*dest.glob("*.tar.gz"), *dest.glob("*.zip")]:
        wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        pip(wheel + ["-w", str(dest), str(sdist)], f"build a wheel of {sdist.name}")
        sdist.unlink()
    binary = [w.name for w in dest.glob("*.whl") if not is_portable(w.name, python)]
    if binary:
        raise RuntimeError(f"built for this machine, not for Python {python} on manylinux: {binary}")


def is_portable(wheel: str, python: str) -> bool:
    """Whether a wheel's tags (name-version-python-abi-platform.whl) fit CPython `python` on manylinux x86_64:
    pure Python, or built for that Python (or the stable ABI) on manylinux."""
    _, abi, platform = wheel[: -len(".whl")].split("-")[-3:]
    cp = "cp" + python.replace(".", "")
    return platform == "any" or (
        abi in ("none", "abi3", cp) and bool(re.search(r"manylinux.*x86_64", platform))
    )


def trim(wheel: Path, prefixes: tuple[str, ...]) -> None:
    """Rewrite `wheel` without the files under `prefixes` (and their RECORD lines)."""
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith(prefixes):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(ln for ln in lines if not ln.startswith(prefixes)).encode()
            dst.writestr(item, data)
    tmp.replace(wheel)


def fetch_gl(dest: Path) -> None:
    """The GL debs for amd64 with apt-get (a private package list, so the system's is left alone)."""
    lists = Path("/tmp/iqrl-gl-lists")
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    opts = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", f"-oDir::State::Lists={lists}"]
    subprocess.run(["apt-get", *opts, "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    dest.mkdir(exist_ok=True)
    subprocess.run(["apt-get", *opts, "download", "-qq", *GL_DEBS], check=True, cwd=dest)


def megabytes(paths) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def tracked_mb() -> float:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True).stdout
    return megabytes(REPO / f for f in files.split("\0") if f)


def build(out: Path, python: str, glibc: str = "2.28") -> list[Path]:
    """The wheel set in `out`, trimmed, replacing its wheels only once all are downloaded (a failed download
    leaves the set there as it was); writes out/python-version. The wheels."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".whl-", dir=out) as tmp:
        download(needed(python), python, glibc, Path(tmp))
        for wheel in Path(tmp).glob("*.whl"):
            name = canonicalize_name(wheel.name.split("-")[0])
            if name in TRIM:
                trim(wheel, TRIM[name])
        for old in out.glob("*.whl"):
            old.unlink()
        for wheel in Path(tmp).glob("*.whl"):
            shutil.move(wheel, out / wheel.name)
    (out / "python-version").write_text(python + "\n")
    return sorted(out.glob("*.whl"))


def prepare(out: Path, python: str, glibc: str, gl: bool = True) -> int:
    """`make gpu-wheels`: the wheel set in `out`, the GL debs in .gl/, and what the copy totals against
    CARRY_LIMIT_MB (part 3's published curves are tracked files, analysis/reference/data). A Python the
    project does not run on, or pip's failure: one error line, exit 2."""
    if reason := python_refused(python):
        print(f"error: {reason}", file=sys.stderr)
        return 2
    try:
        wheels = build(out, python, glibc)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    gl_dir = REPO / ".gl"
    if gl:
        try:
            fetch_gl(gl_dir)
        except (OSError, subprocess.CalledProcessError) as e:  # no apt-get here: only pixel rows miss them
            print(f"warning: no GL debs in .gl/ ({e}): the GPU's pixel rows will fail for want of EGL")
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:7.2f} MB  {w.name}")
    carried = {"wheels": megabytes(out.iterdir()), "GL debs": megabytes(gl_dir.glob("*.deb"))}
    carried["tracked files"] = tracked_mb()
    print(", ".join(f"{k} {v:.1f} MB" for k, v in carried.items()), end="")
    print(f": {sum(carried.values()):.1f} of the {CARRY_LIMIT_MB:.0f} MiB a copy of the checkout may take")
    print(f"left out (the image has them or the report needs none): {', '.join(LEFT_OUT)} and the image's")
    return 0 if sum(carried.values()) <= CARRY_LIMIT_MB else 1
