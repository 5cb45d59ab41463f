import numpy as np
import pytest

from kasf.errors import InputError
from kasf.keypoints import LAYOUTS, to_h36m
from kasf.keypoints.layouts import tell_25_point_layout
from kasf.keypoints.skeleton import JOINT_NAMES


def person(layout: str, joints: dict[str, tuple[float, float]], confidence: float = 1.0) -> np.ndarray:
    """A layout's keypoints [K, 3] with the named joints placed and the rest unseen."""
    names = LAYOUTS[layout].joints
    out = np.zeros((len(names), 3), np.float32)
    for name, (x, y) in joints.items():
        out[names.index(name)] = (x, y, confidence)
    return out


BODY = {"nose": (100, 60), "left_eye": (105, 55), "right_eye": (95, 55), "left_ear": (112, 58),
        "right_ear": (88, 58), "left_shoulder": (120, 100), "right_shoulder": (80, 100), "left_elbow": (125, 140),
        "right_elbow": (75, 140), "left_wrist": (128, 175), "right_wrist": (72, 175), "left_hip": (110, 200),
        "right_hip": (90, 200), "left_knee": (112, 260), "right_knee": (88, 260), "left_ankle": (113, 320),
        "right_ankle": (87, 320)}


def test_coco17_copies_limbs_and_builds_pelvis_thorax_spine_head():
    coco = person("coco17", BODY)
    coco[LAYOUTS["coco17"].index["left_hip"], 2] = 0.5
    h36m = to_h36m(coco, "coco17")
    named = dict(zip(JOINT_NAMES, h36m))
    assert np.allclose(named["left_shoulder"][:2], (120, 100)) and np.allclose(named["right_hip"][:2], (90, 200))
    assert np.allclose(named["pelvis"], (100, 200, 0.75))      # mean of the hips, confidences too
    assert np.allclose(named["thorax"][:2], (100, 100))        # shoulder midpoint
    assert np.allclose(named["spine"][:2], (100, 150))
    assert np.allclose(named["neck"][:2], (100, 60))           # Human3.6M's neck/nose is the nose
    assert named["head"][1] < named["neck"][1] and np.isclose(named["head"][0], 100)


def test_a_provided_neck_mid_hip_and_head_top_are_used_where_seen():
    joints = dict(BODY, neck=(101, 97), mid_hip=(99, 203), head_top=(100, 30))
    for layout, used in (("body25", {"thorax": (101, 97), "pelvis": (99, 203)}),
                         ("halpe26", {"thorax": (101, 97), "pelvis": (99, 203), "head": (100, 30)}),
                         ("body25b", {"head": (100, 30)})):
        keypoints = person(layout, {k: v for k, v in joints.items() if k in LAYOUTS[layout].index})
        named = dict(zip(JOINT_NAMES, to_h36m(keypoints, layout)))
        for joint, position in used.items():
            assert np.allclose(named[joint][:2], position), (layout, joint)
        unseen = keypoints.copy()
        for name in ("neck", "mid_hip", "head_top"):
            if name in LAYOUTS[layout].index:
                unseen[LAYOUTS[layout].index[name]] = 0
        fallback = dict(zip(JOINT_NAMES, to_h36m(unseen, layout)))   # unseen: built from the other joints
        assert np.allclose(fallback["thorax"][:2], (100, 100)) and np.allclose(fallback["pelvis"][:2], (100, 200))


def test_every_layout_names_the_joints_it_needs_and_agrees_on_the_body():
    reference = to_h36m(person("coco17", BODY), "coco17")
    for layout in LAYOUTS.values():
        if layout.name == "h36m":
            continue
        h36m = to_h36m(person(layout.name, {k: v for k, v in BODY.items()}), layout)
        assert np.allclose(h36m, reference), layout.name


def test_a_built_joint_is_missing_when_a_source_is():
    coco = person("coco17", BODY)
    coco[LAYOUTS["coco17"].index["right_hip"]] = 0
    named = dict(zip(JOINT_NAMES, to_h36m(coco, "coco17")))
    assert named["pelvis"][2] == 0 and named["spine"][2] == 0 and named["right_hip"][2] == 0
    assert named["thorax"][2] == 1


def test_without_confidences_every_keypoint_counts_as_seen_and_wrong_shapes_are_refused():
    xy = person("coco17", BODY)[:, :2]
    assert np.all(to_h36m(xy, "coco17")[:, 2] == 1)
    with pytest.raises(InputError, match=r"COCO-17.*\[\.\.\., 17, 2\|3\], got \[18, 3\]"):
        to_h36m(np.zeros((18, 3)), "coco17")
    with pytest.raises(InputError, match="unknown keypoint layout 'body_25'"):
        to_h36m(np.zeros((25, 3)), "body_25")


def test_body25_and_body25b_are_told_apart_by_their_midpoints():
    joints = dict(BODY, neck=(100, 100), mid_hip=(100, 200))
    body25 = person("body25", {k: v for k, v in joints.items() if k in LAYOUTS["body25"].index})
    body25b = person("body25b", BODY)
    assert tell_25_point_layout(np.stack([body25, body25])).name == "body25"
    assert tell_25_point_layout(body25b[None]).name == "body25b"
    assert tell_25_point_layout(np.zeros((1, 25, 3))) is None
