"""Atari 2600 games through ale-py (the `atari` extra; its ROMs ship in the wheel): tasks `atari:<Game>`.

`AtariEnv` gives a game the harness's env interface (reset, step -> Step, obs_shape, action_spec,
get_state/set_state between episodes) with the preprocessing of a named protocol (the run key `protocol`,
iqrl.envs.tasks.ATARI_PROTOCOLS; docs/suites.md cites each setting):

* frames: ALE's grayscale screen; an agent step repeats its action for `action_repeat` frames (frame skip 4)
  and sums their rewards; its observation is the pixel-wise max of the last two frames (a reset shows its
  first frame twice), resized to `image_size` square by area averaging, and stacked with the previous
  `frame_stack` - 1 observations (the history, oldest first; a reset fills it with copies of its first, or,
  where the protocol says so (`zero_history`: Atari 100k, as Dopamine's agents), with zeros before it);
* rewards: an agent step's frames' rewards summed; the protocol's `reward_clip` clips that sum for the learner
  in the training env (`Step.learner_reward`), the returns staying unclipped;
* sticky actions: ALE's own `repeat_action_probability` (per frame, the previous frame's action again);
* life loss: a termination of the training env's episode where the protocol says so (the game goes on: the
  next reset continues it, as the episodic-life wrappers of DQN's reproductions do), never of the evaluation
  env's;
* the episode cap: `episode_length` frames per game (108 000 = 27 000 agent steps), counted after the no-op
  starts, a truncation; and, where the protocol has one, its `max_game_frames`, ALE's own cap on a game
  (frames since its reset, no-op starts included; protocol atari100k-ale-cap), a truncation too;
* no-op starts (the protocol's `noop_max`): a new game first plays a uniformly drawn number, 0 to
  noop_max - 1, of agent steps of action 0 (NOOP, the first action of every game's minimal set), or of single
  frames of it where the protocol says so (`noop_frames`: DreamerV3's code, whose first observation is then
  the last no-op frame alone), in the training and the evaluation env alike; their rewards are dropped,
  their frames are not the episode's (nor the run's env steps: they happen inside `reset`), and a game over
  during them (or a life lost, where the protocol ends episodes so) resets the game;
* evaluation epsilon: the evaluation env executes a uniformly random action instead of the agent's with this
  probability per agent step.

The env's own generator draws the no-op counts and the evaluation epsilon.

Env steps are frames: `action_repeat` = 4 env steps per agent step, so the Atari 100k protocol's 100k agent
steps are `steps=400000`.

ale-py is imported only when a game is made or its name checked; `fake` games (tests) stand in for ALE.
"""

from __future__ import annotations

import functools

import numpy as np

from iqrl.core.spaces import ActionSpec
from iqrl.envs.step import Step, check_episode_length
from iqrl.envs.tasks import AtariProtocol, atari_protocol, split_task

FRAME_RATE = 60.0  # the Atari 2600's frames per second (videos play at FRAME_RATE / action_repeat)
NOOP = 0  # the no-op starts' action: NOOP, first in every game's minimal action set
RNG_TAG = 0xA7A  # the wrapper's generator (no-op counts, evaluation epsilon) is seeded [seed, RNG_TAG]


def game_names() -> list[str]:
    """Every game whose ROM ale-py ships, named as Gymnasium's `ALE/<Name>-v5` ids (PascalCase: Pong,
    MontezumaRevenge, UpNDown)."""
    from ale_py import roms
    from ale_py.registration import rom_id_to_name

    return sorted(rom_id_to_name(r) for r in roms.get_all_rom_ids())


def rom_id(name: str) -> str:
    """'MontezumaRevenge' -> 'montezuma_revenge', the ROM id of a game name."""
    from ale_py import roms
    from ale_py.registration import rom_id_to_name

    return {rom_id_to_name(r): r for r in roms.get_all_rom_ids()}[name]


