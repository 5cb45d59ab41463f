"""kasf.lift.render on Pose2Sim's real OpenPose detections and the video they came from."""

import importlib
import itertools
import json
from pathlib import Path

import imageio_ffmpeg
import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw

from kasf.errors import InputError
from kasf.keypoints.layouts import to_h36m
from kasf.keypoints.skeleton import PARENTS
from kasf.lift.render import render

from conftest import SAMPLE_DETECTIONS, SAMPLE_VIDEO

render_module = importlib.import_module("kasf.lift.render")

VIDEO = SAMPLE_VIDEO
IMAGE_SIZE = (1080, 1920)
PANEL_2D = (304, 540)                    # the video's 1080 x 1920 scaled to 540 high, even width
OUTPUT_SIZE = (PANEL_2D[0] + 540, 540)   # beside the square 3D panel
TAB10 = [np.array(colour) * 255 for colour in matplotlib.colormaps["tab10"].colors]


def detections(frames: int) -> np.ndarray:
    """Keypoints [2, frames, 17, 3] of the first frames: track 0 the participant (right in the
    image), track 1 the second detection (at the left edge, partly unseen)."""
    keypoints = np.full((2, frames, 17, 3), np.nan, np.float32)
    for frame, file in enumerate(sorted(SAMPLE_DETECTIONS.glob("*.json"))[:frames]):
        people = [to_h36m(np.array(person["pose_keypoints_2d"], np.float32).reshape(25, 3), "body25b")
                  for person in json.loads(file.read_text())["people"]]
        people.sort(key=lambda person: -person[person[:, 2] > 0, 0].mean())
        keypoints[: len(people), frame] = people[:2]
    return keypoints


def poses_from(keypoints: np.ndarray) -> np.ndarray:
    """Plausible root-relative poses in metres: the 2D skeleton about its pelvis, a little depth."""
    offsets = keypoints[..., :2] - keypoints[..., :1, :2]
    poses = np.concatenate([offsets / 450.0, np.sin(offsets[..., :1] / 100.0) / 10], axis=-1).astype(np.float32)
    poses[~(keypoints[..., 2] > 0)] = np.nan
    return poses


def read_mp4(path: Path, size: tuple[int, int] | None = None, frames: int | None = None) -> np.ndarray:
    """The first frames (all by default) [frames, H, W, 3], scaled to size by ffmpeg when given."""
    scale = ["-vf", f"scale={size[0]}:{size[1]}:flags=area"] if size else []
    reader = imageio_ffmpeg.read_frames(str(path), output_params=scale)
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3)
                     for frame in itertools.islice(reader, frames)])


def near(image: np.ndarray, colour: np.ndarray, tolerance: float = 40) -> np.ndarray:
    return np.abs(image.astype(np.float32) - colour).max(-1) < tolerance


def far_from_drawing(keypoints: np.ndarray, margin: int = 12) -> np.ndarray:
    """[H, W] of the 2D panel: pixels farther than about margin from every seen joint, bone and label."""
    points = keypoints[..., :2] * np.array([PANEL_2D[0] / IMAGE_SIZE[0], PANEL_2D[1] / IMAGE_SIZE[1]])
    mask = Image.new("L", PANEL_2D, 0)
    draw = ImageDraw.Draw(mask)
    for track_points, confidence in zip(points, keypoints[..., 2]):
        seen = confidence > 0
        for joint, parent in enumerate(PARENTS):
            if parent >= 0 and seen[joint] and seen[parent]:
                draw.line([tuple(track_points[parent]), tuple(track_points[joint])], fill=255, width=2 * margin)
        for x, y in track_points[seen]:
            draw.ellipse((x - margin, y - margin, x + margin, y + margin), fill=255)
        if seen.any():
            x, y = track_points[seen][np.argmin(track_points[seen, 1])]
            draw.rectangle((x - 25, y - 35, x + 25, y), fill=255)          # the track id above the head
    return np.asarray(mask) == 0


