"""logger=[csv,tensorboard,wandb]: the trackers hold what eval.csv/train.csv hold, once per step, also after
a crash and resume; a tracker that is not installed is refused before anything is written; folders of
versions without the keys still resume."""

import csv
import json
import struct

import pytest
import yaml

from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from iqrl.train import main

pytest.importorskip("tensorboard", reason="the tracking extra is not installed: pip install '.[tracking]'")
pytest.importorskip("wandb", reason="the tracking extra is not installed: pip install '.[tracking]'")


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series under `folder`, as TensorBoard shows it (its own reader, purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def wandb_records(path, record_type: str) -> list[dict]:
    """The `record_type` records' items (history: a row; run: the run's config) of an offline run file
    (run-<id>.wandb): W&B's record log (LevelDB log framing: 32 KiB blocks of records with a 7-byte header,
    after a 7-byte file header) of protobuf `Record`s."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0)
    rows, pos, part = [], 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # block trailer padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        part += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            part = b""
            if record.WhichOneof("record_type") == record_type:
                items = record.history.item if record_type == "history" else record.run.config.update
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return rows


def test_tensorboard_and_wandb_hold_the_csv_rows_once_across_a_crash(tmp_path, tiny, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "run"
    # the evaluations in line: the row of env step 800 is sent before the crash (beside training it would be
    # under way, lost with the crash and sent once, by the resume)
    keys = ["logger=[csv,tensorboard,wandb]", "checkpoint_every=400", "eval_beside=false"]
    argv = tiny("td3", out, steps=1200, extra=keys)
    # crash after the rows of env_step 800 were sent and before that step's checkpoint (the last one: 400)
    calls = []

    def crash():
        calls.append(1)
        if len(calls) == 400:  # asked after every agent step (2 env steps): at env step 800
            raise RuntimeError("simulated crash")
        return False

    assert main(argv, should_stop=crash) == EXIT_FAILED
    assert [r["env_step"] for r in read_csv(out / "eval.csv")] == ["0", "400", "800"]
    first_id = json.loads((out / "wandb.json").read_text())["id"]
    assert main(argv) == EXIT_OK

    evals, trains = read_csv(out / "eval.csv"), read_csv(out / "train.csv")
    assert [r["env_step"] for r in evals] == ["0", "400", "800", "1200"]
    tb = tensorboard_scalars(out / "tb")
    for name in ("episode_return", "episode_return_std", "n_episodes", "wall_time_s"):
        assert [s for s, _ in tb[f"eval/{name}"]] == [0, 400, 800, 1200]  # 800 once: the crash's copy purged
        assert [v for _, v in tb[f"eval/{name}"]] == pytest.approx([float(r[name]) for r in evals], rel=1e-6)
    for name in ("q_loss", "train_return", "updates"):
        rows = [r for r in trains if r[name] != ""]
        assert [s for s, _ in tb[f"train/{name}"]] == [int(r["env_step"]) for r in rows]
        assert [v for _, v in tb[f"train/{name}"]] == pytest.approx([float(r[name]) for r in rows], rel=1e-6)

    # W&B: offline by default, one run id continued by the resume, every row once across the two run files
    state = json.loads((out / "wandb.json").read_text())
    assert state["id"] == first_id
    files = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2 and all(f.name == f"run-{first_id}.wandb" for f in files)
    history = [row for f in files for row in wandb_records(f, "history")]
    got_eval = [row for row in history if "eval/episode_return" in row]
    assert [row["env_step"] for row in got_eval] == [0, 400, 800, 1200]
    assert [row["eval/episode_return"] for row in got_eval] == [float(r["episode_return"]) for r in evals]
    got_train = [row for row in history if "train/updates" in row]
    assert [(row["env_step"], row["train/updates"]) for row in got_train] == [
        (int(r["env_step"]), int(r["updates"])) for r in trains
    ]
    config = {k: v for update in wandb_records(files[0], "run") for k, v in update.items()}
    assert (
        config["task"] == "cartpole-balance" and config["agent"]["name"] == "td3" and config["steps"] == 1200
    )


def test_a_tracker_that_is_not_installed_is_refused_before_anything_is_written(
    tmp_path, tiny, capsys, monkeypatch
):
    import iqrl.runfolder.loggers as loggers

    monkeypatch.setitem(loggers._PACKAGE, "wandb", "no_such_package_iqrl")
    out = tmp_path / "run"
    assert main(tiny("td3", out, extra=["logger=[csv,wandb]"])) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: logger wandb is not installed")
    assert not out.exists()
    assert main(tiny("td3", out, extra=["logger=[csv,mlflow]"])) == EXIT_BAD_INPUT
    assert "logger entries must be among csv, tensorboard, wandb" in capsys.readouterr().err


def test_a_run_folder_without_the_keys_resumes_with_a_tracker(tmp_path, tiny):
    """Folders written before `logger` and `video_every` existed resume (their legacy values: [csv], 0);
    the trackers and videos a run writes do not change its results, so they may change on resume."""
    out = tmp_path / "run"
    assert main(tiny("td3", out, steps=800), should_stop=lambda: True) == 3  # stopped at 2
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    del cfg["logger"], cfg["video_every"]
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(tiny("td3", out, steps=800, extra=["logger=[csv,tensorboard]"])) == EXIT_OK
    assert [r["env_step"] for r in read_csv(out / "eval.csv")] == ["0", "400", "800"]
    assert [s for s, _ in tensorboard_scalars(out / "tb")["eval/episode_return"]] == [400, 800]  # sent since
