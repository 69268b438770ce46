import os

os.environ.setdefault("MUJOCO_GL", "disable")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# Tiny but complete runs: 200-env-step episodes, small networks. Used by the end-to-end tests.
TINY_RUN = [
    "task=cartpole-balance",
    "episode_length=200",
    "seed_steps=400",
    "eval_every=400",
    "eval_episodes=2",
    "diag_every=400",
    "checkpoint_every=400",
    "agent.mlp_dims=[32,32]",
    "agent.batch_size=16",
]
TINY_AGENT = {
    "iqrl": ["agent.latent_dim=8", "agent.enc_mlp_dims=[32]"],
    "iqrl-official": ["agent.latent_dim=8", "agent.enc_mlp_dims=[32]"],
    "td3": [],
    "td7": ["agent.zs_dim=16", "agent.enc_mlp_dims=[32,32]", "agent.target_update_every=50"],
    "mrq": [
        "agent.zs_dim=16",
        "agent.za_dim=8",
        "agent.zsa_dim=16",
        "agent.enc_mlp_dims=[32,32]",
        "agent.target_update_every=50",
    ],
    "tcrl": ["agent.latent_dim=8", "agent.enc_mlp_dims=[32]"],
    # MPPI at small sizes (the default 512 samples x 6 iterations is slow on CPU)
    "dcwm": [
        "agent.latent_dim=8",
        "agent.enc_mlp_dims=[32]",
        "agent.num_samples=32",
        "agent.num_pi_trajs=4",
        "agent.num_elites=8",
        "agent.iterations=2",
    ],
    "iqrl-ae": ["agent.latent_dim=8", "agent.enc_mlp_dims=[32]"],
    "iqrl-sac": ["agent.latent_dim=8", "agent.enc_mlp_dims=[32]"],
    "sac": [],
    "taco": ["agent.state_enc_dims=[32]", "agent.feature_dim=16", "agent.action_hidden=16"],
    "sac-ae": ["agent.feature_dim=8"],
    "bro": ["agent.actor_mlp_dims=[16]", "agent.num_quantiles=8", "agent.utd=1"],
    "bro-utd10": ["agent.actor_mlp_dims=[16]", "agent.num_quantiles=8", "agent.utd=1"],
    "crossq": ["agent.actor_mlp_dims=[16,16]", "agent.bn_warmup=50"],
    "simbav2": ["agent.actor_mlp_dims=[16]", "agent.num_bins=11"],
    "simbav2-utd8": ["agent.actor_mlp_dims=[16]", "agent.num_bins=11", "agent.utd=1"],
}


def tiny_argv(agent: str, out, steps: int = 1200, seed: int = 1, extra=()) -> list[str]:
    return [
        f"agent={agent}",
        f"seed={seed}",
        f"steps={steps}",
        f"out={out}",
        *TINY_RUN,
        *TINY_AGENT.get(agent, []),
        *extra,
    ]


@pytest.fixture
def tiny():
    return tiny_argv


@pytest.fixture(scope="session")
def renderer():
    """The headless GL backend (iqrl.core.render.select_backend); skips without one, fails with
    IQRL_REQUIRE_RENDERER=1 (CI installs EGL and OSMesa)."""
    from iqrl.core import render

    try:
        return render.select_backend()
    except render.RendererUnavailable as e:
        if os.environ.get("IQRL_REQUIRE_RENDERER") == "1":
            raise
        pytest.skip(str(e))


def sigint_as_terminal() -> None:
    """`preexec_fn` for a child that a test stops with SIGINT as a terminal's Ctrl-C: SIGINT back to its
    default action, so that Python in the child raises KeyboardInterrupt. A shell without job control starts
    its background commands (`bash .ci/run &` in a wrapper script) with SIGINT ignored, and a child inherits
    that: the SIGINT would then do nothing at all."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(cond, proc=None, what: str = "the condition", hang_s: float = 900.0) -> None:
    """Block until cond() holds: an event (a file written, a step reached), not a number of seconds.
    Fails at once if `proc` exits first (the event can no longer happen). `hang_s` only turns a hang into a
    failure; it is far beyond any machine's time for the tiny runs here, so it never decides a verdict."""
    import time

    t0 = time.monotonic()
    while not cond():
        if proc is not None and proc.poll() is not None:
            if cond():
                return
            out = proc.communicate()[1] if proc.stderr else ""
            raise AssertionError(f"process exited ({proc.returncode}) before {what}: {out}")
        if time.monotonic() - t0 > hang_s:
            raise AssertionError(f"no {what} after {hang_s:.0f} s: hung")
        time.sleep(0.02)


def stop_after_episodes(n: int):
    """A trainer `should_stop` that asks to stop at the end of the n-th episode it is asked about."""
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] == n

    return should_stop
