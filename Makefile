# iqrl-bench user interface. Every target sets up .venv on first use, with what it needs: the base packages
# (BASE_STAMP: train, demo, sweeps, figures, video, bench), or those and the dev extra (STAMP: pytest, ruff, the
# other suites and the trackers their tests use; make test, lint, format, install).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BASE_STAMP := $(VENV)/.installed-base
STAMP := $(VENV)/.installed
# The CPU build of torch 2.13.0 lives in /opt/wheels on the project's machines (make lock; scripts/install.sh too).
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
# dm_control's own GL backend stays off, so training and tests need no GL library; rendering (make video,
# video_every) opens its own EGL or OSMesa context (iqrl/video.py), which MUJOCO_GL=egl|osmesa can pin.
export MUJOCO_GL ?= disable
# Python keeps the bytecode of what it imports (the .venv's packages, the repository's modules; __pycache__ is
# ignored by git): with PYTHONDONTWRITEBYTECODE, set on some machines, every process would compile torch and
# the rest from source again, about 3 s of CPU per process (make test starts hundreds).
unexport PYTHONDONTWRITEBYTECODE

RESULTS ?= results
SWEEP ?= ablations/smoke.yaml
CLUSTER ?=
DRY ?=
YES ?=
GPU_HOURS ?=
AGENTS ?=
OUT ?=
BENCH_OUT ?= bench.json
AGENT ?=
TASK ?=

.PHONY: help install venv-install lock test test-agent switches lint format demo sweep status figures reference bench validate video clean \
	gpu-report gpu-wheels

help:
	@echo "make test | test-agent NAME=... | switches | lock | demo | sweep SWEEP=... | status SWEEP=... | figures RESULTS=... | reference [FROM=...] | bench | validate | video RUN=..."
	@echo "make gpu-report PART=1|2|3|all [SMOKE=1] [FULL=1] | gpu-wheels [GPU_PYTHON=3.12]"

$(BASE_STAMP): pyproject.toml uv.lock
	@flock .venv.lock $(MAKE) -s --no-print-directory venv-install WANT=$(BASE_STAMP) SET=base

$(STAMP): pyproject.toml uv.lock
	@flock .venv.lock $(MAKE) -s --no-print-directory venv-install WANT=$(STAMP) SET=dev

# Serialised by the lock above: concurrent make invocations (e.g. two `make sweep`) install once. The dev
# install is the base one and more, so it stamps both: `make test` after `make demo` adds the dev extra to
# the same .venv, `make demo` after `make test` installs nothing. scripts/install.sh installs uv.lock's
# versions with uv (pip from requirements/<set>.txt where uv cannot be had, or INSTALLER=pip).
venv-install:
	@set -e; if [ ! $(WANT) -nt pyproject.toml ] || [ ! $(WANT) -nt uv.lock ]; then \
	  if [ ! $(STAMP) -nt pyproject.toml ] || [ ! $(STAMP) -nt uv.lock ]; then \
	    VENV=$(VENV) PYTHON=$(PYTHON) bash scripts/install.sh $(SET); \
	  fi; \
	fi; touch $(WANT) $(if $(filter $(STAMP),$(WANT)),$(BASE_STAMP))

# make lock: resolve pyproject.toml again into uv.lock (every extra, every platform; torch's CPU build from
# the local wheel directory where there is one) and its hash-pinned exports for pip, requirements/<set>.txt.
# tests/test_lock.py fails when pyproject.toml and uv.lock disagree.
UV = $(or $(wildcard $(VENV)/bin/uv),$(shell command -v uv))
EXPORT = --frozen --no-emit-project --no-emit-package torch --format requirements-txt
lock:
	@test -n "$(UV)" || { echo "error: make lock needs uv: make install (or pip install uv) first" >&2; exit 2; }
	$(UV) lock $(FIND_LINKS)
	$(UV) export -q $(EXPORT) -o requirements/base.txt
	$(UV) export -q $(EXPORT) --extra dev -o requirements/dev.txt

