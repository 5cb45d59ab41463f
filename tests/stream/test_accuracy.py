"""Streamed accuracy (kasf.stream.accuracy): test sequences through the runtime, every pose
against the ground truth of its frame, for a grid of (lag, stride)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kasf.data.clips import sequence_bounds
from kasf.engines import load_engine
from kasf.errors import KasfError
from kasf.stream.accuracy import (format_latency_accuracy, latency_accuracy, parse_setting, plot_latency_accuracy,
                                  stream_sequences, mocap_test_frames)
from kasf.train.metrics import mpjpe

SEQUENCES = 4


@pytest.fixture(scope="module")
def frames():
    return mocap_test_frames(SEQUENCES)


@pytest.fixture(scope="module")
def engine(tiny_onnx):
    return load_engine(tiny_onnx, threads=1)


def test_a_spread_of_sequences_is_whole_sequences(frames):
    bounds = sequence_bounds(frames.source)
    assert len(bounds) == SEQUENCES and len({end - start for start, end in bounds}) > 1   # several lengths
    assert frames.keypoints.shape[1:] == (1, 17, 3) and frames.poses_mm.shape[1:] == (1, 17, 3)


def test_centred_stride_1_streams_what_the_model_gives_each_frames_own_centred_window(frames, engine):
    """Stride 1, lag 13: frame f's pose is the model's pose at the middle of the window around f."""
    poses, windows = stream_sequences(engine, frames, 13, 1)
    assert windows == len(frames)
    start, end = sequence_bounds(frames.source)[0]
    keypoints = frames.keypoints[start:end, 0]
    index = np.clip(np.arange(-13, 14)[None] + np.arange(end - start)[:, None], 0, end - start - 1)
    expected = engine.infer(keypoints[index])[:, 13]
    np.testing.assert_allclose(poses[start:end], expected, atol=1e-5)


def test_the_grid_reports_accuracy_latency_and_work(frames, engine, tmp_path):
    rows = latency_accuracy(engine, [(0, 1), (13, 1), (7, 14)], frames)
    assert [(r["lag"], r["stride"]) for r in rows] == [(0, 1), (13, 1), (7, 14)]
    causal, centred, strided = rows
    assert centred["mpjpe_vs_centred"] == 0 and causal["windows_per_pose"] == 1
    assert strided["windows_per_pose"] < 0.25 and (strided["latency_frames_mean"], strided["latency_frames_max"]) == (
        13.5, 20)
    for row in rows:
        assert np.isfinite([row["mpjpe_mm"], row["p_mpjpe_mm"], row["acceleration_mm"]]).all()
        assert row["p_mpjpe_mm"] <= row["mpjpe_mm"] and row["frames"] == len(frames)
    table = format_latency_accuracy(rows)
    assert "+0.0%" in table and "13.5" in table
    plot_latency_accuracy(rows, tmp_path / "latency.png")
    assert (tmp_path / "latency.png").read_bytes()[:4] == b"\x89PNG"


def test_blending_smooths_where_windows_meet_at_no_extra_work(frames, engine):
    plain, blended = latency_accuracy(engine, [(13, 7), (13, 7, True)], frames)
    assert blended["blend"] and blended["windows_per_pose"] == plain["windows_per_pose"]
    assert blended["mpjpe_mm"] != plain["mpjpe_mm"]


def test_the_streamed_mpjpe_is_the_mean_over_frames(frames, engine):
    poses, _ = stream_sequences(engine, frames, 0, 27)
    expected = mpjpe(frames.to_millimetres(poses[:, None])[:, 0], frames.poses_mm[:, 0]).mean()
    (row,) = latency_accuracy(engine, [(0, 27)], frames)
    assert row["mpjpe_mm"] == pytest.approx(float(expected)) and row["mpjpe_vs_centred"] is None


def test_settings_parse_and_bad_ones_are_named(engine, frames):
    assert parse_setting("7:14") == (7, 14, False) and parse_setting("13:7:blend") == (13, 7, True)
    for bad in ("7-14", "7:x", "13:7:mean", "1:2:blend:3"):
        with pytest.raises(KasfError, match=f"'{bad}' is not LAG:STRIDE or LAG:STRIDE:blend"):
            parse_setting(bad)
    with pytest.raises(KasfError, match="lag 20 \\+ stride 8"):
        latency_accuracy(engine, [(20, 8)], frames)
    with pytest.raises(KasfError, match="at least one sequence"):
        mocap_test_frames(0)


def test_the_command_prints_the_table_and_writes_json_and_plot(tiny_onnx, tmp_path):
    done = subprocess.run([sys.executable, "-m", "kasf", "latency-accuracy", "--engine", str(tiny_onnx),
                           "--settings", "13:1", "3:9", "13:7:blend", "--sequences", "2", "--threads", "1",
                           "--json", str(tmp_path / "la.json"), "--plot", str(tmp_path / "la.png")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "vs centred" in done.stdout and "+0.0%" in done.stdout
    rows = json.loads((tmp_path / "la.json").read_text())["rows"]
    assert [r["setting"] for r in rows] == ["13:1", "3:9", "13:7:blend"] and (tmp_path / "la.png").is_file()
