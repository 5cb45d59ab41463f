"""What a benchmark run times: engine specs as the command line writes them, and the engines one
checkpoint yields on this machine."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


from ..errors import KasfError


@dataclass(frozen=True)
class EngineSpec:
    """A model file and the options its backend is opened with: `path[:key=value,key=value]`,
    e.g. `model.pt:device=cuda,precision=fp16,cuda_graphs=true` or `model.onnx:provider=cuda`;
    the key `backend` names the backend instead of the suffix."""
    path: Path
    backend: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    full_path_label: bool = False   # set when two engines of a run share a file name

    @property
    def label(self) -> str:
        named = {**({"backend": self.backend} if self.backend else {}), **self.options}
        name = str(self.path) if self.full_path_label else self.path.name
        return name + (":" + ",".join(f"{k}={v}" for k, v in named.items()) if named else "")


def distinct_labels(specs: Sequence[EngineSpec]) -> list[EngineSpec]:
    """The specs, labelled by their whole path where file names collide (runs/a/model.onnx and
    runs/b/model.onnx): a run's rows, timings and comparisons are keyed by label. The same engine
    given twice is refused."""
    names = [spec.label for spec in specs]
    specs = [replace(spec, full_path_label=names.count(spec.label) > 1) for spec in specs]
    labels = [spec.label for spec in specs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise KasfError(f"engine {twice[0]} is given more than once; time each engine once per run")
    return specs


def _option_value(text: str) -> Any:
    """An option's value as a backend takes it: true/false a bool, a whole number an int, else text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def parse_engine_spec(text: str) -> EngineSpec:
    """`path[:key=value,key=value]` (see EngineSpec) as an EngineSpec."""
    path, colon, options = text.rpartition(":")
    if not colon or "=" not in options:   # no options (a colon may belong to the path)
        return EngineSpec(Path(text))
    values = {}
    for item in options.split(","):
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise KasfError(f"engine option {item!r} in {text!r} is not key=value "
                            "(write path:key=value,key=value, e.g. model.pt:device=cuda,precision=fp16)")
        values[key.strip()] = _option_value(value.strip())
    backend = values.pop("backend", None)
    return EngineSpec(Path(path), backend, values)


def checkpoint_specs(checkpoint: str | Path, config: str | Path | None, out_dir: str | Path,
                     log: Callable[[str], None] = print) -> tuple[list[EngineSpec], list[dict]]:
    """What this machine can run from one checkpoint: every variant of every backend it can run
    (kasf.engines.variants), their files made in out_dir. Files that could not be made are
    returned as status rows."""
    from ..engines.variants import ModelFiles, machine_variants

    variants, _ = machine_variants(ModelFiles(checkpoint, out_dir, config, log=log), roles=("primary", "alternative"))
    specs = [EngineSpec(variant.path, None, variant.options) for variant in variants if variant.status == "ok"]
    failed = [{"engine": variant.name, "backend": variant.backend, "precision": variant.precision,
               "status": variant.status} for variant in variants if variant.status != "ok"]
    return specs, failed
