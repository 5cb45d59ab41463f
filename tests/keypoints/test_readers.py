"""Readers on real OpenPose output (Pose2Sim's demo, BODY_25B) and, for the formats no shipped
file covers, on files written from each format's published description, filled with the same
real people so that every reader must agree on them."""

import json
from pathlib import Path

import numpy as np
import pytest

from kasf.errors import InputError
from kasf.keypoints import LAYOUTS, detect_format, read_detections
from kasf.keypoints.kasf_csv import write_keypoints

from conftest import PARTICIPANTS, SAMPLE_DETECTIONS

BALANCING = SAMPLE_DETECTIONS


def real_people(folder: Path = BALANCING, frames: int = 30) -> list[list[dict[str, list[float]]]]:
    """Per frame, each person's BODY_25B joints by name: {name: [x, y, c]}."""
    names = LAYOUTS["body25b"].joints
    out = []
    for file in sorted(folder.glob("*.json"))[:frames]:
        people = [np.asarray(p["pose_keypoints_2d"], float).reshape(-1, 3) for p in json.loads(file.read_text())["people"]]
        out.append([dict(zip(names, points.tolist())) for points in people if len(points)])
    return out


def in_layout(joints: dict[str, list[float]], layout: str) -> list[float]:
    """A person's flat [x, y, c, ...] in a layout: OpenPose's BODY_25 and COCO-18 neck and
    mid-hip are the shoulder and hip midpoints, Halpe's too, and its head is BODY_25B's head top."""
    mid = lambda a, b: [(joints[a][0] + joints[b][0]) / 2, (joints[a][1] + joints[b][1]) / 2,
                        (joints[a][2] + joints[b][2]) / 2 if joints[a][2] and joints[b][2] else 0.0]
    built = dict(joints, neck=mid("left_shoulder", "right_shoulder"), mid_hip=mid("left_hip", "right_hip"))
    return [value for name in LAYOUTS[layout].joints for value in built.get(name, [0.0, 0.0, 0.0])]


def write_openpose(folder: Path, layout: str, ids: bool) -> Path:
    folder.mkdir()
    for frame, people in enumerate(real_people()):
        document = {"version": 1.3, "people": [
            {"person_id": [i if ids else -1], "pose_keypoints_2d": in_layout(joints, layout)}
            for i, joints in enumerate(people)]}
        (folder / f"clip_{frame:012d}_keypoints.json").write_text(json.dumps(document))
    return folder


def alphapose_results(layout: str) -> list[dict]:
    return [{"image_id": f"{frame}.jpg", "category_id": 1, "keypoints": in_layout(joints, layout), "score": 2.5,
             "box": [0, 0, 10, 10], "idx": i}
            for frame, people in enumerate(real_people()) for i, joints in enumerate(people)]


def mmpose_instances(people: list[dict]) -> list[dict]:
    def instance(joints):
        flat = np.asarray(in_layout(joints, "coco17")).reshape(-1, 3)
        return {"keypoints": flat[:, :2].tolist(), "keypoint_scores": flat[:, 2].tolist(),
                "bbox": [[0, 0, 10, 10]], "bbox_score": 0.9}
    return [instance(joints) for joints in people]


def write_json(path: Path, document) -> Path:
    path.write_text(json.dumps(document))
    return path


def reference() -> list[list[np.ndarray]]:
    return read_detections(BALANCING).frames[:30]


def assert_same_people(detections, reference_frames, joints=slice(None)):
    assert len(detections.frames) == len(reference_frames)
    for got, expected in zip(detections.frames, reference_frames):
        got = list(got.values()) if isinstance(got, dict) else got
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a[joints], b[joints], atol=1e-3)


def test_real_openpose_folder_is_body25b_without_ids():
    found = read_detections(BALANCING)
    assert (found.format, found.layout.name, found.tracked) == ("openpose", "body25b", False)
    assert len(found.frames) == 100 and found.first_frame == 0
    assert [len(people) for people in found.frames].count(2) == 99 and len(found.frames[37]) == 3
    assert all(np.all((p[:, 2] >= 0) & (p[:, 2] <= 1)) for people in found.frames for p in people)
    multi = read_detections(PARTICIPANTS)        # people with an empty pose_keypoints_2d are skipped
    assert len(multi.frames) == 40 and max(len(people) for people in multi.frames) == 4


