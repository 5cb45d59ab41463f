"""Checkpoints: kasf's own single-file format, and the authors' training checkpoints.

kasf format: a torch.save'd dict of plain types (weights, config, skeleton, input
normalisation, provenance), read with torch.load(weights_only=True).
Authors' format: {epoch, learning_rate, optimizer, model, min_mpjpe, wandb_id} with a
'module.'-prefixed state dict; the hyper-parameters come from their YAML. Their keys are mapped
onto ours by AUTHORS_KEY_RULES, one readable table.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .. import __version__
from .config import ModelConfig, resolve_config
from ..errors import CheckpointError, ConfigError
from ..files import atomic_write
from .kasportsformer import KASportsFormer
from .normalization import ScreenNormalization
from ..keypoints.skeleton import JOINT_NAMES, PARENTS

FORMAT = "kasf-checkpoint"
FORMAT_VERSION = 1

# (pattern, replacement) applied in order to each of the authors' keys (after 'module.').
AUTHORS_KEY_RULES = (
    (r"^head\.", "head.out."),
    (r"^norm\.", "head.norm."),
    (r"^rep_logit\.fc\.", "head.fc."),
    (r"^pos_embed$", "joint_pos"),
    (r"^bone_pos_embed$", "bone_pos"),
    (r"^limb_pos_embed$", "limb_pos"),
    (r"^joints_embed\.", "joint_embed."),
    (r"^bone_refusion\.mlp_layers\.(\d+)\.mlp_dir_x\.", r"limb_fus.limbs.\1.channel_mlps.0."),
    (r"^bone_refusion\.mlp_layers\.(\d+)\.mlp_dir_y\.", r"limb_fus.limbs.\1.channel_mlps.1."),
    (r"^bone_refusion\.mlp_layers\.(\d+)\.mlp_len\.", r"limb_fus.limbs.\1.channel_mlps.2."),
    (r"^layers_with_bone\.(\d+)\.", r"blocks.\1."),
    (r"\.att_(spatial|temporal)\.", r".attn_\1."),
    (r"\.graph_(spatial|temporal)\.", r".gcn_\1."),
    (r"\.bone_(spatial|temporal)\.", r".cross_\1."),
    (r"\.fusion_three_channel\.", ".fusion."),
    (r"\.norm1_limb\.", ".norm_context."),
    (r"\.layer_scale_([12])$", r".ls\1.gamma"),
    (r"\.mixer\.qkv_q\.", ".mixer.q."),
    (r"\.mixer\.qkv_kv\.", ".mixer.kv."),
    (r"\.mixer\.batch_norm\.", ".mixer.bn."),
)
# Every sub-block of the authors' code builds a LayerNorm for the limb tokens, but only the
# cross-attention sub-blocks use it: the attention and GCN sub-blocks' copies never touch the output.
AUTHORS_DROPPED = re.compile(r"\.(att|graph)_(spatial|temporal)\.norm1_limb\.(weight|bias)$")


def unused_authors_parameters(config: ModelConfig) -> int:
    """Parameters the authors' model holds that kasf drops: per layer, 4 sub-blocks x LayerNorm(d)."""
    return config.n_layers * 4 * 2 * config.dim_feat

_NUMPY_SAFE_GLOBALS = [np.dtype, np.ndarray, np._core.multiarray.scalar, np._core.multiarray._reconstruct,
                       *{type(np.dtype(t)) for t in ("f4", "f8", "i4", "i8", "bool")}]


@dataclass
class Checkpoint:
    """Everything needed to rebuild a model, whichever format it came from."""

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    normalization: ScreenNormalization = field(default_factory=ScreenNormalization)
    source: dict[str, Any] = field(default_factory=dict)


def authors_key(key: str) -> str | None:
    """Our name for one of the authors' keys; None for the keys kasf deliberately drops."""
    key = key.removeprefix("module.")
    if AUTHORS_DROPPED.search(key):
        return None
    for pattern, replacement in AUTHORS_KEY_RULES:
        key = re.sub(pattern, replacement, key)
    return key


def convert_authors_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    converted = {}
    for key, value in state_dict.items():
        ours = authors_key(key)
        if ours is not None:
            converted[ours] = value
    return converted


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint_payload(path: str | Path) -> Any:
    """The raw torch.load(weights_only=True) content of a checkpoint file, errors explained."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # Training scripts often store numpy scalars (e.g. the best MPJPE); allow just those.
        with torch.serialization.safe_globals(_NUMPY_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for bad files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (truncated, corrupt or another "
                              f"kind of file): {reason[:300]}") from None


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def read_checkpoint(path: str | Path, config: ModelConfig | str | Path | None = None) -> Checkpoint:
    """Read a kasf or authors' checkpoint. config: for the authors' format, their YAML path (or a
    preset name / ModelConfig); for kasf's, optional, and it must then agree with the file."""
    path = Path(path)
    payload = read_checkpoint_payload(path)
    if isinstance(payload, Mapping) and payload.get("format") == FORMAT:
        return _from_kasf(path, payload, config)
    if isinstance(payload, Mapping) and _is_state_dict(payload.get("model")):
        return _from_authors(path, payload["model"], config, payload)
    if _is_state_dict(payload) and any(authors_key(k) != k.removeprefix("module.") for k in payload):
        return _from_authors(path, payload, config, {})
    kind = f"a dict with keys {sorted(map(str, payload))[:8]}" if isinstance(payload, Mapping) else type(payload).__name__
    raise CheckpointError(f"{path} is neither a kasf checkpoint nor an authors' KASportsFormer checkpoint "
                          f"(found {kind})")