install: $(STAMP)

# TEST_WORKERS: pytest-xdist processes, one test file each at a time; 0 runs them in-process. Three on CI's 2
# cores: the Slurm tests wait on their jobs' time limits, and a third worker uses the core they leave
# (docs/testing.md, "Profile").
TEST_WORKERS ?= 3
test: $(STAMP) lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 tests

# make test-agent NAME=<agent>[,<agent>]: every registry-wide test for those agents (the tests marked
# `registry`: conformance, config ranges and parts, transfer parts, key docs, action spaces, sync-free updates,
# batched evaluation, the K-seed mode from states and from pixels, compile with inductor, and what `make test`
# checks of every file, for the agent's own: docs/switches.md current, its modules' citations, ruff;
# docs/extending.md lists them), and the tests of its own files (tests/test_<name with - as _>.py,
# tests/test_<its class's module>.py).
NAME ?=
test-agent: $(STAMP)
	@test -n "$(NAME)" || { echo "error: give the agent: make test-agent NAME=<agent>" >&2; exit 2; }
	$(PY) -m pytest -q -n 0 -m registry --agent "$(NAME)" --durations=5 tests

# make switches: docs/switches.md's key tables written again from the config dataclasses (each key's comment) and
# docs/switch_tests.yaml (the tests that pin each key), and the lists of agents and their defaults in README.md
# and docs/ from the registry (iqrl/agent_docs.py), and the list of sweep files from ablations/ (slurm/sweep_docs.py);
# tests/test_switch_map.py, tests/test_agent_docs.py and tests/test_sweep_docs.py fail until they agree.
switches: $(BASE_STAMP)
	$(PY) -m iqrl.config.switch_docs
	$(PY) -m iqrl.agent_docs
	$(PY) -m slurm.sweep_docs