def test_mp4_over_the_video_shows_its_frames_the_keypoints_and_the_skeletons(tmp_path, capfd):
    first_frame, frames = 40, 8
    keypoints = detections(first_frame + frames)[:, first_frame:]
    out = render(tmp_path / "lift.mp4", keypoints, poses_from(keypoints), [3, 7], IMAGE_SIZE, 60.0, video=VIDEO,
                 first_frame=first_frame, progress=False)
    assert out == tmp_path / "lift.mp4" and capfd.readouterr() == ("", "")
    rendered = read_mp4(out)
    assert rendered.shape == (frames, OUTPUT_SIZE[1], OUTPUT_SIZE[0], 3)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lift.mp4"]

    source = read_mp4(VIDEO, PANEL_2D, first_frame + frames).astype(np.float32)
    for frame in range(frames):
        panel_2d = rendered[frame, :, : PANEL_2D[0]].astype(np.float32)
        untouched = far_from_drawing(keypoints[:, frame])
        expected = source[first_frame + frame]
        error = np.abs(panel_2d - expected)[untouched].mean()           # about 3.5: encoded twice
        assert error < 6, f"frame {frame}: the 2D panel is not video frame {first_frame + frame} ({error:.1f})"
        moved = untouched & (np.abs(expected - source[0]).max(-1) > 40)  # since the video's first frame
        assert moved.sum() > 1000
        assert np.abs(panel_2d - expected)[moved].mean() < 15 < 50 < np.abs(panel_2d - source[0])[moved].mean()
        pelvis_to_thorax = (keypoints[0, frame, 0, :2] + keypoints[0, frame, 8, :2]) / 2 * PANEL_2D[1] / IMAGE_SIZE[1]
        column, row = np.round(pelvis_to_thorax).astype(int)
        assert near(rendered[frame, row - 1: row + 2, column - 1: column + 2], TAB10[0]).any()

    panel_3d = rendered[:, 80:, PANEL_2D[0]:]                                  # below the legend
    participant, second = near(panel_3d, TAB10[0]), near(panel_3d, TAB10[1])
    assert participant.sum(axis=(1, 2)).min() > 100 and second.sum(axis=(1, 2)).min() > 20
    assert np.nonzero(participant)[2].mean() > np.nonzero(second)[2].mean()    # right in the image: right here too


def test_gif_without_video_on_a_plain_background_at_most_50_frames_per_second(tmp_path):
    keypoints = detections(6)
    poses = poses_from(keypoints)
    keypoints[1, 1:] = poses[1, 1:] = np.nan                        # the second track leaves after frame 0
    out = render(tmp_path / "lift.gif", keypoints, poses, [0, 1], IMAGE_SIZE, 60.0, progress=False)
    gif = Image.open(out)
    assert (gif.n_frames, gif.size, gif.info["duration"]) == (3, OUTPUT_SIZE, 30)     # every 2nd frame of 60/s
    for index in range(gif.n_frames):
        gif.seek(index)
        image = np.asarray(gif.convert("RGB"))
        panel_2d, panel_3d = image[:, : PANEL_2D[0]], image[80:, PANEL_2D[0]:]
        assert near(image[-40:, : PANEL_2D[0] - 40], np.array(render_module.BACKGROUND), 4).all()
        assert near(panel_2d, TAB10[0]).sum() > 100 and near(panel_3d, TAB10[0]).sum() > 100
        second_track = near(panel_2d, TAB10[1]).sum(), near(panel_3d, TAB10[1]).sum()
        assert min(second_track) > 20 if index == 0 else second_track == (0, 0)


def test_progress_bar_counts_the_frames(tmp_path, capfd):
    keypoints = detections(2)
    render(tmp_path / "lift.gif", keypoints, poses_from(keypoints), [0, 1], IMAGE_SIZE, 10.0)
    assert "2/2" in capfd.readouterr().err


def test_a_video_of_another_size_is_refused_before_writing(tmp_path):
    keypoints = detections(3)
    with pytest.raises(InputError, match=r"balancing_cam01\.mp4 is 1080x1920 .* 1920x1080"):
        render(tmp_path / "lift.mp4", keypoints, poses_from(keypoints), [0, 1], (1920, 1080), 60.0, video=VIDEO)
    assert list(tmp_path.iterdir()) == []