@pytest.mark.parametrize("layout", ["body25", "coco18", "body25b"])
def test_openpose_layouts_with_and_without_ids(tmp_path, layout):
    found = read_detections(write_openpose(tmp_path / "json", layout, ids=layout != "body25b"))
    assert (found.format, found.layout.name, found.tracked) == ("openpose", layout, layout != "body25b")
    same = slice(None) if layout == "body25b" else list(range(10))  # no head top there: head is built
    assert_same_people(found, reference(), joints=same)


@pytest.mark.parametrize("layout", ["coco17", "halpe26"])
def test_alphapose_results_with_track_ids(tmp_path, layout):
    path = write_json(tmp_path / "alphapose-results.json", alphapose_results(layout))
    found = read_detections(path)
    assert (found.format, found.layout.name, found.tracked) == ("alphapose", layout, True)
    assert_same_people(found, reference(), joints=slice(None) if layout == "halpe26" else list(range(10)))


def test_mmpose_inferencer_and_legacy_predictions_and_per_image_folder(tmp_path):
    people = real_people()
    inferencer = write_json(tmp_path / "clip.json", [{"frame_id": i, "instances": mmpose_instances(p)}
                                                     for i, p in enumerate(people)])
    legacy = write_json(tmp_path / "results_clip.json", {
        "meta_info": {"dataset_name": "coco", "num_keypoints": 17},
        "instance_info": [{"frame_id": i + 1, "instances": mmpose_instances(p)} for i, p in enumerate(people)]})
    folder = tmp_path / "per_image"
    folder.mkdir()
    for i, p in enumerate(people):
        write_json(folder / f"frame_{i:05d}.json", mmpose_instances(p))
    for path in (inferencer, legacy, folder):
        found = read_detections(path)
        assert (found.format, found.layout.name, found.tracked) == ("mmpose", "coco17", False)
        assert_same_people(found, reference(), joints=list(range(10)))
    assert read_detections(legacy).first_frame == 0          # the older demo counts frames from 1


def test_coco_results_and_kasf_csv(tmp_path):
    coco = write_json(tmp_path / "keypoints_results.json",
                      [{"image_id": int(e["image_id"].split(".")[0]), "category_id": 1, "keypoints": e["keypoints"],
                        "score": 0.9} for e in alphapose_results("coco17")])
    found = read_detections(coco)
    assert (found.format, found.tracked) == ("coco", False)
    assert_same_people(found, reference(), joints=list(range(10)))
    csv = write_keypoints(tmp_path / "capture.csv", [dict(enumerate(people)) for people in reference()])
    found = read_detections(csv)
    assert (found.format, found.layout.name, found.tracked) == ("kasf-csv", "h36m", True)
    assert_same_people(found, reference())


def test_the_format_is_told_from_the_file_and_format_forces_it(tmp_path):
    alphapose = write_json(tmp_path / "a.json", alphapose_results("coco17"))
    assert detect_format(BALANCING) == "openpose"
    assert detect_format(alphapose) == "alphapose"
    assert not read_detections(alphapose, "coco").tracked      # COCO results have no track ids
    with pytest.raises(InputError, match=r"a\.json is not mmpose output \(it looks like alphapose\)"):
        read_detections(alphapose, "mmpose")
    with pytest.raises(InputError, match="unknown detections format 'yolo'"):
        read_detections(alphapose, "yolo")
    with pytest.raises(InputError, match=r"in no detector format kasf reads"):
        read_detections(write_json(tmp_path / "other.json", {"images": []}))


def test_a_layout_can_be_forced_and_must_fit(tmp_path):
    assert read_detections(BALANCING, layout="body25").layout.name == "body25"
    with pytest.raises(InputError, match="has 25 keypoints; the OpenPose COCO-18 layout has 18"):
        read_detections(BALANCING, layout="coco18")


def copy_frames(tmp_path: Path, count: int = 5) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for file in sorted(BALANCING.glob("*.json"))[:count]:
        (folder / file.name).write_text(file.read_text())
    return folder


def test_truncated_or_malformed_json_names_the_file(tmp_path):
    folder = copy_frames(tmp_path)
    victim = folder / "cam01.0003.json"
    victim.write_text(victim.read_text()[:200])
    with pytest.raises(InputError, match=r"cam01\.0003\.json is not valid JSON .*line 1, column \d+.*truncated"):
        read_detections(folder)
    victim.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match=r"cam01\.0003\.json is not a JSON text file"):
        read_detections(folder)
    victim.write_text(json.dumps({"people": [{"pose_keypoints_2d": "x"}]}))
    with pytest.raises(InputError, match=r"cam01\.0003\.json \(frame 3\) people\[0\]\.pose_keypoints_2d is not a list"):
        read_detections(folder)


