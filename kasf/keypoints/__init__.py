"""The pipeline's first stage: 2D keypoints as detectors write them, read, checked, converted to
the Human3.6M-17 joints the model lifts, and given track ids where the detector gave none."""

from .detections import Detections
from .layouts import LAYOUTS, Layout, get_layout, to_h36m
from .readers import FORMATS, detect_format, read_detections

__all__ = ["Detections", "FORMATS", "LAYOUTS", "Layout", "detect_format", "get_layout", "read_detections", "to_h36m"]
