"""The model: the H36M skeleton, the config, KASportsFormer's layers, and checkpoints (kasf's and the authors')."""

from .checkpoint import (Checkpoint, build_from_checkpoint, convert_authors_checkpoint, load_model, read_checkpoint,
                         save_checkpoint)
from .config import PRESETS, ModelConfig, load_config, resolve_config
from .kasportsformer import (KASportsFormer, build_model, check_keypoints, count_parameters, example_keypoints,
                             predict_with_flip)

__all__ = ["Checkpoint", "KASportsFormer", "ModelConfig", "PRESETS", "build_from_checkpoint", "build_model",
           "check_keypoints", "convert_authors_checkpoint", "count_parameters", "example_keypoints", "load_config",
           "load_model", "predict_with_flip", "read_checkpoint", "resolve_config", "save_checkpoint"]
