"""The model configuration: one dataclass, named presets as data, YAML in and out, and the one
function that reads the authors' training YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import ConfigError

LIMB_INPUTS = ("joints", "bones")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of KASportsFormer. Field names follow the authors' YAML where the
    concept is the same, so their values read across unchanged."""

    n_layers: int = 26
    dim_feat: int = 128
    num_heads: int = 8
    mlp_ratio: float = 4.0
    dim_rep: int = 512
    neighbour_num: int = 4
    n_frames: int = 27
    qkv_bias: bool = False
    qk_scale: float | None = None
    use_layer_scale: bool = True
    layer_scale_init_value: float = 1e-5
    use_adaptive_fusion: bool = True
    limb_hidden_dim: int = 16
    # "joints": LimbFus gathers the raw (x, y, confidence) joints, as the released code and its
    # checkpoints do. "bones": it gathers BoneExt's (dir_x, dir_y, length) tokens, as the paper reads.
    limb_input: str = "joints"
    drop: float = 0.0
    attn_drop: float = 0.0
    drop_path: float = 0.0

    def __post_init__(self):
        for name in ("n_layers", "dim_feat", "num_heads", "dim_rep", "neighbour_num", "n_frames", "limb_hidden_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"config field '{name}' must be a positive integer, got {value!r}")
        if self.dim_feat % self.num_heads:
            raise ConfigError(f"dim_feat ({self.dim_feat}) must be divisible by num_heads ({self.num_heads})")
        if self.neighbour_num > self.n_frames:
            raise ConfigError(f"neighbour_num ({self.neighbour_num}) cannot exceed n_frames ({self.n_frames})")
        if self.limb_input not in LIMB_INPUTS:
            raise ConfigError(f"limb_input must be one of {LIMB_INPUTS}, got {self.limb_input!r}")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"mlp_ratio must be positive, got {self.mlp_ratio!r}")
        for name in ("drop", "attn_drop", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"config field '{name}' must be in [0, 1), got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.dim_feat // self.num_heads

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown model config key(s): {', '.join(unknown)}")
        try:
            return cls(**values)
        except TypeError as err:
            raise ConfigError(f"bad model config: {err}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_authors(cls, values: Mapping[str, Any]) -> "ModelConfig":
        """Map the authors' training YAML (model keys among training keys) onto a config."""
        return cls(**authors_to_fields(values))


PRESETS: dict[str, ModelConfig] = {
    # The authors' YAML values: 29.3M parameters, 13.8 GMACs per 27-frame clip.
    "paper": ModelConfig(),
    # Real time on a laptop CPU; head_dim 16 keeps TensorRT's fused-attention rules.
    "small": ModelConfig(n_layers=4, dim_feat=64, num_heads=4, dim_rep=256),
    # For tests: every code path of the paper model at a fraction of the cost.
    "tiny": ModelConfig(n_layers=2, dim_feat=32, num_heads=2, dim_rep=64),
}

# The authors' model keys with the value kasf requires; other values select variants of
# MotionAGFormer-style code that KASportsFormer never uses.
_AUTHORS_FIXED = {
    "num_joints": 17, "dim_in": 3, "dim_out": 3, "act_layer": "gelu", "hierarchical": False,
    "use_tcn": False, "graph_only": False, "use_temporal_similarity": True,
}
_AUTHORS_REQUIRED = ("n_layers", "dim_feat", "dim_rep", "num_heads", "mlp_ratio", "neighbour_num", "n_frames")
_AUTHORS_OPTIONAL = {
    "qkv_bias": "qkv_bias", "qkv_scale": "qk_scale", "use_layer_scale": "use_layer_scale",
    "layer_scale_init_value": "layer_scale_init_value", "use_adaptive_fusion": "use_adaptive_fusion",
    "drop": "drop", "attn_drop": "attn_drop", "drop_path": "drop_path",
}


def authors_to_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in _AUTHORS_REQUIRED if key not in values]
    if missing:
        raise ConfigError(f"the authors' config lacks model key(s): {', '.join(missing)}")
    for key, required in _AUTHORS_FIXED.items():
        if key in values and _normalise(values[key]) != required:
            raise ConfigError(f"the authors' config sets {key}: {values[key]!r}; KASportsFormer needs {required!r}")
    fields = {key: values[key] for key in _AUTHORS_REQUIRED}
    fields.update({ours: values[theirs] for theirs, ours in _AUTHORS_OPTIONAL.items() if theirs in values})
    return fields


def _normalise(value):
    return value.lower() if isinstance(value, str) else value


def read_yaml(path: str | Path) -> Mapping[str, Any]:
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config {path} must be a YAML mapping, got {type(values).__name__}")
    return values


def load_config(path: str | Path) -> ModelConfig:
    """Read a kasf model YAML or the authors' training YAML (told apart by their keys)."""
    values = read_yaml(path)
    ours = {f.name for f in dataclasses.fields(ModelConfig)}
    try:
        if set(values) <= ours:
            return ModelConfig.from_dict(values)
        return ModelConfig.from_authors(values)
    except ConfigError as err:
        raise ConfigError(f"config {path}: {err}") from None


def resolve_config(spec: "ModelConfig | str | Path | Mapping[str, Any]") -> ModelConfig:
    """A config from a ModelConfig, a preset name, a YAML path or a mapping of fields."""
    if isinstance(spec, ModelConfig):
        return spec
    if isinstance(spec, Mapping):
        return ModelConfig.from_dict(spec)
    if isinstance(spec, str) and spec in PRESETS:
        return PRESETS[spec]
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"{spec!s} is neither a preset ({', '.join(PRESETS)}) nor a config file")
    return load_config(path)
