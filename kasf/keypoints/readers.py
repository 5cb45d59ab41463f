"""Readers of detector files, one per format, and the detection of a file's format.

| format     | what it reads                                                                  | track ids       |
|------------|--------------------------------------------------------------------------------|-----------------|
| openpose   | a folder of OpenPose per-frame JSON (`--write_json`), frame number from the name | person_id >= 0  |
| alphapose  | AlphaPose's results JSON (a list of {image_id, keypoints, score, box[, idx]})  | idx             |
| mmpose     | MMPoseInferencer's pred_out_dir JSON of a video ([{frame_id, instances}]), a   | track_id        |
|            | folder of its per-image JSON, or the older demos' --save-predictions file      |                 |
|            | ({meta_info, instance_info})                                                   |                 |
| coco       | COCO keypoint results ([{image_id, category_id, keypoints, score}]; AlphaPose's | none            |
|            | have a box, an idx or a file name as image_id)                                  |                 |
| kasf-csv   | kasf's keypoint CSV (kasf.keypoints.kasf_csv)                                  | track column    |

A reader yields RawPerson records; detections.assemble converts them the same way for all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .detections import Detections, RawPerson, assemble, keypoint_array
from .kasf_csv import KEYPOINT_COLUMNS, read_keypoints

FORMATS = ("openpose", "alphapose", "mmpose", "coco", "kasf-csv")


def load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a JSON text file") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                         "a detector killed while writing leaves a truncated file") from None


def _frame_number(name: str, where: str) -> int:
    """The last group of digits in a file or image name: OpenPose's video_000000000012_keypoints,
    Pose2Sim's cam01.0012, AlphaPose's 12.jpg."""
    numbers = re.findall(r"\d+", Path(str(name)).stem.replace("_keypoints", ""))
    if not numbers:
        raise InputError(f"{where}: {name!r} holds no frame number")
    return int(numbers[-1])


def _track(value, where: str) -> int | None:
    """A detector's track id: an integer >= 0, a one-element list of one (OpenPose), or none (-1)."""
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None if not value else value
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InputError(f"{where}: the track id {value!r} is not an integer")
    return int(value) if value >= 0 else None


def _expect(value, kind: type, where: str, what: str):
    if not isinstance(value, kind):
        raise InputError(f"{where} must be {what}, got {type(value).__name__}")
    return value


def _openpose_frame(data, frame: int, where: str) -> Iterator[RawPerson]:
    people = _expect(_expect(data, dict, where, "an OpenPose frame object").get("people"), list,
                     f"{where} field 'people'", "a list")
    for i, person in enumerate(people):
        at = f"{where} people[{i}]"
        values = _expect(person, dict, at, "an object").get("pose_keypoints_2d")
        if values is None:
            raise InputError(f"{at} has no 'pose_keypoints_2d'")
        if len(values) == 0:
            continue            # OpenPose lists people it found no body for with an empty array
        yield RawPerson(frame, _track(person.get("person_id"), f"{at}.person_id"),
                        keypoint_array(values, f"{at}.pose_keypoints_2d"), f"{at}.pose_keypoints_2d")


def _mmpose_instances(instances, frame: int, where: str) -> Iterator[RawPerson]:
    for i, instance in enumerate(_expect(instances, list, where, "a list of instances")):
        at = f"{where} instances[{i}]"
        instance = _expect(instance, dict, at, "an object")
        if "keypoints" not in instance or "keypoint_scores" not in instance:
            raise InputError(f"{at} needs 'keypoints' and 'keypoint_scores'")
        xy = keypoint_array(instance["keypoints"], f"{at}.keypoints", channels=2)
        scores = keypoint_array(instance["keypoint_scores"], f"{at}.keypoint_scores", channels=1)
        if len(scores) != len(xy):
            raise InputError(f"{at}: {len(xy)} keypoints but {len(scores)} keypoint_scores")
        yield RawPerson(frame, _track(instance.get("track_id"), f"{at}.track_id"), np.concatenate([xy, scores], 1),
                        f"{at}.keypoints")


def _per_frame(frames, where: str, key: str = "frame_id") -> Iterator[RawPerson]:
    for i, entry in enumerate(_expect(frames, list, where, "a list of frames")):
        at = f"{where} [{i}]"
        entry = _expect(entry, dict, at, "an object")
        if key not in entry or not isinstance(entry[key], int):
            raise InputError(f"{at} has no integer '{key}'")
        yield from _mmpose_instances(entry.get("instances"), entry[key], f"{where} frame {entry[key]}")


def _image_entries(data, where: str, coco: bool) -> Iterator[RawPerson]:
    """AlphaPose and COCO results: one entry per person, image_id naming the frame."""
    for i, entry in enumerate(data):
        at = f"{where} [{i}]"
        entry = _expect(entry, dict, at, "an object")
        if "image_id" not in entry or "keypoints" not in entry:
            raise InputError(f"{at} needs 'image_id' and 'keypoints'")
        image = entry["image_id"]
        frame = image if coco and isinstance(image, int) else _frame_number(image, f"{at}.image_id")
        track = None if coco else _track(entry.get("idx"), f"{at}.idx")
        yield RawPerson(frame, track, keypoint_array(entry["keypoints"], f"{at}.keypoints"),
                        f"{where} frame {frame} [{i}].keypoints")