def test_a_video_too_short_for_the_frames_is_refused(tmp_path):
    keypoints = detections(10)
    with pytest.raises(InputError, match=r"balancing_cam01\.mp4 has 100 frames; .* needs 105"):
        render(tmp_path / "lift.mp4", keypoints, poses_from(keypoints), [0, 1], IMAGE_SIZE, 60.0, video=VIDEO,
               first_frame=95)
    assert list(tmp_path.iterdir()) == []


def test_missing_and_unreadable_videos_are_named(tmp_path):
    keypoints = detections(2)
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    for video, reason in ((tmp_path / "missing.mp4", "does not exist"), (junk, "cannot read")):
        with pytest.raises(InputError, match=f"{reason}.*{video.name}|{video.name}.*{reason}"):
            render(tmp_path / "lift.mp4", keypoints, poses_from(keypoints), [0, 1], IMAGE_SIZE, 60.0, video=video)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["junk.mp4"]


def test_a_video_that_ends_early_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(imageio_ffmpeg, "count_frames_and_secs", lambda path: (1000, 16.7))   # a header that lies
    keypoints = detections(10)
    with pytest.raises(InputError, match=r"balancing_cam01\.mp4 ended after 100 frames; rendering needs 105"):
        render(tmp_path / "lift.mp4", keypoints, poses_from(keypoints), [0, 1], IMAGE_SIZE, 60.0, video=VIDEO,
               first_frame=95, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_probe_video_reads_size_and_frame_rate(tmp_path):
    assert render_module.probe_video(VIDEO) == (1080.0, 1920.0, 60.0)
    with pytest.raises(InputError, match="missing.mp4 does not exist"):
        render_module.probe_video(tmp_path / "missing.mp4")


def test_only_mp4_and_gif(tmp_path):
    keypoints = detections(2)
    with pytest.raises(InputError, match=r"\.mp4, \.gif"):
        render(tmp_path / "lift.avi", keypoints, poses_from(keypoints), [0, 1], IMAGE_SIZE, 60.0)


def test_a_failure_while_rendering_leaves_no_file(tmp_path, monkeypatch):
    def broken(self, frame, caption):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(render_module._SkeletonPanel, "draw", broken)
    keypoints = detections(3)
    with pytest.raises(RuntimeError, match="drawing failed"):
        render(tmp_path / "lift.mp4", keypoints, poses_from(keypoints), [0, 1], IMAGE_SIZE, 60.0, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change, message", [
    (lambda k, p, ids: (k[..., :2], p, ids), r"keypoints must have shape \[tracks, frames, 17, 3\]"),
    (lambda k, p, ids: (k, p[:, :2], ids), r"poses \(2, 2, 17, 3\) and keypoints \(2, 3, 17, 3\)"),
    (lambda k, p, ids: (k[:, :0], p[:, :0], ids), "nothing to render: 2 tracks of 0 frames"),
    (lambda k, p, ids: (k, p, ids[:1]), "1 track ids for 2 tracks"),
    (lambda k, p, ids: (np.full(k.shape, "x"), p, ids), "keypoints must be a numeric array"),
])
def test_inputs_that_do_not_fit_are_refused(tmp_path, change, message):
    keypoints = detections(3)
    with pytest.raises(InputError, match=message):
        render(tmp_path / "lift.gif", *change(keypoints, poses_from(keypoints), [0, 1]), IMAGE_SIZE, 60.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("image_size, fps, first_frame, message", [
    ((0, 1920), 60.0, 0, "image_size must be a positive"),
    (IMAGE_SIZE, 0.0, 0, "fps must be positive"),
    (IMAGE_SIZE, 60.0, -1, "first_frame must be a frame index"),
])
def test_settings_that_make_no_sense_are_refused(tmp_path, image_size, fps, first_frame, message):
    keypoints = detections(2)
    with pytest.raises(InputError, match=message):
        render(tmp_path / "lift.gif", keypoints, poses_from(keypoints), [0, 1], image_size, fps,
               first_frame=first_frame)
