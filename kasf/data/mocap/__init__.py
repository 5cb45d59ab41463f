"""The embedded default dataset: real motion capture seen through virtual cameras.

pybullet ships 15 DeepMimic humanoid clips (humanoid3d_*.txt) with the humanoid's URDF. Each
frame holds the root position and joint rotations; forward kinematics on the URDF turns them into
world joints, mapped onto the Human3.6M-17 skeleton (kinematics). Static pinhole cameras around
each motion then give exactly what the authors' source pickles hold (joint_2d, joint3d_image,
2.5d_factor, joints_2.5d_image; cameras), so the same readers and training loop work on data
anyone can install. Splits are by motion, so no movement is seen in two splits (build). The 2D is
the ground truth, or what a detector would make of it (detector: DetectorErrors).
"""

from ...files import default_cache_dir
from .build import DEFAULT_CAMERAS, DEFAULT_SPLIT, MOTIONS, build_mocap_source, find_motion_dir, load_mocap_source
from .cameras import RESOLUTION
from .detector import DETECTOR_ERRORS, GROUND_TRUTH_2D, DetectorErrors
from .kinematics import FRAME_COLUMNS, URDF_SCALE, load_motion

__all__ = [
    "DEFAULT_CAMERAS", "DEFAULT_SPLIT", "DETECTOR_ERRORS", "FRAME_COLUMNS", "GROUND_TRUTH_2D", "MOTIONS", "RESOLUTION",
    "URDF_SCALE", "DetectorErrors", "build_mocap_source", "default_cache_dir", "find_motion_dir", "load_mocap_source",
    "load_motion",
]
