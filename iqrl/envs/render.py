"""Headless MuJoCo rendering: the renderer behind `obs=pixels` and evaluation videos, and mp4 files.

Rendering uses MuJoCo's own offscreen GL contexts, independent of dm_control's MUJOCO_GL backend (which the
harness keeps `disable` so that runs never need a GL library): EGL, else OSMesa (or the one MUJOCO_GL names).
PyOpenGL binds one platform per process, so each is first tried in a child process (the GL probe).

A renderer's context is current only while it renders (made current, then released): an EGL context current
in one thread cannot be made current in another (EGL_BAD_ACCESS), and a K-seed group builds its seeds' envs in
the main thread and renders each seed's frames in that seed's own thread.

It imports numpy and mujoco; imageio-ffmpeg (the mp4 writer) when a video is written. The `python -m
iqrl.video` command is iqrl/video.py.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

import mujoco
import numpy as np

BACKENDS = ("egl", "osmesa")
# A frame whose pixel standard deviation (0-255 scale) is below this is blank: the all-black (or all-one-
# colour) frames of a headless GL setup that "renders" without a working context. Every suite task shows a
# skybox and a floor, far above it.
BLANK_STD = 2.0
TRAIN_VIDEO_SIZE = 256  # pixels, square: the videos recorded during training (`video_every`)

_PROBE = """
import importlib, mujoco, numpy as np
gl = importlib.import_module("mujoco." + {backend!r}).GLContext(16, 16)
gl.make_current()
m = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom type='sphere' size='1'/></worldbody></mujoco>")
ctx = mujoco.MjrContext(m, mujoco.mjtFontScale.mjFONTSCALE_100)
ctx.free(); gl.free()
"""


class RendererUnavailable(RuntimeError):
    """No headless OpenGL renderer works on this machine; the message says what was tried."""


class BlankFrames(RuntimeError):
    pass


_backend: str | None = None


def select_backend() -> str:
    """The headless GL backend for this process: MUJOCO_GL when it names egl or osmesa, else the first of
    egl, osmesa that creates a MuJoCo rendering context in a child process. Raises RendererUnavailable."""
    global _backend
    if _backend is None:
        asked = os.environ.get("MUJOCO_GL", "").strip().lower()
        errors = []
        for backend in [asked] if asked in BACKENDS else BACKENDS:
            r = subprocess.run(
                [sys.executable, "-c", _PROBE.format(backend=backend)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if r.returncode == 0:
                _backend = backend
                break
            lines = (r.stderr.strip() or f"exit status {r.returncode}").splitlines()
            errors.append(f"{backend}: {lines[-1]}")
        else:
            raise RendererUnavailable(
                "no headless OpenGL renderer (" + "; ".join(errors) + "); install libegl1 libegl-mesa0 "
                "(EGL) or libosmesa6 (OSMesa), or set MUJOCO_GL=egl|osmesa"
            )
    return _backend


def _release_current() -> None:
    """Make no GL context current in this thread (the backend's call; EGL's display is mujoco.egl's)."""
    if _backend == "egl":
        egl = importlib.import_module("mujoco.egl")
        none = egl.EGL.EGL_NO_SURFACE
        egl.EGL.eglMakeCurrent(egl.EGL_DISPLAY, none, none, egl.EGL.EGL_NO_CONTEXT)
    else:
        from OpenGL import GL, osmesa

        osmesa.OSMesaMakeCurrent(None, None, GL.GL_FLOAT, 0, 0)


_open_renderers: weakref.WeakSet = weakref.WeakSet()


def _close_open_renderers() -> None:
    """Free the GL contexts still open at exit (pixel envs live until then). Registered after the first
    context exists, so it runs before the exit hook with which mujoco.egl then terminates its display
    (hooks run last-registered first): a context freed after that, or during the interpreter's teardown,
    fails with EGL_NOT_INITIALIZED and prints a traceback."""
    for renderer in list(_open_renderers):
        renderer.close()


class Renderer:
    """Square RGB frames of a dm_control physics from its camera `camera` (0: each suite domain's
    tracking camera, the one the suite's own rendering uses by default)."""

    def __init__(self, physics, size: int, camera: int = 0):
        backend = importlib.import_module(f"mujoco.{select_backend()}")
        self.model, self.data, self.size = physics.model.ptr, physics.data.ptr, size
        vis = self.model.vis.global_  # the offscreen buffer must hold the frame (render settings only)
        vis.offwidth, vis.offheight = max(vis.offwidth, size), max(vis.offheight, size)
        self._gl = backend.GLContext(size, size)
        with self._current():
            self._ctx = mujoco.MjrContext(self.model, mujoco.mjtFontScale.mjFONTSCALE_150)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._scene = mujoco.MjvScene(self.model, maxgeom=10_000)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type, self._camera.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, camera
        self._rect = mujoco.MjrRect(0, 0, size, size)
        self._buf = np.empty((size, size, 3), np.uint8)
        if not _open_renderers:
            atexit.unregister(_close_open_renderers)
            atexit.register(_close_open_renderers)
        _open_renderers.add(self)

    @contextlib.contextmanager
    def _current(self):
        """Its context current in this thread for the block, released after (the module's docstring)."""
        self._gl.make_current()
        try:
            yield
        finally:
            _release_current()

    def render(self) -> np.ndarray:
        mujoco.mjv_updateScene(
            self.model, self.data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        with self._current():
            mujoco.mjr_render(self._rect, self._scene, self._ctx)
            mujoco.mjr_readPixels(self._buf, None, self._rect, self._ctx)
        return np.flipud(self._buf).copy()  # OpenGL's rows run bottom-up

    def close(self) -> None:
        if self._ctx is not None:
            with self._current():  # its GL objects are freed in its own context
                self._ctx.free()
            self._gl.free()
            self._ctx = self._gl = None


def check_not_blank(frames: list[np.ndarray]) -> None:
    for i, frame in enumerate(frames):
        std = float(frame.std())
        if std < BLANK_STD:
            raise BlankFrames(
                f"frame {i} is blank (pixel std {std:.2f} < {BLANK_STD}): the GL backend "
                f"{_backend} renders nothing; try MUJOCO_GL=osmesa"
            )


def write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """H.264 mp4 (imageio-ffmpeg's bundled ffmpeg), written beside `path` and renamed onto it."""
    import imageio_ffmpeg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            tmp, (w, h), fps=fps, macro_block_size=2, output_params=["-f", "mp4"], ffmpeg_log_level="error"
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class EpisodeRecorder:
    """Frames of one evaluation episode (`on_frame` after reset and after every agent step), then an mp4:
    rendered from a dm_control physics at `size`, or an env's own RGB frames (`video_frame()`: Atari's
    screen) as they are."""

    def __init__(self, env, size: int):
        self.env, self.frames = env, []
        own = getattr(env, "video_frame", None)
        self.renderer = None if own is not None else Renderer(env.physics, size)
        self.render = own if own is not None else self.renderer.render

    def on_frame(self) -> None:
        self.frames.append(np.array(self.render(), copy=True))

    def save(self, path: Path) -> Path:
        if self.renderer is not None:
            self.renderer.close()
        check_not_blank(self.frames)
        write_mp4(path, self.frames, fps=1.0 / (self.env.control_timestep * self.env.action_repeat))
        return path


def video_name(env_step: int, episode_return: float, episode: int | None = None) -> str:
    ep = "" if episode is None else f"-ep{episode}"
    return f"{env_step}{ep}-return{episode_return:.1f}.mp4"