def _from_kasf(path: Path, payload: Mapping, config) -> Checkpoint:
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} is kasf checkpoint format version {version}; this kasf ({__version__}) "
                              f"reads up to version {FORMAT_VERSION}: upgrade kasf")
    for key in ("config", "state_dict", "skeleton"):
        if key not in payload:
            raise CheckpointError(f"{path} is a kasf checkpoint without its '{key}' entry (damaged file?)")
    skeleton = payload["skeleton"]
    if list(skeleton.get("joints", [])) != list(JOINT_NAMES) or list(skeleton.get("parents", [])) != list(PARENTS):
        raise CheckpointError(f"{path} was trained on another skeleton than Human3.6M-17")
    try:
        stored = ModelConfig.from_dict(payload["config"])
    except ConfigError as err:
        raise CheckpointError(f"{path} holds a config this kasf cannot read: {err}") from None
    if config is not None:
        wanted = resolve_config(config)
        differing = {k: (v, getattr(wanted, k)) for k, v in stored.to_dict().items() if getattr(wanted, k) != v}
        if differing:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in differing.items())
            raise ConfigError(f"the config given does not match the one stored in {path}: {detail}")
    return Checkpoint(stored, dict(payload["state_dict"]),
                      ScreenNormalization.from_dict(payload.get("normalization") or {}),
                      dict(payload.get("source") or {}))


def _from_authors(path: Path, state_dict: Mapping, config, training: Mapping) -> Checkpoint:
    if config is None:
        raise ConfigError(f"{path} is an authors' checkpoint: it holds no hyper-parameters. Pass their "
                          "training YAML (config=... / --config) or a preset name")
    source = {"format": "authors", "file": path.name, "sha256": file_sha256(path)}
    source.update({k: training[k] for k in ("epoch", "min_mpjpe") if isinstance(training.get(k), (int, float))})
    return Checkpoint(resolve_config(config), convert_authors_state_dict(state_dict), source=source)


def build_from_checkpoint(checkpoint: Checkpoint) -> KASportsFormer:
    """A model in eval mode with the checkpoint's weights; every key must fit exactly."""
    model = KASportsFormer(checkpoint.config)
    expected = model.state_dict()
    given = checkpoint.state_dict
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s), first: {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s), first: {', '.join(unexpected[:3])}")
    for key in expected.keys() & given.keys():
        if tuple(expected[key].shape) != tuple(given[key].shape):
            problems.append(f"'{key}' has shape {list(given[key].shape)}, the config needs {list(expected[key].shape)}")
            break
    if problems:
        raise CheckpointError("the checkpoint does not fit the model config "
                              f"(n_layers={checkpoint.config.n_layers}, dim_feat={checkpoint.config.dim_feat}, "
                              f"dim_rep={checkpoint.config.dim_rep}, n_frames={checkpoint.config.n_frames}): "
                              + "; ".join(problems))
    model.load_state_dict(given, strict=True)
    return model.eval()


def load_model(checkpoint: str | Path, config: ModelConfig | str | Path | None = None,
               device: str | torch.device = "cpu") -> KASportsFormer:
    """Load a kasf or an authors' checkpoint into an eval-mode model.

    config: the authors' YAML path (or a preset name, a kasf YAML, a ModelConfig) for their
    checkpoints; optional for kasf checkpoints, which carry their own.
    """
    return build_from_checkpoint(read_checkpoint(checkpoint, config)).to(device)


def save_checkpoint(path: str | Path, model: KASportsFormer,
                    normalization: ScreenNormalization = ScreenNormalization(),
                    source: Mapping[str, Any] | None = None, training: Mapping[str, Any] | None = None) -> Path:
    """Write a kasf checkpoint atomically (a crash never leaves a half-written file).
    training: optimiser, scheduler and progress state for resuming (plain types and tensors)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kasf_version": __version__,
        "config": model.config.to_dict(),
        "skeleton": {"joints": list(JOINT_NAMES), "parents": list(PARENTS)},
        "normalization": normalization.to_dict(),
        "source": dict(source or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if training is not None:
        payload["training"] = dict(training)
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def convert_authors_checkpoint(src: str | Path, config: ModelConfig | str | Path, dst: str | Path) -> Path:
    """The authors' checkpoint + their YAML -> one kasf checkpoint file (weights checked by loading)."""
    checkpoint = read_checkpoint(src, config)
    return save_checkpoint(dst, build_from_checkpoint(checkpoint), checkpoint.normalization, checkpoint.source)
