"""The training loop: one run's counters and the logs of its run folder (its checkpoint and resume:
iqrl/loop/resume.py).

The env step is the clock. The loop takes one agent step at a time (`action_repeat` env steps): an episode
starts when none is open (uniform random actions for the whole episode when it starts while env_step <
seed_steps); the agent's schedule (iqrl/core/schedule.py) runs its updates after a step, after an episode the
agent collected, or once when seeding ends, their number following the run's rate `updates_per_step` with
fractional credit carried over. After every agent step the loop does what is due at that env step: an
evaluation at each multiple of `eval_every` (and at step 0 and at the end), a train.csv row every
`diag_every`, a checkpoint every `checkpoint_every`, a stop on request (Ctrl-C, SIGTERM, Slurm's signal);
mid-episode if that is where the step falls (evaluation runs in the evaluation env, the training episode
waits). The run trains exactly `steps` env steps: an episode still open at the budget ends there as a
time-limit truncation (bootstrapped).

A checkpoint holds everything the loop needs, the open episode included (the state of its env before its
reset and the actions taken since); a resume replays that episode's actions from that state to the step where
it stopped (every env is deterministic given them), so a run killed at any moment and re-run with the same
command ends with the same eval.csv as one never interrupted.

A multi-task run (a task list; docs/transfer.md) collects its episodes from the tasks in turn (episode k from
task k mod T, into that task's replay), counts env steps over all tasks (`steps` is the run's total), and
evaluates every task at each evaluation: one eval.csv row per task, named in its `task` column.

It imports torch and the core modules that build, evaluate, probe and describe a run; the command line
around it is iqrl/train.py.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from iqrl.config.run import RunConfig, perturbations, to_yaml_dict
from iqrl.core.schedule import Credit, EpisodeEnd
from iqrl.core.update import Updater
from iqrl.envs import render
from iqrl.envs.tasks import suite_of, task_list
from iqrl.loop.beside import EvaluationBeside
from iqrl.loop.device import UpdatePrecision, resolve_device
from iqrl.loop.episode import OpenEpisode
from iqrl.loop.evaluation import eval_returns, outcome_row
from iqrl.loop.lanes import Lanes
from iqrl.loop.latent_probe import collapse_warning, probe_latent
from iqrl.loop.parts import build_parts, eval_env_copy
from iqrl.loop.resume import Resumable
from iqrl.loop.state_probe import probe_columns, state_ring
from iqrl.loop.timing import TimeSplit, summary_line
from iqrl.runfolder.csvfile import write_csv
from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
from iqrl.runfolder.layout import eval_columns
from iqrl.runfolder.lock import check_lock
from iqrl.runfolder.loggers import Trackers
from iqrl.runfolder.progress import Progress
from iqrl.runfolder.status import write_status


class NonFiniteLoss(FloatingPointError):
    pass


def new_row_totals() -> dict:
    """The sums behind one train.csv row: metrics, and env and update counts and seconds (throughput)."""
    return dict(
        sums={}, counts={}, env_steps=0, env_time=0.0, updates=0, update_time=0.0, episodes=0, return_sum=0.0
    )


class Trainer(Resumable):
    """Owns one run: its parts (iqrl.loop.parts), counters, and the run folder's files; its checkpoint and
    resume are Resumable's (iqrl.loop.resume)."""

    how: dict | None = None  # its mode and command (provenance.run_mode), recorded in config.yaml's meta

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        p = self.parts = build_parts(cfg, self.device)
        self.env, self.eval_env, self.agent, self.replay = p.env, p.eval_env, p.agent, p.replay
        self.tasks = task_list(cfg.task)
        self.lanes = Lanes([p.env, *p.more_envs])  # the training envs taking agent steps in turn
        # Batched evaluation needs the episodes' streams to be the sequential loop's: not so when the noises
        # and sticky actions of the evaluation env, or the suite's env itself (Atari), draw at every step
        # (they stay sequential).
        self.batched_eval = (
            cfg.eval_batched
            and not perturbations(cfg, evaluation=True).active
            and suite_of(self.tasks[0]).batched_eval
        )
        # per task: its evaluation env + eval_episodes - 1 copies, made at the first evaluation
        self._eval_envs = [[env] for env in p.eval_envs]
        self.rng = np.random.default_rng(cfg.seed + 2)  # seed-phase actions
        self.diag_generator = torch.Generator(device=self.device)
        self.diag_generator.manual_seed(cfg.seed + 3)
        self.state_ring = state_ring(self.agent, cfg.diagnostics and len(self.tasks) == 1)  # (state_probe.py)
        # updates earned per env step: the run's key, or the agent's default
        rate = (
            self.agent.spec.rate(cfg.action_repeat) if cfg.updates_per_step is None else cfg.updates_per_step
        )
        self.credit = Credit(rate)
        self.autocast = UpdatePrecision(cfg.precision, self.device)  # entered around every update
        # Counters (all env steps) and logs; everything here is checkpointed.
        self.env_step = 0
        self.episode = 0
        self.updates = 0
        self.next_eval = 0
        self.next_diag = cfg.diag_every
        self.next_ckpt = cfg.checkpoint_every
        self.eval_rows: list[dict] = []
        self.train_rows: list[dict] = []
        self.row_totals = new_row_totals()
        self.unsynced: tuple[dict, dict] = ({}, {})  # metric sums/counts not yet synced to the host
        self.open: OpenEpisode | None = None  # the training episode under way
        self.wall_offset = 0.0
        self.t0 = time.time()
        self.split = TimeSplit()  # where the wall time goes (iqrl/loop/timing.py): train.csv and status.json
        self.last_return = float("nan")
        self.trackers = Trackers()  # TensorBoard / W&B (logger=...): opened by run()
        self.beside: EvaluationBeside | None = None  # an evaluation under way beside training (eval_beside)

    def close(self) -> None:
        """End what the run holds outside this process: an evaluation under way beside training (stopped: a
        run that ends here no longer wants it), its envs' worker processes (env_workers=true)."""
        if self.beside is not None:
            self.beside.stop()
            self.beside = None
        self.parts.close()

    def wall_time(self, at: float | None = None) -> float:
        """The run's wall time in seconds (at time.time() `at`, now by default), resumed attempts included."""
        return self.wall_offset + (time.time() if at is None else at) - self.t0

    # ------------------------------------------------------------------ acting
    def select_task(self, i: int) -> None:
        """Task i's envs, its replay and the agent's task for the episodes that follow (multi-task runs; a
        run of one task: its current training env)."""
        self.env = self.parts.envs[i] if i else self.lanes.envs[self.lanes.current]
        self.eval_env = self.parts.eval_envs[i]
        if len(self.tasks) > 1:
            self.agent.task = self.replay.task = i

    def select_lane(self, i: int) -> None:
        """Training env i (train_envs > 1: iqrl/loop/lanes.py) for the agent steps that follow: its open
        episode, its replay and the agent's acting state for it."""
        lanes = self.lanes
        if i == lanes.current:
            return
        lanes.open[lanes.current], self.open, lanes.current = self.open, lanes.open[i], i
        self.env = lanes.envs[i]
        self.replay.lane = i
        self.agent.select_train_env(i)

    def seeding(self, ep: OpenEpisode) -> bool:
        """Whether the agent step about to be taken is in the seed phase: its episode started in it (one
        training env), or the step does (several: iqrl/loop/lanes.py)."""
        return ep.seeding if len(self.lanes) == 1 else self.env_step < self.cfg.seed_steps

    def start_episode(self) -> None:
        """Open a training episode (of task `episode` mod T): its env's state before the reset is kept, with
        the actions that follow, so that a checkpoint can take the episode up again mid-way."""
        task = self.episode % len(self.tasks)
        self.select_task(task)
        seeding = self.env_step < self.cfg.seed_steps
        start_state = self.env.get_state()
        obs = self.env.reset()
        self.agent.on_episode_start(training=True)
        self.agent.observe(obs)
        self.replay.start_episode(obs)
        self.open = OpenEpisode(task, start_state, self.env_step, seeding, obs)

    def agent_step(self) -> bool:
        """One agent step of the open episode (`action_repeat` env steps) into the replay, then the updates
        the schedule asks for after it. True when the episode ended: by the env, or at the run's budget (a
        time-limit truncation there)."""
        ep, t = self.open, time.time()
        seeding = self.seeding(ep)
        if seeding and not self.agent.spec.warmup_with_policy:
            action = self.env.action_spec.sample(self.rng)
        elif (action := self.lanes.take_action()) is None:  # none acted at a round's start: its own
            with self.split("act"):
                action = self.agent.act(ep.obs, explore=True)
        step = self.env.step(action)
        self.state_ring.record(step.obs, self.env)
        self.env_step += self.cfg.action_repeat
        truncated = step.truncated or (self.env_step >= self.cfg.steps and not step.terminated)
        ended = step.terminated or truncated
        learned = step.reward if step.learner_reward is None else step.learner_reward  # Atari 100k: clipped
        self.agent.observe(step.obs, learned, ended)
        self.replay.add(action, learned, step.obs, step.terminated, truncated)
        ep.actions.append(action)
        ep.ret += step.reward
        ep.obs = step.obs
        self.row_totals["env_steps"] += self.cfg.action_repeat
        self.row_totals["env_time"] += time.time() - t
        if not seeding and (
            n := self.due(self.agent.schedule.after_step(self.credit, self.cfg.action_repeat))
        ):
            self.run_updates(n)
        return ended

    def finish_episode(self) -> tuple[float, bool]:
        """Close the episode that just ended; its (return, collected_by_agent)."""
        ep, self.open = self.open, None
        self.episode += 1
        return ep.ret, not ep.seeding

    def collect_episode(self) -> tuple[float, bool]:
        """One whole training episode (to its end or the budget) with the updates the schedule runs after its
        steps; its (return, collected_by_agent). The episode's own updates are the loop's (`end_episode`)."""
        self.start_episode()
        while not self.agent_step():
            pass
        return self.finish_episode()

    def end_episode(self, ep_return: float, by_agent: bool, length: int) -> None:
        """After an episode of `length` env steps: the updates its schedule asks for now."""
        self.last_return = ep_return
        self.row_totals["episodes"] += 1
        self.row_totals["return_sum"] += ep_return
        schedule = self.agent.schedule
        if by_agent:
            self.learn(self.due(schedule.after_episode(self.credit, EpisodeEnd(length, ep_return))))
        elif self.env_step >= self.cfg.seed_steps:  # the last seed episode
            if (n := schedule.after_seeding(self.credit, self.env_step)) is not None:
                self.learn(self.due(n))

    def due(self, n: int) -> int:
        """The n updates a schedule asked for, or none while the replay holds no window of the agent's length
        yet (seed_steps=0: the first agent episode's first steps): those are not run, as an agent's code does
        not train before its buffer can fill a batch."""
        return n if n and self.replay.holds_window() else 0

    def run_updates(self, n: int) -> None:
        sums, counts = self.unsynced
        t = time.time()
        with self.split("update"):
            for _ in range(n):
                with self.autocast:
                    metrics = self.update_agent()
                self.updates += 1
                for k, v in metrics.items():
                    sums[k] = sums[k] + v if k in sums else v
                    counts[k] = counts.get(k, 0) + 1
        self.row_totals["updates"] += n
        self.row_totals["update_time"] += time.time() - t

    def update_agent(self) -> dict:
        """The agent's update number `updates`; its metrics."""
        return self.agent.update(self.replay, self.updates)

    def flush_metrics(self) -> None:
        """One host sync per episode: tensors -> floats, then the NaN/inf guard."""
        sums, counts = self.unsynced
        for k, v in sums.items():
            v = float(v)
            if not math.isfinite(v):
                raise NonFiniteLoss(f"non-finite {k} ({v}) in the updates ending at env_step {self.env_step}")
            self.row_totals["sums"][k] = self.row_totals["sums"].get(k, 0.0) + v
            self.row_totals["counts"][k] = self.row_totals["counts"].get(k, 0) + counts[k]
        self.unsynced = ({}, {})

    def learn(self, n: int) -> None:
        """After an episode: the updates the agent's schedule asked for, one host sync, the agent's
        per-episode schedules. The sync is the updates' time (on a GPU the host waits for them there)."""
        with self.split("update"):
            self.run_updates(n)
            self.flush_metrics()
        self.agent.on_episode_end()

    # ------------------------------------------------------------------ evaluation and train.csv rows
    def video_due(self) -> bool:
        """At the evaluation at step 0 and the first one in each later block of `video_every` env steps."""
        every = self.cfg.video_every
        last = self.eval_rows[-1]["env_step"] if self.eval_rows else -1
        return every > 0 and (last < 0 or self.env_step // every > last // every)

    def evaluate(self) -> list[dict]:
        """The evaluation rows at this env step: one, or one per task of a multi-task run (`task` column).
        An open training episode waits in its own env and takes up its task again after. Beside training
        (`eval_beside`, iqrl/loop/beside.py) the rows come later, from `evaluated`; so do those of an
        evaluation still under way, first."""
        rows = self.evaluated()
        with self.split("evaluate"):
            if self.cfg.eval_reseed:  # its episodes and draws from (seed, env step) alone
                self.parts.seed_evaluation(self.env_step)
            if self.evaluates_beside():
                envs, episodes, batched = self.eval_envs(0), self.cfg.eval_episodes, self.batched_eval
                probe = self.cfg.diagnostics
                self.beside = EvaluationBeside(self.agent, envs, episodes, batched, self.env_step, probe)
                return rows
            rows += [self.evaluate_task(i) for i in range(len(self.tasks))]
        if self.open is not None:
            self.select_task(self.open.task)
        return rows

    def evaluates_beside(self) -> bool:
        """Whether this evaluation runs beside training (docs/performance.md says when it may and why)."""
        return (
            self.cfg.eval_beside
            and not self.cfg.cudagraphs
            and self.agent.evaluates_beside
            and len(self.tasks) == 1
            and type(self.agent.updater) is Updater  # acting of its own, not a K-seed group's rounds
            and not self.video_due()
            and self.env_step < self.cfg.steps  # the run's last evaluation: in line, before its end
        )

    def evaluated(self) -> list[dict]:
        """The row of the evaluation under way beside training, once it ended (none when there is none)."""
        if self.beside is None:
            return []
        with self.split("evaluate"):  # the wait for it (interrupted there, `close` stops it)
            outcomes = self.beside.result(self.agent)
            beside, self.beside = self.beside, None
        return [self.eval_row(0, outcomes, beside.env_step, beside.ended)]

    def evaluate_task(self, i: int) -> dict:
        cfg = self.cfg
        self.select_task(i)
        # the first episode on video when one is due (rendering leaves the episode and all RNGs alone)
        video = render.EpisodeRecorder(self.eval_env, render.TRAIN_VIDEO_SIZE) if self.video_due() else None
        on_frame = video and video.on_frame
        with self.agent.evaluating():  # its own generator: evaluating moves no training number
            outcomes = eval_returns(
                self.eval_envs(i), self.agent, cfg.eval_episodes, self.batched_eval, on_frame, cfg.diagnostics
            )
        if video is not None:
            video.save(self.run_dir / "videos" / render.video_name(self.env_step, outcomes[0].ret))
        return self.eval_row(i, outcomes, self.env_step, time.time())

    def eval_row(self, i: int, outcomes: list, env_step: int, ended: float) -> dict:
        """Task i's eval.csv row of the evaluation at `env_step` that ended at time `ended`, kept and sent to
        the trackers."""
        success = self.parts.eval_envs[i].has_success
        row = outcome_row(outcomes, env_step, round(self.wall_time(ended), 3), success)
        kind = "eval"
        if len(self.tasks) > 1:  # each task its own series in the trackers (eval/<task>/episode_return)
            row["task"] = self.tasks[i]
            kind = f"eval/{self.tasks[i]}"
        self.eval_rows.append(row)
        self.trackers.log(kind, row)
        return row

    def eval_envs(self, i: int) -> list:
        """Task i's evaluation env, and with batched evaluation eval_episodes - 1 copies of it (`eval_batch`
        sets their streams)."""
        envs = self._eval_envs[i]
        while self.batched_eval and len(envs) < self.cfg.eval_episodes:
            envs.append(eval_env_copy(self.cfg, self.tasks[i], self.parts.eval_seed))
        return envs

    def train_row(self) -> dict:
        self.flush_metrics()  # the updates of an episode still open count in this row
        w = self.row_totals
        row = {"env_step": self.env_step, "episode": self.episode, "updates": self.updates}
        row.update({k: w["sums"][k] / w["counts"][k] for k in w["sums"]})
        row["train_return"] = w["return_sum"] / w["episodes"] if w["episodes"] else None
        expl = self.agent.exploration_sigma
        if expl is not None:
            row["expl_sigma"] = expl
        if self.cfg.diagnostics:  # own generator: training draws the same either way
            row.update(probe_latent(self.agent, self.replay, self.diag_generator))
            row.update(probe_columns(self.agent, self.state_ring, self.device))
        row["env_steps_per_s"] = w["env_steps"] / w["env_time"] if w["env_time"] > 0 else None
        row["updates_per_s"] = w["updates"] / w["update_time"] if w["update_time"] > 0 else None
        row.update(self.split.take_window())
        row["wall_time_s"] = round(self.wall_time(), 3)
        self.train_rows.append(row)
        self.trackers.log("train", row)
        self.row_totals = new_row_totals()
        return row

    # ------------------------------------------------------------------ files
    def write_logs(self) -> None:
        with self.split("write"):
            self._write_logs()

    def _write_logs(self) -> None:
        check_lock(self.run_dir)  # at every episode end: the run folder is still this process's (LostLock)
        write_csv(self.run_dir / "eval.csv", self.eval_rows, eval_columns(self.eval_rows))
        if self.train_rows:
            write_csv(self.run_dir / "train.csv", self.train_rows)

    # ------------------------------------------------------------------ the loop
    def run(self, should_stop=None) -> int:
        """Open or resume the run folder (Resumable.open_folder), then train."""
        return self.train(self.open_folder(), should_stop)

    def train(self, resumed: bool, should_stop=None) -> int:
        """The loop on an opened run folder (`resumed`: from its checkpoint), with its trackers."""
        # rows after the checkpoint (or all, on a fresh start) are sent again: trackers drop earlier copies
        self.trackers = Trackers(
            self.cfg.logger, self.run_dir, to_yaml_dict(self.cfg), self.env_step + 1 if resumed else 0
        )
        self.split.restart()  # the split counts the loop (in a K-seed group, not the other seeds' building)
        try:
            return self._loop(should_stop, resumed)
        finally:
            self.trackers.close()

    def log_due(self, progress: Progress, finished: bool) -> bool:
        """The evaluation and the train.csv row due at this env step (both at the end); whether any was. An
        evaluation that ended beside training is on the progress line now and in eval.csv with the next write
        the step schedules: when the files are written depends on the env step alone, not on wall time."""
        cfg, logged = self.cfg, False
        if self.beside is not None and self.beside.finished.is_set():
            self.log_evaluated(progress)
        if self.env_step >= self.next_eval or finished:
            for row in self.evaluate():
                progress.log_eval(row)
            while self.next_eval <= self.env_step:
                self.next_eval += cfg.eval_every
            logged = True
        if self.env_step >= self.next_diag or finished:
            with self.split("write"):  # the diagnostics' probe, and the row
                self.train_row()
            if warning := collapse_warning(self.train_rows):
                progress.write(warning)
            while self.next_diag <= self.env_step:
                self.next_diag += cfg.diag_every
            logged = True
        return logged

    def log_evaluated(self, progress: Progress) -> bool:
        """The rows of the evaluation beside training, once it ended, on the progress line; whether any."""
        rows = self.evaluated()
        for row in rows:
            progress.log_eval(row)
        return bool(rows)

    def write_status(self, state: str) -> None:
        """status.json, with the wall time's split in all so far (`time_split`, seconds per phase) and the
        agent's updates so far."""
        with self.split("write"):
            check_lock(self.run_dir)  # still this process's folder, at its path (never made again elsewhere)
            so_far = {"time_split": self.split.summary(), "updates": self.updates}
            write_status(self.run_dir, state, self.env_step, self.cfg.steps, **so_far)

    def _loop(self, should_stop, resumed: bool) -> int:
        cfg = self.cfg
        self.write_logs()  # drop rows written after the checkpoint by an interrupted attempt
        self.write_status("running")
        progress = Progress(cfg, self.env_step, resumed)
        if self.env_step == 0 and not self.eval_rows:
            for row in self.evaluate():
                progress.log_eval(row)
            self.next_eval = cfg.eval_every
            self.write_logs()
        while self.env_step < cfg.steps:
            turn = self.lanes.turn(self.env_step, cfg.action_repeat)
            if turn == 0 and len(self.lanes) > 1:
                self.lanes.start_round(self)
            self.select_lane(turn)
            if self.open is None:
                self.start_episode()
            ended = self.agent_step()
            if ended:
                start = self.open.start_step
                ep_return, by_agent = self.finish_episode()
                self.end_episode(ep_return, by_agent, self.env_step - start)
            finished = self.env_step >= cfg.steps
            logged = self.log_due(progress, finished)
            if ended or logged:
                self.write_logs()
            if ended:
                progress.update(self.env_step, ep_return)
            if finished:
                break
            stop = should_stop is not None and should_stop()
            saved = self.env_step >= self.next_ckpt or stop
            if saved:
                while self.next_ckpt <= self.env_step:  # first: the checkpoint holds the next due step
                    self.next_ckpt += cfg.checkpoint_every
                self.log_evaluated(progress)  # no checkpoint holds an evaluation under way
                self.write_logs()  # at every checkpoint, whether or not that evaluation had ended before
                self.save_checkpoint()
            if ended or saved:
                self.write_status("interrupted" if stop else "running")
            if stop:
                progress.close(f"interrupted at env_step {self.env_step}; checkpoint saved, re-run to resume")
                return EXIT_INTERRUPTED
        self.save_checkpoint()
        self.write_status("done")
        final = [
            f"{r.get('task', 'final')} return {r['episode_return']:.1f}"
            for r in self.eval_rows[-len(self.tasks) :]
        ]
        progress.write(summary_line(self.split.summary()))
        progress.close(f"done: {self.run_dir} ({', '.join(final)})")
        return EXIT_OK
