import json
import subprocess
import sys

import numpy as np
import pytest

from kasf.engines import load_engine
from kasf.stream.realtime import back_and_forth, most_people, recorded_people, replay_people


def test_back_and_forth_turns_at_both_ends():
    sequence = np.arange(4)
    assert [int(back_and_forth(sequence, f)) for f in range(9)] == [0, 1, 2, 3, 2, 1, 0, 1, 2]


@pytest.mark.parametrize("capacity, limit, best", [(5, 64, 5), (0, 64, 0), (1, 64, 1), (100, 64, 64), (8, 8, 8)])
def test_most_people_doubles_then_bisects(capacity, limit, best):
    found, trials = most_people(lambda count: {"people": count, "keeps_up": count <= capacity}, limit)
    assert found == best
    assert all(trial["keeps_up"] == (trial["people"] <= capacity) for trial in trials)


def test_a_short_replay_of_recorded_people_reports_latency(tiny_onnx):
    people, image_size = recorded_people(3)
    assert len(people) == 3 and image_size == (1920, 1080)
    assert all(p.shape[1:] == (17, 3) and (p[..., 2] == 1).all() for p in people)
    report = replay_people(load_engine(tiny_onnx, threads=1), people, image_size, fps=30, seconds=0.3, mode="centred")
    assert report["people"] == 3 and report["frames"] == 9
    assert report["processed"] + report["dropped"] == 9
    assert report["total_p50_ms"] <= report["total_p99_ms"]


def test_a_strided_replay_reports_windows_per_pose_and_pose_latency(tiny_onnx):
    people, image_size = recorded_people(4)
    engine = load_engine(tiny_onnx, threads=1)
    report = replay_people(engine, people, image_size, fps=30, seconds=1.0, lag=2, stride=5)
    assert (report["lag"], report["stride"]) == (2, 5)
    # 4 tracks of stride 5, 30 frames: about one window per 5 poses (the flush at the end adds some)
    assert 0.15 < report["windows_per_pose"] < 0.4
    # a pose comes back lag to lag + stride - 1 camera frames after its keypoints (more if frames were dropped)
    assert 2 <= report["pose_latency_frames_mean"] <= report["pose_latency_frames_max"]
    assert report["pose_latency_frames_max"] >= 6 or report["dropped"]
    assert report["pose_latency_ms_mean"] >= 2 / 30 * 1e3
    causal = replay_people(engine, people, image_size, fps=30, seconds=0.5)
    assert causal["windows_per_pose"] == 1 and causal["pose_latency_frames_max"] == 0 or causal["dropped"]


def test_a_replay_with_the_worker_never_waits_for_the_engine_and_bounds_the_window_latency(tiny_onnx):
    people, image_size = recorded_people(6)
    engine = load_engine(tiny_onnx, threads=1)
    report = replay_people(engine, people, image_size, fps=30, seconds=1.0, lag=0, stride=3, worker=True)
    assert report["worker"] and report["processed"] + report["dropped"] == 30
    # the worker's poses come back on a later frame: at least a frame after their window fell due
    assert report["pose_latency_frames_max"] >= 1
    assert report["window_p50_ms"] <= report["window_p99_ms"]
    assert report["keeps_up"] == (report["total_p99_ms"] <= 1e3 / 30 and report["window_p99_ms"] <= 3e3 / 30
                                  and report["dropped"] <= 0.3)


def test_the_realtime_command_prints_and_writes_the_replays(tiny_onnx, tmp_path):
    out = tmp_path / "realtime.json"
    run = subprocess.run([sys.executable, "-m", "kasf", "realtime", "--engine", str(tiny_onnx), "--threads", "1",
                          "--people", "2", "--no-search", "--seconds", "0.3", "--lag", "0", "--stride", "3",
                          "--worker", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "lag 0, stride 3, worker at 30 fps" in run.stdout and "window p99" in run.stdout
    (report,) = json.loads(out.read_text())["runs"]
    assert (report["people"], report["lag"], report["stride"], report["worker"]) == (2, 0, 3, True)