def json_format(data) -> str | None:
    """The format a parsed JSON document is in, None when it is none kasf reads."""
    if isinstance(data, dict):
        return "mmpose" if "instance_info" in data else "openpose" if "people" in data else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    first = data[0]
    if "frame_id" in first and "instances" in first or "keypoint_scores" in first:
        return "mmpose"
    if "image_id" in first and "keypoints" in first:
        alphapose = "box" in first or "idx" in first or isinstance(first["image_id"], str)
        return "alphapose" if alphapose else "coco"
    return None


def _compatible(found: str | None, forced: str) -> bool:
    """AlphaPose's results are COCO results with more fields: either reader takes either file."""
    return found == forced or {found, forced} <= {"alphapose", "coco"}


# The MMPose dataset names of the legacy file's meta_info, for its layout.
MMPOSE_DATASETS = {"coco": "coco17", "halpe26": "halpe26", "coco_wholebody": "wholebody133", "h36m": "h36m"}


def _json_records(data, fmt: str, where: str, frame: int | None = None) -> tuple[Iterator[RawPerson], dict]:
    """A parsed document's records; frame: the frame a single-frame document holds."""
    if fmt == "openpose":
        return _openpose_frame(data, frame or 0, where), {}
    if fmt in ("alphapose", "coco"):
        return _image_entries(_expect(data, list, where, "a list of results"), where, coco=fmt == "coco"), {}
    if isinstance(data, dict):          # the older demos' --save-predictions
        meta = data.get("meta_info") or {}
        layout = MMPOSE_DATASETS.get(meta.get("dataset_name")) if isinstance(meta, dict) else None
        info = data["instance_info"]
        single = isinstance(info, list) and info and isinstance(info[0], dict) and "frame_id" not in info[0]
        records = _mmpose_instances(info, 0, where) if single else _per_frame(info, where)
        return records, {"layout": layout, "frame_base": 1 if not single else 0}
    if "frame_id" in data[0]:
        return _per_frame(data, where), {}
    return _mmpose_instances(data, frame or 0, where), {}


def _folder_records(folder: Path, forced: str | None) -> tuple[list[RawPerson], str, dict]:
    """A folder of per-frame JSON (OpenPose, or MMPose's per-image files), frames from the names."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise InputError(f"{folder} holds no .json files")
    numbered = sorted((_frame_number(file.name, str(file)), file) for file in files)
    for (number, file), (previous, other) in zip(numbered[1:], numbered):
        if number == previous:
            raise InputError(f"{file} and {other} are both frame {number}")
    records, fmt, options = [], forced, {}
    for number, file in numbered:
        data = load_json(file)
        found = json_format(data)
        if found is None or (fmt is not None and not _compatible(found, fmt)):
            raise InputError(f"{file} is not {fmt or 'an OpenPose or MMPose'} per-frame JSON"
                             + (f" (it looks like {found})" if found else ""))
        fmt = found
        more, options = _json_records(data, fmt, f"{file.name} (frame {number})", frame=number)
        records.extend(more)
    return records, fmt, options


def _csv_records(path: Path) -> list[RawPerson]:
    return [RawPerson(frame, track, keypoints, f"{path} frame {frame} track {track}")
            for frame, people in enumerate(read_keypoints(path)) for track, keypoints in people.items()]


def detect_format(path: str | Path) -> str:
    """The format of a detections file or folder, read from the file itself."""
    path = Path(path)
    if path.is_dir():
        return _folder_records(path, None)[1]
    if not path.exists():
        raise InputError(f"{path} does not exist")
    with open(path, "rb") as handle:
        head = handle.read(len(",".join(KEYPOINT_COLUMNS)))
    if head.decode("utf-8", "replace").startswith("frame,track,"):
        return "kasf-csv"
    found = json_format(load_json(path))
    if found is None:
        raise InputError(f"{path} is in no detector format kasf reads ({', '.join(FORMATS)})")
    return found


def read_detections(path: str | Path, format: str | None = None, *, layout: str | None = None,
                    image_size: tuple[float, float] | None = None, min_confidence: float = 0.0) -> Detections:
    """A detections file or folder in Human3.6M-17 order. format: one of FORMATS, else detected
    from the file; layout: the keypoint layout, else told from the keypoint count (and, for 25,
    from the keypoints: BODY_25 or BODY_25B)."""
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown detections format {format!r}: choose one of {', '.join(FORMATS)}")
    if not path.exists():
        raise InputError(f"{path} does not exist")
    options: dict = {}
    if path.is_dir():
        records, format, options = _folder_records(path, format)
    else:
        format = format or detect_format(path)
        if format == "kasf-csv":
            records, layout = _csv_records(path), layout or "h36m"
        else:
            data = load_json(path)
            if not _compatible(json_format(data), format):
                raise InputError(f"{path} is not {format} output" + (
                    f" (it looks like {json_format(data)})" if json_format(data) else ""))
            records, options = _json_records(data, format, path.name)
            records = list(records)
    return assemble(records, path, format, layout=layout or options.get("layout"),
                    frame_base=options.get("frame_base", 0), image_size=image_size, min_confidence=min_confidence)
