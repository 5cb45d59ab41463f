"""Detector files in, 3D poses out: `kasf lift` as a library call.

read (kasf.keypoints) -> track where the detector gave no ids -> lift through the streaming
runtime -> write by suffix (.csv .json .npz .trc) -> render (.mp4 .gif).
"""

from __future__ import annotations

from pathlib import Path

from ..engines import load_engine
from ..engines.base import Engine
from ..errors import InputError
from ..keypoints import read_detections
from .lifting import DEFAULT_HEIGHT_M, LiftResult, lift_detections
from .writers import WRITERS, check_outputs, write_outputs

__all__ = ["DEFAULT_HEIGHT_M", "LiftResult", "WRITERS", "lift", "lift_detections", "write_outputs"]


def lift(detections: str | Path, engine: Engine | str | Path, outputs: list[str | Path], *, format: str | None = None,
         layout: str | None = None, image_size: tuple[float, float] | None = None, video: str | Path | None = None,
         fps: float | None = None, render: str | Path | None = None, min_confidence: float = 0.0,
         lag: int | None = None, stride: int = 1, blend: bool = False, mode: str = "centred",
         height_m: float | None = None, progress: bool = True) -> tuple[LiftResult, list[Path]]:
    """Lift a detections file or folder with an engine (an Engine, or any model file kasf loads)
    and write every output; returns the result and the files written. The image size and frame
    rate come from the video where one is given (a different --image-size is an error)."""
    from .render import RENDER_SUFFIXES, probe_video, render as render_video

    outputs = check_outputs(outputs)
    if render is not None and Path(render).suffix.lower() not in RENDER_SUFFIXES:
        raise InputError(f"{render}: a render is {' or '.join(RENDER_SUFFIXES)}")
    found = read_detections(detections, format, layout=layout, image_size=image_size, min_confidence=min_confidence)
    if video is not None:
        width, height, video_fps = probe_video(video)
        if image_size is not None and tuple(map(float, image_size)) != (width, height):
            raise InputError(f"--image-size {image_size[0]:g} {image_size[1]:g} is not the video's size "
                             f"{width:g} x {height:g} ({video})")
        image_size, fps = (width, height), fps or video_fps
    if isinstance(engine, (str, Path)):
        engine = load_engine(engine)
    result = lift_detections(found, engine, image_size=image_size, fps=fps or 30.0, lag=lag, stride=stride,
                             blend=blend, mode=mode, height_m=height_m)
    written = write_outputs(result, outputs)
    if render is not None:
        written.append(render_video(render, result.keypoints, result.metres(), result.track_ids, result.image_size,
                                    result.fps, video=video, first_frame=result.detections.first_frame,
                                    progress=progress))
    return result, written