def test_a_keypoint_count_no_layout_has_names_file_frame_and_field(tmp_path):
    folder = copy_frames(tmp_path)
    for file in folder.glob("*.json"):
        document = json.loads(file.read_text())
        document["people"][0]["pose_keypoints_2d"] = document["people"][0]["pose_keypoints_2d"][:60]
        file.write_text(json.dumps(document))
    with pytest.raises(InputError, match=r"cam01\.0000\.json \(frame 0\) people\[0\]\.pose_keypoints_2d has 20 "
                                         r"keypoints, a count no layout kasf knows has \(17: coco17, h36m; 18: coco18"):
        read_detections(folder)


def test_mixed_layouts_in_one_folder(tmp_path):
    folder = copy_frames(tmp_path)
    document = json.loads((folder / "cam01.0002.json").read_text())
    document["people"][1]["pose_keypoints_2d"] = in_layout(real_people()[2][1], "coco18")
    (folder / "cam01.0002.json").write_text(json.dumps(document))
    with pytest.raises(InputError, match=r"mixed layouts: cam01\.0002\.json \(frame 2\) people\[1\]\.pose_keypoints_2d "
                                         r"has 18 keypoints, cam01\.0000\.json .* has 25"):
        read_detections(folder)


@pytest.mark.parametrize("confidence, problem", [(float("nan"), "a NaN confidence"), (-0.5, "a negative confidence")])
def test_nan_or_negative_confidences(tmp_path, confidence, problem):
    folder = copy_frames(tmp_path)
    document = json.loads((folder / "cam01.0004.json").read_text())
    document["people"][0]["pose_keypoints_2d"][3 * 6 + 2] = confidence
    (folder / "cam01.0004.json").write_text(json.dumps(document))       # json writes NaN, as some tools do
    with pytest.raises(InputError, match=rf"cam01\.0004\.json \(frame 4\) people\[0\]\.pose_keypoints_2d: keypoint 6 "
                                         rf"\(right_shoulder\) has {problem}"):
        read_detections(folder)


def test_frames_out_of_order_and_twice(tmp_path):
    entries = alphapose_results("coco17")
    entries[40]["image_id"] = "2.jpg"
    with pytest.raises(InputError, match=r"a\.json frame 2 \[40\]\.keypoints: frame 2 comes after frame \d+; frames "
                                         "out of order"):
        read_detections(write_json(tmp_path / "a.json", entries))
    frames = [{"frame_id": i, "instances": mmpose_instances(p)} for i, p in enumerate(real_people()[:4])]
    frames[2]["frame_id"] = 0
    with pytest.raises(InputError, match="frame 0 comes after frame 1; frames out of order"):
        read_detections(write_json(tmp_path / "m.json", frames))
    folder = copy_frames(tmp_path)
    (folder / "cam01.00001.json").write_text((folder / "cam01.0001.json").read_text())
    with pytest.raises(InputError, match=r"are both frame 1"):
        read_detections(folder)


def test_a_track_twice_in_one_frame_and_bad_track_ids(tmp_path):
    entries = alphapose_results("coco17")
    entries[1]["idx"] = entries[0]["idx"]
    with pytest.raises(InputError, match="track 0 appears twice in frame 0"):
        read_detections(write_json(tmp_path / "a.json", entries))
    entries[1]["idx"] = "seven"
    with pytest.raises(InputError, match=r"\[1\]\.idx: the track id 'seven' is not an integer"):
        read_detections(write_json(tmp_path / "a.json", entries))


def test_min_confidence_unsees_weak_joints_and_drops_ghosts(tmp_path):
    found = read_detections(BALANCING, min_confidence=0.6)
    weakest = min(float(p[p[:, 2] > 0, 2].min()) for people in found.frames for p in people)
    assert weakest >= 0.6
    assert read_detections(BALANCING, min_confidence=0.99).people < read_detections(BALANCING).people
    with pytest.raises(InputError, match="no people with keypoints"):
        read_detections(write_json(tmp_path / "empty.json", {"people": []}))
