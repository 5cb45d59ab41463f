import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import kasf
from kasf.model.checkpoint import read_checkpoint_payload
from kasf.data.splits import load_splits
from kasf.errors import ConfigError
from kasf.train.trainer import TrainConfig, WarmupPlateau, fit

TRAIN = ["train", "--preset", "tiny", "--batch-size", "4", "--validation-fraction", "0.3", "--no-progress"]


def _kasf(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "kasf.cli.main", *map(str, args)], capture_output=True, text=True, **kwargs)


def _weights(run_dir):
    return read_checkpoint_payload(run_dir / "last.pt")["state_dict"]


def test_warmup_then_plateau_schedule():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    schedule = WarmupPlateau(optimizer, lr=5e-4, warmup_epochs=10, factor=0.9, patience=2)
    rates = []
    for epoch in range(16):
        schedule.start_epoch(epoch)
        rates.append(optimizer.param_groups[0]["lr"])
        schedule.end_epoch(epoch, metric=1.0)  # never improves after the first plateau step
    assert rates[0] == pytest.approx(5e-6) and rates[5] == pytest.approx(5e-6 + (5e-4 - 5e-6) / 2)
    assert rates[10] == pytest.approx(5e-4)
    # plateau: best at epoch 10, then 3 epochs without improvement (patience 2) -> one decay by 0.9
    assert rates[13] == pytest.approx(5e-4) and rates[14] == pytest.approx(4.5e-4)


def test_fit_writes_best_last_log_and_tensorboard(source_pickle, tmp_path):
    splits = load_splits(source_pickle, validation_fraction=0.3)
    torch.manual_seed(0)
    model = kasf.build_model("tiny")
    config = TrainConfig(epochs=3, batch_size=4, steps_per_epoch=2, num_workers=2)
    result = fit(model, splits, config, tmp_path / "run", progress=False, log=lambda m: None)
    run = tmp_path / "run"
    assert len(result.history) == 3 and result.stopped == "epochs"
    assert (run / "best.pt").is_file() and any((run / "tensorboard").iterdir())
    assert (run / "log.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss,train_mpjpe")
    best = kasf.read_checkpoint(run / "best.pt")
    assert best.source["best_epoch"] == result.best_epoch
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_training_is_reproducible_for_a_seed(source_pickle, tmp_path):
    splits = load_splits(source_pickle, validation_fraction=0.3)
    config = TrainConfig(epochs=2, batch_size=4, steps_per_epoch=2)
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = kasf.build_model("tiny")
        fit(model, splits, config, progress=False, log=lambda m: None)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_a_focused_run_trains_on_another_objective_and_records_it(source_pickle, tmp_path):
    """--focus LAG:STRIDE (a low-latency model): the loss weights the positions that runtime returns."""
    splits = load_splits(source_pickle, validation_fraction=0.3)
    losses = {}
    for focus in (None, (0, 1)):
        torch.manual_seed(0)
        config = TrainConfig(epochs=1, batch_size=4, steps_per_epoch=2, focus=focus)
        result = fit(kasf.build_model("tiny"), splits, config, tmp_path / str(focus), progress=False,
                     log=lambda m: None)
        losses[focus] = result.history[0]["train_loss"]
    assert losses[None] != losses[(0, 1)]
    payload = torch.load(tmp_path / "(0, 1)" / "last.pt", weights_only=False)
    assert tuple(payload["training"]["config"]["focus"]) == (0, 1)


# Bit-identical weights need identical arithmetic: one BLAS thread and MKL's reproducible code path
# (with several threads a loaded machine may split reductions differently; MKL's kernels can also
# depend on memory alignment). The seeding and the resume are what this test checks.
REPRODUCIBLE = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MKL_CBWR": "COMPATIBLE"}


def test_kill_then_resume_ends_with_the_same_weights(source_pickle, tmp_path):
    common = [*TRAIN, "--data", source_pickle, "--epochs", "4", "--steps-per-epoch", "12"]
    straight = tmp_path / "straight"
    assert _kasf(*common, "--out", straight, env=REPRODUCIBLE).returncode == 0

    broken = tmp_path / "broken"
    process = subprocess.Popen([sys.executable, "-m", "kasf.cli.main", *map(str, common), "--out", str(broken)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=REPRODUCIBLE)
    deadline = time.monotonic() + 120
    while not (broken / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = read_checkpoint_payload(broken / "last.pt")["training"]["epoch"]
    assert interrupted_at < 3, "the run finished before it could be killed"

    resumed = _kasf(*common, "--out", broken, "--resume", env=REPRODUCIBLE)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {interrupted_at}" in resumed.stdout
    expected, got = _weights(straight), _weights(broken)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert len((broken / "log.csv").read_text().splitlines()) == 1 + 4


def test_resume_with_different_settings_is_refused(source_pickle, tmp_path):
    common = [*TRAIN, "--data", source_pickle, "--epochs", "1", "--steps-per-epoch", "1", "--out", tmp_path]
    assert _kasf(*common).returncode == 0
    result = _kasf(*common, "--resume", "--lr", "0.01")
    assert result.returncode == 1 and "lr: 0.0005 -> 0.01" in result.stderr
    with pytest.raises(ConfigError):
        from kasf.train.trainer import _check_resumable
        _check_resumable(TrainConfig().to_dict(), TrainConfig(seed=5), tmp_path)


def test_resume_without_a_run_says_so(tmp_path):
    result = _kasf(*TRAIN, "--out", tmp_path / "none", "--resume")
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_torchrun_two_processes_data_parallel(source_pickle, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "kasf.cli.main",
         *map(str, TRAIN), "--data", source_pickle, "--epochs", "2", "--steps-per-epoch", "2",
         "--out", tmp_path / "ddp"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "data-parallel over 2 processes, 2 clips each per step" in result.stdout
    assert result.stdout.count("stopped by epochs") == 1  # only rank 0 reports
    model = kasf.load_model(tmp_path / "ddp" / "best.pt")
    assert model.config.n_layers == 2


def test_eval_cli_prints_tables_and_writes_json(source_pickle, tmp_path):
    assert _kasf(*TRAIN, "--data", source_pickle, "--epochs", "1", "--steps-per-epoch", "1",
                 "--out", tmp_path / "run").returncode == 0
    result = _kasf("eval", tmp_path / "run" / "best.pt", "--data", source_pickle, "--validation-fraction", "0.3",
                   "--flip", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    assert "metric                   mm" in result.stdout
    assert "p_mpjpe" in result.stdout and "action_mean_mpjpe" in result.stdout
    assert "right_ankle" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["flip"] is True and set(report["per_action_mpjpe"]) == {"jump", "run", "throw"}


def test_train_and_eval_on_the_embedded_motion_capture(tmp_path):
    mocap = ["--cameras", "2"]
    result = _kasf(*TRAIN, *mocap, "--epochs", "1", "--steps-per-epoch", "2", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "val MPJPE" in result.stdout and " mm" in result.stdout
    report = _kasf("eval", tmp_path / "run" / "best.pt", *mocap, "--json", tmp_path / "test.json")
    assert report.returncode == 0, report.stderr
    per_motion = json.loads((tmp_path / "test.json").read_text())["per_action_mpjpe"]
    assert set(per_motion) == {"run", "spinkick", "dance_b", "getup_faceup"}
