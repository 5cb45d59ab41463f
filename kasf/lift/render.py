"""A video of a lift, to check it by eye: each frame's 2D keypoints (over the source video's frame
when there is one) beside the 3D skeletons lifted from them, one colour per track in both panels.

Fast enough for whole clips because the 3D panel is one matplotlib figure drawn once and blitted:
per frame only the skeleton lines are redrawn, and ffmpeg scales the source video's frames.
"""

from __future__ import annotations

import itertools
import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..files import atomic_write
from ..keypoints.skeleton import NUM_JOINTS, PARENTS

RENDER_SUFFIXES = (".mp4", ".gif")
PANEL_HEIGHT = 540                       # pixels; both panels, whatever the image size
BACKGROUND = (32, 32, 32)                # the 2D panel's, without a video
BONES = tuple((parent, joint) for joint, parent in enumerate(PARENTS) if parent >= 0)
TRACK_GAP = 0.3                          # metres between neighbouring tracks' skeletons in the 3D panel
MIN_HALF_RANGE = 0.4                     # metres: the 3D axes never shrink below 0.8 m per side
GIF_MAX_FPS = 50                         # browsers play GIF frames shorter than 20 ms at 10 frames/s


def render(path: str | Path, keypoints: np.ndarray, poses: np.ndarray, track_ids: Sequence[int],
           image_size: tuple[float, float], fps: float, video: str | Path | None = None, first_frame: int = 0,
           progress: bool = True) -> Path:
    """Write `path` (.mp4: H.264, or .gif), frame i showing frame first_frame + i of the clip.

    keypoints: [tracks, frames, 17, 3] pixel x, y, confidence (Human3.6M order; 0: not seen, NaN:
    track absent). poses: the same shape, root-relative camera-coordinate metres (NaN: no pose).
    track_ids label the tracks; image_size is the keypoints' image (width, height), which the video,
    if given, must match. A GIF of a clip faster than GIF_MAX_FPS shows every 2nd (3rd...) frame.
    Raises InputError, before writing anything, on inputs that do not fit."""
    path = Path(path)
    if path.suffix.lower() not in RENDER_SUFFIXES:
        raise InputError(f"cannot render to {path}: the output must end in one of {', '.join(RENDER_SUFFIXES)}")
    keypoints, poses = _checked_tracks(keypoints, poses, track_ids)
    _check_settings(image_size, fps, first_frame)
    frames = keypoints.shape[1]
    if video is not None:
        _check_video(Path(video), image_size, first_frame, frames)
    size_2d = (_even(image_size[0] * PANEL_HEIGHT / image_size[1]), PANEL_HEIGHT)
    pixel_scale = np.array([size_2d[0] / image_size[0], size_2d[1] / image_size[1]], np.float32)
    colours = _track_colours(len(track_ids))
    labels = [str(track_id) for track_id in track_ids]
    panel_3d = _SkeletonPanel(poses, keypoints, labels, colours)
    backgrounds = (_video_frames(Path(video), size_2d, first_frame, frames) if video is not None
                   else (np.full((size_2d[1], size_2d[0], 3), BACKGROUND, np.uint8) for _ in range(frames)))

    step = math.ceil(fps / GIF_MAX_FPS) if path.suffix.lower() == ".gif" else 1
    shown = range(0, frames, step)

    def composed() -> Iterator[np.ndarray]:
        from tqdm import tqdm

        for frame, background in tqdm(zip(shown, itertools.islice(backgrounds, None, None, step)), total=len(shown),
                                      unit="frame", desc=path.name, disable=not progress):
            panel_2d = _draw_keypoints(background, keypoints[:, frame, :, :2] * pixel_scale,
                                       keypoints[:, frame, :, 2], labels, colours)
            yield np.concatenate([panel_2d, panel_3d.draw(frame, f"frame {first_frame + frame}")], axis=1)

    write = _write_mp4 if path.suffix.lower() == ".mp4" else _write_gif
    return atomic_write(path, lambda tmp: write(tmp, composed(), fps / step), suffix=path.suffix)


