"""Where the shipped published curves come from: every released file `make reference` reads, by repository,
commit and path, with its sha256 and the licence it is under, and what the tables keep of it
(analysis.reference.build builds the tables and writes PROVENANCE.md from this list). A file is downloaded
as `https://raw.githubusercontent.com/<repo>/<commit>/<path>` and, offline, found as
`<FROM>/<repo>/<path>`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """One repository's released results: `files` {path in the repository: sha256 of the file at `commit`};
    `tables` the shipped tables built from them; `sources` their `source` labels in those tables; `notes` what
    the tables keep and drop, and anything a reader of the numbers must know."""

    repo: str
    commit: str
    licence: str
    files: dict[str, str]
    tables: tuple[str, ...]
    sources: tuple[str, ...]
    notes: tuple[str, ...]

    def url(self, path: str) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{path}"


NO_LICENCE = "none stated (no licence file in the repository at this commit)"

SOURCES: tuple[Source, ...] = (
    Source(
        repo="aidanscannell/dcmpc",
        commit="cc2a33a09009cefaebd60f23d089858ad80701ae",
        licence=NO_LICENCE,
        files={
            f"results/data/{name}": sha
            for name, sha in {
                "dmc-dcmpc.csv": "a3f97063d069f2fd2ea430ad61d2bc8b37315c337a587ad8b348b0beb84f692e",
                "mw-dcmpc.csv": "cbabb55cc6320e1ca3da40f5e70e834ed1fe877055ec2859ccabc4195ae09f23",
                "myo-dcmpc.csv": "297c0d46d25b86fe1391a6aca9c207582060d72e319178acc6c3b7c4bc760d46",
                "baselines/tdmpc2.csv": "9550c841222bbd28c831599b7f4e7e754e31da98fd42cb40fa9ea0e018af40e7",
                "baselines/tdmpc.csv": "01556c060a8e0c5b8b5c750b5f25b2b63a75c80102c45e9019d3b5ed2255f937",
                "baselines/sac.csv": "843e0d211af792a3a3589696d9678dd9c8da19424cd412eeeebbd58b370a22d4",
                "baselines/dreamerv3.csv": "6a79e43420ae0490e674c6508e9282ee42aed6f22ae711dedfe52d6ee5277cb2",
            }.items()
        },
        tables=("published_dmc.csv.gz", "published_suites.csv.gz"),
        sources=("dcwm-iclr25", "tdmpc2-results"),
        notes=(
            "`dcwm-iclr25`: DC-MPC's own runs (algorithm `DCWM`): 30 DMC tasks (5 seeds), 45 "
            "Meta-World tasks (3 to 5), 5 MyoSuite tasks (3).",
            "`tdmpc2-results`: the TD-MPC2 authors' released TD-MPC2, TD-MPC, SAC and DreamerV3 runs"
            " (nicklashansen/tdmpc2's `results/`, MIT) as re-packaged in `results/data/baselines/`: "
            "39 DMC tasks, 50 Meta-World tasks (success rates only: their returns are empty), 10 "
            "MyoSuite tasks; 3 seeds. Its ManiSkill tasks (lift-cube, pick-cube, pick-ycb, "
            "stack-cube, turn-faucet) are dropped.",
            "Task names: DMC as dm_control's (`cup-catch` -> `ball_in_cup-catch`, "
            "`cartpole-balance-sparse` -> `cartpole-balance_sparse`); TD-MPC2's custom DMC tasks "
            "(`cheetah-jump`, `walker-run_backwards`) keep names of that form; Meta-World and "
            "MyoSuite as released (`mw-reach`, `myo-hand-reach`).",
            "A seed label listing two runs (its env_step starting again from its first step) keeps "
            "the run with the most evaluations: TD-MPC's seeds 1 and 2 on the dog and humanoid tasks"
            " and TD-MPC2's custom cheetah and walker tasks (a 14M-step run and a 4M-step one), its "
            "pendulum-swingup seed 3 (3M, then 4M), DC-MPC's myo-hand-reach seed 1 (a run stopping "
            "at 425k listed before the full one). A step listed twice keeps its last row (20 rows at"
            " 3M env steps on the four Meta-World button-press tasks).",
            "Not taken: the ablation and sensitivity data (`results/data/ablations/`, "
            "`sensitivity/`): the overlays draw a paper's main results only.",
        ),
    ),
    Source(
        repo="zhaoyi11/tcrl",
        commit="9773d8e2bf4cb5d0fd9807d4c5b0afdbae1b87fc",
        licence=NO_LICENCE,
        files={"results/tcrl.csv": "278d818bb1170d956dcbd15cfd0e08ec5cb1f8acfc946438176a77a5770e86fd"},
        tables=("published_dmc.csv.gz",),
        sources=("tcrl-repo",),
        notes=(
            "`tcrl-repo`: TCRL on 24 DMC tasks, 118 seed labels, evaluations every 25k env steps from 1k.",
            "fish-swim seed 843 lists two runs' rows interleaved from 176k env steps on: each step "
            "keeps the last row listed, so that seed's curve mixes the two (34 rows dropped).",
        ),
    ),
    Source(
        repo="aidanscannell/iqrl-minimal",
        commit="d8e6c321de4a91b310935ad2bb34050dc0837f07",
        licence=NO_LICENCE,
        files={
            f"paper/figs/plotting/baseline-comparison/{name}": sha
            for name, sha in {
                "iqrl.csv": "ec9b453054b039a6160499ff9daf78131221a7e0d92f9e62696b56a951c8da29",
                "alm_main.csv": "0f0b3ad3e231766eac9ad707d992e09bfc850851ebfe4dbfaa46d6bca02d71e4",
                "sac_main.csv": "0013d9f12026e16f96f9a1190f595a63c8615401bb0ccc9308d4d36189d09856",
                "td3_main.csv": "8e77fa1c299a72ca400d3345940f1394b4b73e7efc9865c258035f29c53820f1",
                "tdmpc_main.csv": "8946c5c9bf2dc7df9865739df2530578cd4d981285a6d91b9ed967b3fd915f93",
                "redq_utd10_main.csv": "481619ab5e086fb222cd4f97c3d835214663cb2c88c687d565cbdaf691019b0b",
                "redq_utd1_main.csv": "199d7464adccae78f979928fe1c940cde8f92e9309d326f89796ed639ede9444",
            }.items()
        },
        tables=("published_dmc.csv.gz",),
        sources=("iqrl-icml24-draft",),
        notes=(
            "`iqrl-icml24-draft`: the plotting data of an early iQRL draft (the last commit before "
            "its paper folder was deleted): iQRL on 7 DMC tasks (5 seeds; dog-walk 2), ALM, SAC, "
            "TD3, TD-MPC and REDQ on 8. Not the final method of arXiv 2406.02696.",
            "REDQ as the draft's `make_plot.py` draws it (lines 140-148): UTD 10, but UTD 1 on fish-swim.",
            "Not taken: its TCRL curves (`tcrl_main.csv`; TCRL's come from TCRL's own release) and "
            "the ablation folders.",
        ),
    ),
    Source(
        repo="facebookresearch/MRQ",
        commit="8a44a7d4b1cf117e5da4bf8214d35b02aa68d68b",
        licence=(
            "CC BY-NC 4.0 (Attribution-NonCommercial): the numbers are MR.Q's authors', credited here; no "
            "commercial use"
        ),
        files={
            "results/gym_results.txt": "8d38a4e9117978567d1c612c1a3c1bd4eef7b275ba1fb41187842ad8b6b8712a",
            "results/atari_results.txt": "bf0e49e3d15fc779adc20da9bb2cccbece20c8f5c67bdd492c3716ab50fd9b4c",
        },
        tables=("mrq.csv.gz",),
        sources=("mrq-repo",),
        notes=(
            "`mrq-repo`: MR.Q on the five Gym MuJoCo `-v4` tasks (10 seeds, every 5k env steps to "
            "1M, no action repeat) and the 57 Atari games (10 seeds, every 100k agent steps to 2.5M,"
            " stored as env steps of 4 frames: 400k to 10M).",
            "Not taken: `dmc_results.txt` and `dmc-visual_results.txt` (SimbaV2's release carries "
            "MR.Q's DMC curves).",
        ),
    ),
    Source(
        repo="dojeon-ai/SimbaV2",
        commit="14fafb27e6f78f0b65d19b8873b4433547a2193c",
        licence="Apache-2.0",
        files={
            **{
                f"results/baseline/{name}.csv": sha
                for name, sha in {
                    "bro_utd10": "9df33dff5f79fc47942d96073c653b0a05564a1d8a2654cef66053755fd1e973",
                    "bro_utd2": "a6b9a4425d6535d8f9871c81d93c1602922f51dfc8a56fdbee91dfcc820d577b",
                    "crossq": "49ffc142aac87746bf4b6f2c4b777cd731b1e6fbc15853a0fb60bb7c2d5f033c",
                    "droq_utd20": "90fe1a58ca989211b75eb162c72059434b73db0d28afc48eb27ec42254ba6750",
                    "mrq": "685c48f8754cc36d98934db27ecc83b502d90c75b0f4346c06c9b5b0fe09ef12",
                    "redq_utd20": "153126ac814dc308246466acdda2bc733b19d0ff8357da338e54b186a47059b4",
                    "sac": "ad3ad76922293f4f5857625b1a5cccdc0e382b3aff1300c3b20a8d25c4e539b3",
                    "simbaV2_utd2": "dd1a9379d4d8ef3879ea63ba061afb8e68ce98434dbdcd060889fc3eff64ec55",
                    "simbaV2_utd8": "410cf79b001328cd068d9aca85d90976898299999c1a8d8061ffc81bd2eaf585",
                    "simba_utd2": "6f90e6abacb3c8cb76c7a36a186a97918a149f37309faae7d5ff44597c28fd2f",
                    "tdmpc2": "6e072130a1b9641c58d71163574dc384eefd0437fd521bad1ab12b62fc6d9097",
                }.items()
            },
            "results/simbaV2_utd1.csv": "84fab88deb6baee1f205cbf616274dca9b36c76d703c9fa46928a48c0416ae64",
            "results/simbaV2_utd4.csv": "ec748902e75c522a7c58a4954f6656e955b3e26cce486bce2d7f6ce17235105c",
        },
        tables=("simbav2.csv.gz",),
        sources=("simbav2-repo",),
        notes=(
            "`simbav2-repo`: SimbaV2 (UTD 1, 2, 4, 8), Simba, BRO (UTD 2, 10), TD-MPC2, MR.Q and SAC"
            " on DMC, Gym MuJoCo, Meta-World and MyoSuite; CrossQ, DroQ and REDQ on Gym "
            "(analysis.reference.released.read_simba_results; docs/suites.md). HumanoidBench is dropped (no "
            "suite here).",
            "A (method, task, seed, step, metric) listed more than once keeps its last row "
            "(`simbaV2_utd8.csv` and `utd1` repeat their dog, humanoid and HumanoidBench runs under "
            "permuted seed labels).",
            "Not taken: `results/simbaV2_utd2.csv` and `simbaV2_utd8.csv`, byte-identical copies of "
            "those in `results/baseline/` (same sha256); `results/baseline/mad-td_utd8.csv` (over 4 "
            "MiB, not available to the build of these tables: no MAD-TD curves); the design-study "
            "and scaling folders.",
        ),
    ),
    Source(
        repo="dmksjfl/DR.Q",
        commit="cc307a5a656d69382d7a069e6d4d53753bfe1017",
        licence="MIT",
        files={
            "results/drq.csv": "63f2fd73a5562846759c6bbcd5f47689478a602ec40f16838e6650c08dd44d44",
            "results/fog.csv": "4a22997707751511ec888d2e3404cc2074565eeaf66cc65709427ad8b96ce10e",
            "results/simbaV2_utd2.csv": "b90a383cdc3c30f49f5d8bf13a3ded27502422b6de81abeaf309d141c8b0c39b",
        },
        tables=("drq.csv.gz",),
        sources=("drq-repo",),
        notes=(
            "`drq-repo`: DR.Q (10 seeds: 28 DMC tasks from states, 12 from pixels as `DR.Q "
            "(pixels)`, 5 Gym), FOG, and SimbaV2 UTD 2 in SimbaV2's layout "
            "(analysis.reference.released.read_drq_results). HumanoidBench is dropped. Its SimbaV2 UTD 2 "
            "curves equal SimbaV2's release: `make figures` draws them once, as `[simbav2-repo]`.",
            "Not taken: `results/mrq.csv` (over 4 MiB, not available to the build of these tables; "
            "MR.Q's curves come from MR.Q's and SimbaV2's releases).",
        ),
    ),
    Source(
        repo="google-research/google-research",
        commit="5e786838e9825e74992a9884bc079d46734f1baf",
        licence="Apache-2.0",
        files={
            "bigger_better_faster/scores/RR8_BBF.csv": (
                "841033db05fa718489725de2783a186f0d49852f00197b77dec54aea1b63f316"
            )
        },
        tables=("bbf.csv.gz",),
        sources=("bbf-repo",),
        notes=(
            "`bbf-repo`: BBF's Atari 100k scores, one evaluation per run after 100k agent steps "
            "(400k env steps). The file holds two row groups (analysis.reference.released.BBF_GROUPS): runs "
            "29598-31481 on the 26 Atari 100k games (32 to 40 runs each), the paper's Atari 100k "
            "agent, kept as `BBF`; and runs 11623-12716 on 55 games (16 to 20 runs each), kept as "
            "`BBF (55-game runs)` on the 28 games outside Atari 100k only (its 520 runs on the 26 "
            "are dropped).",
            "VideoPinball is dropped: BBF normalised it with a random return of 0 where DQN Zoo's "
            "table, ours, has 16256.9 (its 20 runs).",
        ),
    ),
    Source(
        repo="danijar/dreamerv3",
        commit="e3f02248693a79dc8b0ebd62c93683888ddaccfe",
        licence="MIT",
        files={
            f"scores/{name}.json.gz": sha
            for name, sha in {
                "dmc_proprio-dreamerv3": "8182860a8a56dc56836c319fde9b941376621e1e0d474141c7d174ab833cc7f4",
                "dmc_vision-dreamerv3": "68dd7e83ee6af076734e1edb843a3816cd241736c92e91837e7cf460231b7b08",
                "dmc_vision-curl": "1d024d75c143cfdbdeed63f8d476c669d4be647759b35ef8fd44ae20d679c47d",
                "dmc_vision-drqv2": "18f932e73f139f8192d79f84f90d74b4e7bb9e7a089944fa01a8d10895cf1337",
                "dmc_vision-sac": "1d8f352472da8016c113053eba46b4274fc3dac20e1a4eb05ed38267e2a26aa9",
                "dmc_vision-ppo_fixhp": "7cd24804d6596759c1bfc52d76c0c95badbd96ceae3239ef1602755c8b17c8e0",
                "atari100k-dreamerv3": "c839ef2fd28a5c4b7c6f36151a8d16cb41d4d2fb72338c265850b2b4dd5b5e15",
            }.items()
        },
        tables=("dreamerv3.csv.gz",),
        sources=("dreamerv3-repo",),
        notes=(
            "`dreamerv3-repo`: DreamerV3 on DMC from states (18 tasks, 5 seeds, every 10k env steps "
            "to 490k) and from pixels (20 tasks, 10 seeds but finger-turn_hard's 9 and reacher-hard's "
            "8: 197 runs, to 1M) beside the pixel baselines of the same folder (CURL, DrQ-v2, SAC, PPO; "
            "named `<method> (pixels)`), and on Atari 100k (26 games, 5 seeds, to 400k env steps, made "
            "with the full action set and no no-op starts: 2411f7d's `actions: all, noops: 0`). "
            "Protocol: docs/figures.md.",
            "Not taken: the other suites (atari57, dmlab30, crafter, minecraft, procgen) and the "
            "state-based DMC baselines (D4PG, DDPG, DMPO, MPO, PPO).",
        ),
    ),
)
