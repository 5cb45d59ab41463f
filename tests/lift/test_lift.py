"""`kasf lift` end to end on real OpenPose output (Pose2Sim's demo) with its video: every output
type, read back; a TRC read by a reader written to the TRC specification; bad input refused
before anything is written."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kasf.engines import load_engine
from kasf.errors import InputError
from kasf.keypoints.kasf_csv import write_keypoints
from kasf.keypoints.skeleton import JOINT_NAMES
from kasf.lift import lift
from kasf.lift.lifting import ANKLE_HEIGHT_SHARE, LEG_CHAINS
from kasf.stream.capture import read_poses

from conftest import SAMPLE_DETECTIONS, SAMPLE_VIDEO

BALANCING, VIDEO = SAMPLE_DETECTIONS, SAMPLE_VIDEO
METADATA_KEYS = ["DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate", "OrigDataStartFrame",
                 "OrigNumFrames"]


def read_trc(path: Path) -> dict:
    """A TRC reader written to the format's description (OpenSim's Marker (.trc) Files page and
    TRCFileAdapter): a PathFileType line; the eight metadata keys, tab-separated, and their
    values; Frame#, Time and one name per marker; X1 Y1 Z1 ... labels; blank lines; then rows of
    frame, time and three values per marker, an empty cell a missing value."""
    lines = path.read_text().split("\n")
    assert lines[0].split("\t")[0] == "PathFileType"
    keys = [key for key in lines[1].split("\t") if key]
    assert keys == METADATA_KEYS
    meta = dict(zip(keys, [value for value in lines[2].split("\t") if value]))
    markers = int(meta["NumMarkers"])
    labels = [label for label in lines[3].split("\t") if label]
    assert labels[:2] == ["Frame#", "Time"] and len(labels) == markers + 2
    axes = [label for label in lines[4].split("\t") if label]
    assert axes == [f"{axis}{i}" for i in range(1, markers + 1) for axis in "XYZ"]
    row = 5
    while not lines[row].strip():
        row += 1
    frames, times, values = [], [], []
    for line in lines[row:]:
        if not line:
            break
        cells = line.rstrip("\r").split("\t")
        assert len(cells) == 2 + 3 * markers, f"row of {len(cells)} cells"
        frames.append(int(cells[0]))
        times.append(float(cells[1]))
        values.append([float(cell) if cell else np.nan for cell in cells[2:]])
    assert len(frames) == int(meta["NumFrames"])
    return {"header": lines[0], "meta": meta, "markers": labels[2:], "frames": frames, "times": np.array(times),
            "points": np.array(values).reshape(len(frames), markers, 3)}


def run_lift(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kasf", "lift", *arguments, "--threads", "1", "--no-progress"],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def lifted(tiny_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("lift")
    outputs = [out / name for name in ("poses.csv", "poses.json", "poses.npz", "poses.trc")]
    done = run_lift(str(BALANCING), "--engine", str(tiny_onnx), "--video", str(VIDEO), "--height", "1.8",
                    *[arg for path in outputs for arg in ("-o", str(path))])
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_lift_writes_every_output_type_from_a_real_openpose_folder(lifted):
    out, stdout = lifted
    assert "openpose, OpenPose BODY_25B, 100 frames" in stdout and "lag 13, stride 1" in stdout
    assert "note: the detector gave no track ids" in stdout
    arrays = np.load(out / "poses.npz")
    tracks = len(arrays["track_ids"])
    assert arrays["poses"].shape == (tracks, 100, 17, 3) and arrays["confidences"].shape == (tracks, 100, 17)
    assert list(arrays["frame_numbers"]) == list(range(100)) and list(arrays["joint_names"]) == list(JOINT_NAMES)
    present = np.isfinite(arrays["poses"]).all(axis=(2, 3))
    assert np.array_equal(present, np.isfinite(arrays["keypoints_2d"]).all(axis=(2, 3))) and present.sum() >= 200
    np.testing.assert_allclose(arrays["poses"][..., 0, :][present], 0, atol=1e-6)      # root-relative
    for track in arrays["poses"]:                      # each track's median ankle-to-crown chain: 0.96 x 1.8 m
        chains = np.mean([sum(np.linalg.norm(track[:, a] - track[:, b], axis=-1) for a, b in zip(c, c[1:]))
                          for c in LEG_CHAINS], axis=0)
        assert np.nanmedian(chains) == pytest.approx((1 - ANKLE_HEIGHT_SHARE) * 1.8, rel=1e-4)
    assert "1.80 m (given with --height)" in str(arrays["scale"])
    document = json.loads((out / "poses.json").read_text())
    assert document["units"] == "m" and document["joints"] == list(JOINT_NAMES) and len(document["frames"]) == 100
    assert sum(len(frame["people"]) for frame in document["frames"]) == present.sum()
    first = document["frames"][0]["people"][0]
    row = list(arrays["track_ids"]).index(first["track"])
    np.testing.assert_allclose(first["pose"], arrays["poses"][row, 0], atol=1e-5)
    assert len(read_poses(out / "poses.csv")) == present.sum()


def test_the_trc_reads_back_to_the_specification(lifted):
    out, _ = lifted
    arrays = np.load(out / "poses.npz")
    paths = sorted(out.glob("poses*.trc"))
    assert len(paths) == len(arrays["track_ids"]) > 1          # one file per track
    for row, track in enumerate(arrays["track_ids"]):
        trc = read_trc(out / f"poses_track{track}.trc")
        assert trc["meta"]["Units"] == "m" and float(trc["meta"]["DataRate"]) == 60   # the video's rate
        assert trc["markers"] == list(JOINT_NAMES) and trc["frames"] == list(range(1, 101))
        np.testing.assert_allclose(trc["times"], np.arange(100) / 60, atol=1e-6)
        upright = arrays["poses"][row] * np.array([1, -1, -1])                       # Y up, right-handed
        np.testing.assert_array_equal(np.isnan(trc["points"]), np.isnan(upright))
        np.testing.assert_allclose(trc["points"], upright, atol=1e-6, equal_nan=True)
        assert f"track {track}; scale: each track scaled" in trc["header"] and "Y up" in trc["header"]


def test_the_library_call_gives_what_the_command_wrote(lifted, tiny_onnx, tmp_path):
    out, _ = lifted
    with load_engine(tiny_onnx, threads=1) as engine:
        result, written = lift(BALANCING, engine, [tmp_path / "again.npz"], video=VIDEO, height_m=1.8)
    assert written == [tmp_path / "again.npz"]
    again, before = np.load(written[0]), np.load(out / "poses.npz")
    np.testing.assert_array_equal(again["poses"], before["poses"])
    assert result.fps == 60 and result.image_size == (1080.0, 1920.0)


def test_detector_track_ids_are_kept(tiny_onnx, tmp_path):
    rng = np.random.default_rng(0)
    frames = [{7: np.concatenate([rng.uniform(100, 900, (17, 2)), np.ones((17, 1))], 1).astype(np.float32),
               3: np.concatenate([rng.uniform(100, 900, (17, 2)), np.ones((17, 1))], 1).astype(np.float32)}
              for _ in range(30)]
    capture = write_keypoints(tmp_path / "capture.csv", frames)
    with load_engine(tiny_onnx, threads=1) as engine:
        result, _ = lift(capture, engine, [tmp_path / "poses.npz"], image_size=(1000, 1000), lag=0, stride=27)
    assert result.track_ids == [3, 7] and result.notes == [] and (result.lag, result.stride) == (0, 27)
    assert np.isfinite(result.poses).all()


def outputs_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_file())


@pytest.mark.parametrize("arguments, message", [
    ([], "no image size: the detections do not hold one; give it (--image-size W H) or the video"),
    (["--video", str(VIDEO), "--image-size", "1920", "1080"], "--image-size 1920 1080 is not the video's size 1080 x 1920"),
    (["--image-size", "1080", "1920", "--height", "180"], "a person's height must be given in metres"),
    (["--image-size", "1080", "1920", "-o", "{out}/poses.xlsx"], "unknown output suffix '.xlsx'"),
    (["--video", str(VIDEO.with_name("absent.mp4"))], "absent.mp4"),
])
def test_bad_input_is_an_error_naming_it_and_writes_nothing(tiny_onnx, tmp_path, arguments, message):
    arguments = [argument.format(out=tmp_path) for argument in arguments]
    done = run_lift(str(BALANCING), "--engine", str(tiny_onnx), "-o", str(tmp_path / "poses.trc"),
                    "--render", str(tmp_path / "lifted.mp4"), *arguments)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert outputs_in(tmp_path) == []


def test_bad_detections_stop_before_any_output(tiny_onnx, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for file in sorted(BALANCING.glob("*.json"))[:30]:
        (folder / file.name).write_text(file.read_text())
    (folder / "cam01.0012.json").write_text((folder / "cam01.0012.json").read_text()[:-40])
    done = run_lift(str(folder), "--engine", str(tiny_onnx), "--image-size", "1080", "1920",
                    "-o", str(tmp_path / "poses.npz"))
    assert done.returncode == 1 and "cam01.0012.json is not valid JSON" in done.stderr
    assert outputs_in(tmp_path) == []
    with pytest.raises(InputError, match="no output given"):
        lift(folder, "unused.onnx", [])
