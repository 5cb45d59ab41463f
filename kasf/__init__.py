"""kasf: deploy KASportsFormer (2D keypoints -> 3D poses) from checkpoint to real-time engine."""

__version__ = "0.1.0"

from .errors import CheckpointError, ConfigError, InputError, KasfError
from .model import (PRESETS, Checkpoint, KASportsFormer, ModelConfig, build_model, convert_authors_checkpoint,
                    load_config, load_model, predict_with_flip, read_checkpoint, save_checkpoint)

__all__ = [
    "__version__", "Checkpoint", "CheckpointError", "ConfigError", "InputError", "KASportsFormer", "KasfError",
    "ModelConfig", "PRESETS", "build_model", "convert_authors_checkpoint", "load_config", "load_model",
    "predict_with_flip", "read_checkpoint", "save_checkpoint",
]
