"""The exported file as an artifact: the kasf metadata it carries (what a runtime needs to use it
without the checkpoint), its input and output names, and the example input exports trace with.

ONNX graphs keep the keys in their metadata_props, AOTInductor packages in their own metadata
(strings), TensorRT plans in their sidecar; every engine reads them through this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import onnx
import torch
from google.protobuf.message import DecodeError

from .. import __version__
from ..errors import KasfError
from ..model.checkpoint import Checkpoint
from ..model.config import ModelConfig
from ..model.kasportsformer import IN_CHANNELS, example_keypoints
from ..keypoints.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS
from .fuse import FP32_ISLANDS

INPUT_NAME, OUTPUT_NAME = "keypoints_2d", "poses_3d"
METADATA_VERSION = 1  # of the kasf_* keys below; a reader refuses a newer one


class ExportError(KasfError):
    """An export that cannot be done as asked (opset, output path, model)."""


def check_output_path(path: Path) -> None:
    """Refuse an output that cannot be written before minutes of export are spent on it."""
    if path.is_dir():
        raise ExportError(f"output {path} is a directory; name the file to write")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot create the output directory {parent}: {err.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise ExportError(f"output directory {parent} is not writable")


def check_max_batch(max_batch: int) -> None:
    if max_batch < 1:
        raise ExportError(f"max batch must be at least 1, got {max_batch}")


def example_input(config: ModelConfig, batch: int = 2) -> torch.Tensor:
    """The keypoints exports trace with: random screen coordinates, confidence 1."""
    return example_keypoints(batch, config.n_frames, torch.Generator().manual_seed(0))


def file_metadata(checkpoint: Checkpoint, precision: str) -> dict[str, str]:
    """kasf's keys in an exported file, as strings (JSON where structured)."""
    return {
        "kasf_version": __version__,
        "kasf_metadata_version": str(METADATA_VERSION),
        "kasf_model_config": json.dumps(checkpoint.config.to_dict()),
        "kasf_skeleton": json.dumps({"joints": list(JOINT_NAMES), "parents": list(PARENTS)}),
        "kasf_input_normalization": json.dumps(checkpoint.normalization.to_dict()),
        "kasf_source": json.dumps(checkpoint.source),
        "kasf_precision": precision,
        "kasf_fp32_islands": json.dumps(FP32_ISLANDS if precision in ("fp16", "bf16") else []),
        "kasf_io": json.dumps({"input": INPUT_NAME, "output": OUTPUT_NAME,
                               "shape": ["batch", checkpoint.config.n_frames, NUM_JOINTS, IN_CHANNELS]}),
    }


def decode_metadata(pairs: Mapping[str, str], where: str) -> dict[str, Any]:
    """kasf's keys of a file, JSON values decoded; a newer metadata format is refused."""
    values: dict[str, Any] = {}
    for key, value in pairs.items():
        if key.startswith("kasf_"):
            try:
                values[key] = json.loads(value)
            except json.JSONDecodeError:
                values[key] = value
    written = values.get("kasf_metadata_version", METADATA_VERSION)
    if not isinstance(written, int) or written > METADATA_VERSION:
        raise ExportError(f"{where}'s kasf metadata is format version {written} (kasf "
                          f"{values.get('kasf_version', '?')}); this kasf ({__version__}) reads up to "
                          f"{METADATA_VERSION}: upgrade kasf")
    return values


def read_metadata(model: onnx.ModelProto | str | Path) -> dict[str, Any]:
    """kasf's metadata of an exported ONNX graph. A file that is not a whole ONNX model, or one
    written in a newer kasf metadata format, is refused with a message saying so."""
    where = "this graph"
    if not isinstance(model, onnx.ModelProto):
        where = str(model)
        try:
            model = onnx.load(str(model), load_external_data=False)
        except DecodeError:
            raise ExportError(f"{model} is not an ONNX model, or it is truncated: it does not parse as one "
                              "(export it again with `kasf export`)") from None
        except OSError as err:
            raise ExportError(f"cannot read {model}: {err.strerror}") from None
    return decode_metadata({prop.key: prop.value for prop in model.metadata_props}, where)


def require_metadata(values: Mapping[str, Any], path: str | Path, how: str,
                     keys: tuple[str, ...] = ("kasf_model_config",)) -> None:
    """Refuse a file that lacks kasf's keys (an ONNX graph or package kasf did not write)."""
    if any(key not in values for key in keys):
        raise KasfError(f"{path} has no kasf metadata: export it with {how}")


def recorded_model(values: Mapping[str, Any], path: str | Path, how: str) -> tuple[dict, dict]:
    """(model config, source checkpoint) that a file's kasf metadata records."""
    require_metadata(values, path, how)
    return values["kasf_model_config"], values.get("kasf_source", {})