@functools.cache
def area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Area resampling of n_in pixels to n_out, as taps: output pixel i averages the input interval
    [i s, (i + 1) s), s = n_in / n_out, each input pixel weighted by the length of its overlap / s. Returns
    the indices [n_out, k] of the k = ceil(s) + 1 input pixels each output may touch and their weights
    [n_out, k] (0 for those it does not)."""
    s = n_in / n_out
    lo = np.arange(n_out)[:, None] * s
    idx = np.floor(lo).astype(np.int64) + np.arange(int(np.ceil(s)) + 1)[None, :]
    weights = np.clip(np.minimum(lo + s, idx + 1) - np.maximum(lo, idx), 0, None) / s
    return np.minimum(idx, n_in - 1), weights.astype(np.float32)


def area_resize(frame: np.ndarray, size: int) -> np.ndarray:
    """A uint8 [H, W] frame resized to [size, size] by area averaging, rounded to the nearest integer: the
    resampling of OpenCV's INTER_AREA that MR.Q's preprocessing calls (cv2.resize), without OpenCV. On real
    frames resized 210x160 -> 84x84 it equals cv2's on all but about 1 pixel in 10 000, which differ by 1.
    Rows, then columns, by their few taps: elementwise numpy (a dense matrix product would call a threaded
    BLAS, which a busy machine slows 40-fold on this small product)."""
    h, w = frame.shape
    (ri, rw), (ci, cw) = area_taps(h, size), area_taps(w, size)
    rows = (frame.astype(np.float32)[ri] * rw[..., None]).sum(1)  # [size, W]
    return np.rint((rows[:, ci] * cw[None]).sum(2)).astype(np.uint8)


def make_game(name: str, protocol: AtariProtocol):
    """ale-py's Gymnasium env of the game at frame level: grayscale screens, no frame skip (done here), the
    protocol's sticky actions, the minimal action set, no frame limit of its own (the cap is here)."""
    import ale_py
    from ale_py.env import AtariEnv as ALEEnv

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner on every env
    return ALEEnv(
        rom_id(name),
        obs_type="grayscale",
        frameskip=1,
        repeat_action_probability=protocol.sticky_actions,
        full_action_space=False,
        max_num_frames_per_episode=0,
    )


def ale_state(data: bytes):
    """ALE's emulator state (with its generator) from its serialised bytes."""
    from ale_py import ALEState

    return ALEState(data)


