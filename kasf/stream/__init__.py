"""Streaming: the per-frame runtime for tracked people, capture files, and the real-time replay."""

from .runtime import MODES, StreamRuntime
from .windows import PoseResult

__all__ = ["MODES", "PoseResult", "StreamRuntime"]