# ruff (configured in pyproject.toml): the formatter's check and the linter; `make format` applies both fixes.
lint: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Sweeps (slurm/, docs/sweeps.md): CLUSTER = profile in slurm/profiles (default: local when
# Slurm is absent), DRY=1 prints the runs and sbatch parameters only, AGENTS=a,b runs a subset;
# GPU_HOURS=700 with DRY=1 sets the projection's measured modes and K per agent against that budget;
# YES=1 starts a local sweep of more than 24 CPU-hours.
sweep: $(BASE_STAMP)
	$(PY) -m slurm sweep "$(SWEEP)" --results "$(RESULTS)" $(if $(CLUSTER),--cluster "$(CLUSTER)") \
		$(if $(filter 1 yes true,$(DRY)),--dry) $(if $(AGENTS),--agents "$(AGENTS)") \
		$(if $(GPU_HOURS),--gpu-hours "$(GPU_HOURS)") $(if $(filter 1 yes true,$(YES)),--yes)

status: $(BASE_STAMP)
	$(PY) -m slurm status "$(SWEEP)" --results "$(RESULTS)" $(if $(AGENTS),--agents "$(AGENTS)")

demo: $(BASE_STAMP)
	$(PY) -m apps.demo

# make figures RESULTS=<folder> [OUT=figures] [REFERENCE=1|<folder of tables>|<table.csv.gz>]
#              [STEPS=100000,500000,1000000] [EXCLUDE_PARTIAL=1] [X=steps|wall]
#              X=wall: the sample-efficiency curves against the runs' wall-clock hours (docs/figures.md).
#              REFERENCE=1: every published table that ships in analysis/reference/data (docs/figures.md). Another
#              version of one source, read from a checkout of its repository, in place of its shipped rows:
#              [REFERENCE_GYM=<MRQ checkout>/results/gym_results.txt] [REFERENCE_ATARI=<MRQ checkout>/results/atari_results.txt]
#              [REFERENCE_BBF=<google-research checkout>/bigger_better_faster/scores/RR8_BBF.csv]
#              [REFERENCE_SIMBA=<SimbaV2 checkout>/results] [REFERENCE_DRQ=<DR.Q checkout>/results]
#              [REFERENCE_DREAMERV3=<dreamerv3 checkout>/scores]
#              (bootstrap reps: env IQRL_REPS_CURVE / IQRL_REPS_FINAL)
REFERENCE ?=
REFERENCE_GYM ?=
REFERENCE_ATARI ?=
REFERENCE_BBF ?=
REFERENCE_SIMBA ?=
REFERENCE_DRQ ?=
REFERENCE_DREAMERV3 ?=
STEPS ?= 100000,500000,1000000
EXCLUDE_PARTIAL ?=
X ?= steps
figures: $(BASE_STAMP)
	MPLBACKEND=Agg $(PY) -m analysis.figures.make --results "$(RESULTS)" --out "$(or $(OUT),figures)" \
		--steps "$(STEPS)" $(if $(filter 1,$(REFERENCE)),--reference,$(if $(REFERENCE),--reference "$(REFERENCE)")) \
		$(if $(filter 1,$(EXCLUDE_PARTIAL)),--exclude-partial) $(if $(REFERENCE_GYM),--reference-gym "$(REFERENCE_GYM)") \
		--x "$(or $(X),steps)" \
		$(if $(REFERENCE_ATARI),--reference-atari "$(REFERENCE_ATARI)") \
		$(if $(REFERENCE_BBF),--reference-bbf "$(REFERENCE_BBF)") \
		$(if $(REFERENCE_SIMBA),--reference-simba "$(REFERENCE_SIMBA)") \
		$(if $(REFERENCE_DRQ),--reference-drq "$(REFERENCE_DRQ)") \
		$(if $(REFERENCE_DREAMERV3),--reference-dreamerv3 "$(REFERENCE_DREAMERV3)")

# make reference [REFERENCE_DIR=build/reference] [FROM=<folder of the released files>]: the published tables of
# analysis/reference/data built again from the sources' released files, each downloaded at its pinned commit (or,
# with FROM=, read from <FROM>/<owner>/<repo>/<path>) and checked against its sha256 (a missing or altered file:
# one error: line, exit 2); it says per table whether it equals the shipped one (docs/figures.md).
REFERENCE_DIR ?= build/reference
FROM ?=
reference: $(BASE_STAMP)
	$(PY) -m analysis.reference.build --out "$(REFERENCE_DIR)" $(if $(FROM),--from "$(FROM)")

# make validate [AGENTS=a,b] [TASKS=cartpole-swingup,walker-walk] [STEPS=100000] [SEEDS=1]
#               [OUT=results/validate] [SMALL=1] [JOBS=<cores>] [EVAL_EVERY=10000] [EXTRA="k=v ..."]
# Learning check (not CI): trains every agent (default: all registered) on TASKS, then writes
# OUT/validate.md and OUT/validate.csv with final returns next to published curves (docs/learning-check.md).
# STEPS defaults to 100000 here (the figures target's STEPS default is a list) unless given on the command line.
AGENTS ?=
TASKS ?= cartpole-swingup,walker-walk
SEEDS ?= 1
SMALL ?=
JOBS ?=
EVAL_EVERY ?= 10000
EXTRA ?=
VALIDATE_STEPS = $(if $(filter command line environment,$(origin STEPS)),$(STEPS),100000)
validate: $(BASE_STAMP)
	$(PY) scripts/validate.py --agents "$(AGENTS)" --tasks "$(TASKS)" --steps $(VALIDATE_STEPS) --seeds $(SEEDS) \
		--out "$(or $(OUT),results/validate)" --eval-every $(EVAL_EVERY) $(if $(filter 1,$(SMALL)),--small) \
		$(if $(JOBS),--jobs $(JOBS)) $(if $(EXTRA),--extra $(EXTRA))

# make video RUN=<run folder> [EPISODES=1] [SIZE=480] [CKPT=path]: evaluation episodes of the run's checkpoint
# as RUN/videos/<env_step>-ep<k>-return<R>.mp4 (docs/watching.md). Reads the run only; a running run is fine.
RUN ?=
EPISODES ?= 1
SIZE ?= 480
CKPT ?=
video: $(BASE_STAMP)
	@test -n "$(RUN)" || { echo "error: make video needs RUN=<run folder>" >&2; exit 2; }
	$(PY) -m iqrl.video "$(RUN)" --episodes "$(EPISODES)" --size "$(SIZE)" $(if $(CKPT),--ckpt "$(CKPT)")

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

BENCH_UPDATES ?= 20
BENCH_SEEDS ?= 1
ifdef PLAIN
DTYPES ?= fp32
else
DTYPES ?= fp32,bf16
endif
COMPILE ?= false
DEVICE ?= cpu
OBS ?= state
# E2E=STEPS: end-to-end rows (whole runs of STEPS env steps, docs/performance.md); BENCH_SET: run keys for every
# row (space-separated key=value, each one --set); COLLECT=STEPS: collection rows (STEPS env steps per seed of a
# seed phase: CPU per env step beside the bare physics, docs/performance.md "Environments of a K-seed group");
# HOST_SHARE=1: iqrl K-seed groups' operators, syncs and moves per agent step and per update (docs/performance.md);
# OVERLAP=STEPS: iqrl K-seed jobs of STEPS env steps, collection hidden behind updates by two cohorts
E2E ?=
COLLECT ?=
HOST_SHARE ?=
OVERLAP ?=
BENCH_SET ?=
bench: $(BASE_STAMP)
	$(PY) -m iqrl.bench --out "$(BENCH_OUT)" --updates $(BENCH_UPDATES) --dtypes $(DTYPES) --compile $(COMPILE) --device $(DEVICE) \
		--seeds $(BENCH_SEEDS) --obs $(OBS) $(if $(PLAIN),--plain,) $(if $(E2E),--end-to-end $(E2E),) \
		$(if $(COLLECT),--collect $(COLLECT),) $(if $(HOST_SHARE),--host-share,) $(if $(OVERLAP),--overlap $(OVERLAP),) \
		$(foreach kv,$(BENCH_SET),--set $(kv)) $(if $(AGENT),--agents $(AGENT),) $(if $(TASK),--tasks $(TASK),)

# make gpu-report PART=1|2|3|all [SMOKE=1] [FULL=1] [GPU_OUT=gpu-report]: what to run first on a GPU, in parts of
# about 8 minutes, rows in GPU_OUT/part<N>.jsonl (docs/performance.md, "On a GPU"); SMOKE=1 runs every part on
# the CPU at tiny sizes (tests/test_gpu_report.py, so in make test); FULL=1 gives part 2 every row, not only
# the campaigns' end-to-end rows. No .venv prerequisite: a bare GPU machine runs it with its python3 and the
# wheels of make gpu-wheels (scripts/gpu_part.sh).
PART ?= all
SMOKE ?=
FULL ?=
GPU_OUT ?= gpu-report
REPORT_PY = $(if $(wildcard $(PY)),$(PY),python3)
gpu-report:
	$(REPORT_PY) -m apps.gpu_report part $(PART) --out "$(GPU_OUT)" $(if $(filter 1,$(SMOKE)),--smoke) \
		$(if $(filter 1,$(FULL)),--full)

# make gpu-wheels [GPU_PYTHON=3.12] [GPU_GLIBC=2.28]: the wheels a bare GPU machine lacks, for its Python (its
# python3 -V; 3.12 as last seen), in .whl/ with the published curves, and the GL libraries in .gl/; prints
# their sizes against the 64 MiB a copy of the checkout may take (apps/gpu_report/wheels.py, CARRY_LIMIT_MB).
GPU_PYTHON ?= 3.12
GPU_GLIBC ?= 2.28
gpu-wheels: $(BASE_STAMP)
	$(PY) -m apps.gpu_report wheels --python $(GPU_PYTHON) --glibc $(GPU_GLIBC) --out .whl