def _checked_tracks(keypoints, poses, track_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, value in (("keypoints", keypoints), ("poses", poses)):
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise InputError(f"{name} must be a numeric array [tracks, frames, {NUM_JOINTS}, 3]: {error}") from error
        if array.ndim != 4 or array.shape[2:] != (NUM_JOINTS, 3):
            raise InputError(f"{name} must have shape [tracks, frames, {NUM_JOINTS}, 3] (Human3.6M joints, "
                             f"x/y/confidence or x/y/z), got {array.shape}")
        arrays.append(array)
    keypoints, poses = arrays
    if poses.shape != keypoints.shape:
        raise InputError(f"poses {poses.shape} and keypoints {keypoints.shape} must have the same tracks and frames")
    if keypoints.shape[0] == 0 or keypoints.shape[1] == 0:
        raise InputError(f"nothing to render: {keypoints.shape[0]} tracks of {keypoints.shape[1]} frames")
    if len(track_ids) != keypoints.shape[0]:
        raise InputError(f"{len(track_ids)} track ids for {keypoints.shape[0]} tracks of keypoints and poses")
    return keypoints, poses


def _check_settings(image_size: tuple[float, float], fps: float, first_frame: int) -> None:
    if len(image_size) != 2 or not all(math.isfinite(side) and side > 0 for side in image_size):
        raise InputError(f"image_size must be a positive (width, height), got {image_size}")
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be positive, got {fps}")
    if int(first_frame) != first_frame or first_frame < 0:
        raise InputError(f"first_frame must be a frame index (0 or more), got {first_frame}")


def probe_video(video: str | Path) -> tuple[float, float, float]:
    """A video's (width, height, fps) as decoded (after any rotation the file asks for); raises
    InputError naming the video when it is missing or unreadable."""
    import imageio_ffmpeg

    video = Path(video)
    if not video.is_file():
        raise InputError(f"video {video} does not exist")
    try:
        reader = imageio_ffmpeg.read_frames(str(video))
        meta = next(reader)
        reader.close()
    except (OSError, RuntimeError, IndexError, ValueError) as error:
        raise InputError(f"cannot read video {video}: {_last_line(error)}") from error
    return float(meta["size"][0]), float(meta["size"][1]), float(meta["fps"])


def _last_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def _check_video(video: Path, image_size: tuple[float, float], first_frame: int, frames: int) -> None:
    """Raise InputError unless the video opens, has the keypoints' image size and enough frames."""
    import imageio_ffmpeg

    width, height, _ = probe_video(video)
    expected = tuple(round(side) for side in image_size)
    if (round(width), round(height)) != expected:
        raise InputError(f"video {video} is {width:g}x{height:g} but the keypoints are on "
                         f"{expected[0]}x{expected[1]} images")
    try:
        count, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    except (OSError, RuntimeError, ValueError) as error:
        raise InputError(f"cannot count the frames of video {video}: {_last_line(error)}") from error
    if count < first_frame + frames:
        raise InputError(f"video {video} has {count} frames; rendering {frames} frames from frame {first_frame} "
                         f"needs {first_frame + frames}")


def _video_frames(video: Path, size: tuple[int, int], first_frame: int, count: int) -> Iterator[np.ndarray]:
    """`count` RGB frames from first_frame on, scaled to size by ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(video), output_params=["-vf", f"scale={size[0]}:{size[1]}:flags=area"])
    logging.getLogger("imageio_ffmpeg").addFilter(_not_the_resize_warning)     # the size differs: as asked
    try:
        next(reader)                                                # the metadata
    finally:
        logging.getLogger("imageio_ffmpeg").removeFilter(_not_the_resize_warning)
    try:
        decoded = 0
        for decoded, frame in enumerate(reader, start=1):
            if decoded > first_frame:
                yield np.frombuffer(frame, np.uint8).reshape(size[1], size[0], 3)
            if decoded == first_frame + count:
                return
        raise InputError(f"video {video} ended after {decoded} frames; rendering needs {first_frame + count}")
    finally:
        reader.close()


def _not_the_resize_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("The frame size for reading")


def _even(length: float) -> int:
    return max(2, 2 * round(length / 2))


def _track_colours(count: int) -> list[tuple[float, float, float]]:
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors
    return [tuple(palette[track % len(palette)]) for track in range(count)]


@lru_cache(maxsize=1)
def _label_font():
    from PIL import ImageFont

    return ImageFont.load_default(size=16)


def _draw_keypoints(background: np.ndarray, points: np.ndarray, confidence: np.ndarray, labels: list[str],
                    colours: list[tuple[float, float, float]]) -> np.ndarray:
    """Each track's seen joints and the bones between them, its id above its topmost joint."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    seen = np.isfinite(points).all(-1) & (np.nan_to_num(confidence) > 0)
    for track, label in enumerate(labels):
        if not seen[track].any():
            continue
        colour = tuple(round(255 * channel) for channel in colours[track])
        for parent, joint in BONES:
            if seen[track, parent] and seen[track, joint]:
                draw.line([tuple(points[track, parent]), tuple(points[track, joint])], fill=colour, width=3)
        for x, y in points[track][seen[track]]:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        x, y = points[track][seen[track]][np.argmin(points[track, seen[track], 1])]
        draw.text((x, y - 8), label, fill=colour, font=_label_font(), anchor="md", stroke_width=2,
                  stroke_fill=(0, 0, 0))
    return np.asarray(image)


class _SkeletonPanel:
    """The 3D panel: one figure whose axes, panes and legend are drawn once; each frame restores
    that background and draws only the skeleton lines (a full mplot3d redraw is ~10x slower).
    Tracks stand side by side in the order of their mean 2D x, so that left in the image is left
    here, in fixed slots and axes fixed over the clip."""

    def __init__(self, poses: np.ndarray, keypoints: np.ndarray, labels: list[str],
                 colours: list[tuple[float, float, float]]):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(PANEL_HEIGHT / 100, PANEL_HEIGHT / 100), dpi=100)
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_subplot(projection="3d")
        self.points = _side_by_side(poses, keypoints)
        self.lines = [self.axes.plot([], [], [], color=colour, linewidth=2, marker="o", markersize=2.5,
                                     label=f"track {label}", animated=True)[0]
                      for label, colour in zip(labels, colours)]
        self.caption = self.figure.text(0.02, 0.02, "", fontsize=9, animated=True)
        self._frame_axes()
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def _frame_axes(self) -> None:
        from matplotlib.ticker import MaxNLocator

        finite = self.points[np.isfinite(self.points).all(-1)]
        low, high = (finite.min(0), finite.max(0)) if len(finite) else (np.zeros(3), np.zeros(3))
        centre, half = (low + high) / 2, np.maximum((high - low) / 2 + 0.05, MIN_HALF_RANGE)
        half[1] = max(half[1], half[2] / 2)          # room in depth, or its axis labels pile up
        for set_limits, middle, extent in zip((self.axes.set_xlim, self.axes.set_ylim, self.axes.set_zlim),
                                              centre, half):
            set_limits(middle - extent, middle + extent)
        self.axes.set_box_aspect(tuple(half), zoom=0.92)
        self.axes.view_init(elev=12, azim=-65)
        self.axes.set_xlabel("x (m)", fontsize=7)
        self.axes.set_ylabel("depth (m)", fontsize=7)
        self.axes.set_zlabel("up (m)", fontsize=7)
        self.axes.tick_params(labelsize=6)
        self.axes.yaxis.set_major_locator(MaxNLocator(3))
        self.axes.set_title("3D poses, root-relative", fontsize=9)
        self.axes.legend(loc="upper right", fontsize=7)
        self.figure.subplots_adjust(left=0, right=0.95, bottom=0.02, top=0.95)

    def draw(self, frame: int, caption: str) -> np.ndarray:
        """The panel at `frame`, RGB [PANEL_HEIGHT, PANEL_HEIGHT, 3]."""
        self.canvas.restore_region(self.background)
        for line, pose in zip(self.lines, self.points[:, frame]):
            bones = np.full((len(BONES), 3, 3), np.nan, np.float32)     # parent, joint, NaN: a break
            bones[:, 0], bones[:, 1] = pose[[p for p, _ in BONES]], pose[[j for _, j in BONES]]
            line.set_data_3d(*bones.reshape(-1, 3).T)
            self.axes.draw_artist(line)
        self.caption.set_text(caption)
        self.figure.draw_artist(self.caption)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def _side_by_side(poses: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Poses in plot axes (x, depth, up), each track shifted along x into its slot, one widest
    skeleton plus TRACK_GAP apart."""
    upright = np.stack([poses[..., 0], poses[..., 2], -poses[..., 1]], axis=-1)
    widths = np.fmax.reduce(upright[..., 0], axis=-1) - np.fmin.reduce(upright[..., 0], axis=-1)
    widths = widths[np.isfinite(widths)]
    spacing = (float(widths.max()) if widths.size else 0.0) + TRACK_GAP
    seen = np.isfinite(keypoints[..., 0]) & (np.nan_to_num(keypoints[..., 2]) > 0)
    mean_x = [track[mask, 0].mean() if mask.any() else np.inf for track, mask in zip(keypoints, seen)]
    slots = np.empty(len(poses), np.float32)
    slots[np.argsort(mean_x, kind="stable")] = np.arange(len(poses)) - (len(poses) - 1) / 2
    upright[..., 0] += slots[:, None, None] * spacing
    return upright


def _write_mp4(tmp: str, frames: Iterator[np.ndarray], fps: float) -> None:
    import imageio_ffmpeg

    first = next(frames)
    writer = imageio_ffmpeg.write_frames(tmp, (first.shape[1], first.shape[0]), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=2, ffmpeg_log_level="error")
    writer.send(None)
    try:
        for frame in itertools.chain([first], frames):
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def _write_gif(tmp: str, frames: Iterator[np.ndarray], fps: float) -> None:
    from PIL import Image

    images = (Image.fromarray(frame).quantize(method=Image.Quantize.FASTOCTREE)    # 40x faster than median cut
              for frame in frames)
    first = next(images)
    first.save(tmp, format="GIF", save_all=True, append_images=images, duration=round(1000 / fps), loop=0)
