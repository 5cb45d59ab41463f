"""Capture files (kasf.stream.capture) and `kasf replay`: the files kasf_replay reads and writes too."""

import subprocess
import sys

import numpy as np
import pytest

from kasf.keypoints.kasf_csv import KEYPOINT_COLUMNS, read_keypoints, write_keypoints
from kasf.stream.capture import read_poses, replay_frames, write_poses
from kasf.engines import load_engine
from kasf.errors import InputError
from kasf.stream.runtime import StreamRuntime


def people_frames(count: int = 12) -> list[dict[int, np.ndarray]]:
    rng = np.random.default_rng(3)
    frames = []
    for frame in range(count):
        people = {track: rng.uniform(0, 1000, (17, 3)).astype(np.float32) for track in (4, 9) if frame % 5 or track == 4}
        for keypoints in people.values():
            keypoints[:, 2] = rng.uniform(0.2, 1.0, 17)
        frames.append(people)
    frames[min(3, count - 1)][4][6] = [np.nan, np.nan, 0.0]
    frames[-2] = {}                      # nobody seen
    return frames


def test_keypoint_files_round_trip_float32_exactly_with_nan_and_empty_frames(tmp_path):
    frames = people_frames()
    path = write_keypoints(tmp_path / "capture.csv", frames)
    back = read_keypoints(path)
    assert len(back) == len(frames) and back[-2] == {} and list(back[1]) == [4, 9] and list(back[5]) == [4]
    for written, read in zip(frames, back):
        for track in written:
            np.testing.assert_array_equal(read[track], written[track])
    assert path.read_text().splitlines()[0] == ",".join(KEYPOINT_COLUMNS)


@pytest.mark.parametrize("rows, message", [
    (["frame,track,x"], "is not a kasf keypoint file"),
    ([",".join(KEYPOINT_COLUMNS), "0,1,2"], "line 2: 3 values, a row has 53"),
    ([",".join(KEYPOINT_COLUMNS), "0,1," + ",".join(["x"] * 51)], "line 2: not a number"),
    ([",".join(KEYPOINT_COLUMNS), "3,1," + ",".join(["1"] * 51), "1,1," + ",".join(["1"] * 51)],
     "line 3: frame 1 comes after frame 3"),
    ([",".join(KEYPOINT_COLUMNS), "0,1," + ",".join(["1"] * 51), "0,1," + ",".join(["1"] * 51)],
     "line 3: track 1 has a second row in frame 0"),
])
def test_malformed_keypoint_files_name_the_line(tmp_path, rows, message):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match=message):
        read_keypoints(path)
    with pytest.raises(InputError, match="cannot read keypoint file"):
        read_keypoints(tmp_path / "absent.csv")


def test_replay_cli_writes_what_the_stream_returns_in_order(tiny_onnx, tmp_path):
    frames = people_frames()
    capture = write_keypoints(tmp_path / "capture.csv", frames)
    output = tmp_path / "poses.csv"
    done = subprocess.run([sys.executable, "-m", "kasf", "replay", str(tiny_onnx), "--keypoints", str(capture),
                           "-o", str(output), "--mode", "centred", "--image-size", "1000", "800", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with load_engine(tiny_onnx, threads=1) as engine:
        expected = replay_frames(StreamRuntime(engine, mode="centred", image_size=(1000, 800)), frames)
    write_poses(tmp_path / "expected.csv", expected)
    assert output.read_text() == (tmp_path / "expected.csv").read_text()
    poses = read_poses(output)
    assert len(poses) == sum(len(people) for people in frames) and (9, 0) in poses
    summary = f"{len(frames)} frames, {len(poses)} poses (lag 13, stride 1, onnxruntime, {len(poses)} engine windows)"
    assert summary in done.stdout


def test_replay_cli_names_a_bad_row(tiny_onnx, tmp_path):
    frames = people_frames(3)
    frames[2][4][0, 2] = 1.5
    capture = write_keypoints(tmp_path / "capture.csv", frames)
    done = subprocess.run([sys.executable, "-m", "kasf", "replay", str(tiny_onnx), "--keypoints", str(capture),
                           "-o", str(tmp_path / "poses.csv")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "track 4 at frame 2: joint 0 (pelvis) has a confidence outside [0, 1]" in done.stderr