class AtariEnv:
    """One Atari game with a protocol's preprocessing (the module's docstring) behind the env interface.

    The first reset seeds the game with `seed` (ale-py derives ALE's seed from it, as `env.reset(seed=seed)`
    in MR.Q's code does); get_state()/set_state() carry the emulator with its generator, this wrapper's frames
    and counters and its own generator (no-op counts, evaluation epsilon) between episodes (checkpoints),
    mid-game too (after a life lost), and mid-episode (its frame history): set_state(s); reset(); step(a1)...
    step(an) replays an episode exactly.
    `game` replaces ale-py's env (tests: a fake with its reset/step/action_space, an `ale` with ALE's
    cloneState, restoreState and getScreenRGB, and `state_from_bytes`, the inverse of its states' serialize).
    """

    def __init__(
        self,
        task: str,
        seed: int,
        action_repeat: int,
        episode_length: int,
        image_size: int,
        frame_stack: int,
        protocol: str | AtariProtocol,
        evaluation: bool = False,
        game=None,
    ):
        check_episode_length(episode_length, action_repeat)
        self.task = task
        self.protocol = protocol if isinstance(protocol, AtariProtocol) else atari_protocol(protocol)
        self.action_repeat, self.episode_length = action_repeat, episode_length
        self.image_size, self.frame_stack = image_size, frame_stack
        self.has_success = False
        self._env = game if game is not None else make_game(split_task(task)[1], self.protocol)
        self.action_spec = ActionSpec.discrete(int(self._env.action_space.n))
        self.act_dim = self.action_spec.n
        self.obs_shape = (frame_stack, image_size, image_size)
        self.obs_dim = self.obs_shape
        self.control_timestep = 1.0 / FRAME_RATE  # seconds per env step (frame): videos' frame rate
        p = self.protocol
        self.epsilon = p.eval_epsilon if evaluation or p.eval_epsilon_in_training else 0.0
        self.reward_clip = 0.0 if evaluation else p.reward_clip  # the learner's rewards (training env only)
        self.life_loss_terminal = p.terminal_on_life_loss and not evaluation
        # the no-op counts' and the evaluation epsilon's draws
        self.rng = np.random.default_rng([seed, RNG_TAG])
        self._seed, self._seeded = seed, False
        self._game_over = True  # the next reset starts a new game
        self._frames = 0  # frames of the current game after its no-op starts (episode_length caps them)
        # frames since the game's reset, no-op starts included (max_game_frames caps them)
        self._game_frames = 0
        self._lives = 0
        self._pool: list[np.ndarray] = []  # the last two frames
        self._history: list[np.ndarray] = []

    # ------------------------------------------------------------------ observations
    def _frame(self) -> np.ndarray:
        """The newest observed frame, [1, size, size]: the max of the last two frames, resized."""
        return area_resize(np.maximum(self._pool[0], self._pool[1]), self.image_size)[None]

    def _new_game(self) -> None:
        frame, info = self._env.reset(seed=None if self._seeded else self._seed)
        self._seeded, self._game_over, self._frames, self._game_frames = True, False, 0, 0
        self._lives = int(info["lives"])
        self._pool = [frame, frame]

    def reset(self) -> np.ndarray:
        if self._game_over:
            self._new_game()
            p = self.protocol
            # As Dopamine's Atari 100k runner: one count per new game, each no-op an env step of action 0
            # (DreamerV3's code: a frame); an end during them (its env's: a game over, or a life lost) resets
            # the game, the count goes on
            frames = 1 if p.noop_frames else self.action_repeat
            for _ in range(int(self.rng.integers(p.noop_max)) if p.noop_max else 0):
                if self._repeat(NOOP, p.terminal_on_life_loss, frames)[1]:  # its rewards dropped
                    self._new_game()
            if p.noop_frames:  # DreamerV3's code: the screen after its no-ops, pooled with itself
                self._pool = [self._pool[1], self._pool[1]]
            self._frames = 0  # the episode starts after its no-ops
        # a new game, or the next life of one (life loss as termination): the history restarts here
        first = self._frame()
        before = np.zeros_like(first) if self.protocol.zero_history else first
        self._history = [before] * (self.frame_stack - 1) + [first]
        return np.concatenate(self._history, 0)

    def _repeat(self, action: int, stop_at_life_loss: bool, frames: int | None = None) -> tuple[float, str]:
        """`action` for `frames` frames (default `action_repeat`: the frame skip), the last two frames pooled,
        stopping early at a game over, at the protocol's cap on a game and, where `stop_at_life_loss`, at a
        life lost. Returns the frames' summed reward and why it stopped early ("over", "cap", "life"; "" when
        it did not)."""
        cap, reward = self.protocol.max_game_frames, 0.0
        for _ in range(self.action_repeat if frames is None else frames):
            frame, r, term, _, info = self._env.step(action)
            reward += float(r)
            self._frames += 1
            self._game_frames += 1
            self._pool = [self._pool[1], frame]
            lost = int(info["lives"]) < self._lives
            self._lives = int(info["lives"])
            if term:
                return reward, "over"
            if cap and self._game_frames >= cap:
                return reward, "cap"
            if lost and stop_at_life_loss:
                return reward, "life"
        return reward, ""

    def step(self, action) -> Step:
        action = int(action)
        if self.epsilon and self.rng.random() < self.epsilon:
            action = int(self.rng.integers(self.act_dim))
        reward, stop = self._repeat(action, self.life_loss_terminal)
        terminated = stop in ("over", "life")
        truncated = not terminated and (stop == "cap" or self._frames >= self.episode_length)
        self._game_over = stop == "over" or truncated
        self._history = self._history[1:] + [self._frame()]
        clipped = float(np.clip(reward, -self.reward_clip, self.reward_clip)) if self.reward_clip else None
        return Step(np.concatenate(self._history, 0), reward, terminated, truncated, learner_reward=clipped)

    def true_state(self) -> np.ndarray:
        """The console's 128 bytes of RAM now, float32 (the state AtariARI, Anand et al. 2019, labels)."""
        return self._env.ale.getRAM().astype(np.float32)

    def video_frame(self) -> np.ndarray:
        """The emulator's RGB screen now, [210, 160, 3] (videos)."""
        return self._env.ale.getScreenRGB()

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict:
        ale_state = self._env.ale.cloneState(include_rng=True).serialize()
        return {
            "ale": np.frombuffer(ale_state, np.uint8).copy(),
            "seeded": self._seeded,
            "game_over": self._game_over,
            "frames": self._frames,
            "game_frames": self._game_frames,
            "lives": self._lives,
            "pool": [f.copy() for f in self._pool],
            "history": [h.copy() for h in self._history],  # the frames of an episode under way
            "epsilon": self.rng.bit_generator.state,  # the env's generator (named before it drew no-ops)
        }

    def set_state(self, state: dict) -> None:
        restore = getattr(self._env, "state_from_bytes", ale_state)
        self._env.ale.restoreState(restore(np.asarray(state["ale"], np.uint8).tobytes()))
        self._seeded, self._game_over = state["seeded"], state["game_over"]
        self._frames, self._lives = state["frames"], state["lives"]
        self._game_frames = state.get("game_frames", state["frames"])  # a state of before no-op starts: equal
        self._pool = [np.asarray(f) for f in state["pool"]]
        self._history = [np.asarray(h) for h in state.get("history", [])]  # none in a state of before
        self.rng.bit_generator.state = state["epsilon"]

    def reseed(self, seed: int) -> None:
        """The next reset starts a new game seeded `seed`, with this wrapper's generator (no-op counts,
        evaluation epsilon) as an env built with `seed` holds it."""
        self._seed, self._seeded, self._game_over = seed, False, True
        self.rng = np.random.default_rng([seed, RNG_TAG])
