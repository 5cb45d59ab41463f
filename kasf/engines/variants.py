"""The runs kasf makes from one checkpoint on this machine: each backend names its own (its
Engine's `variants`), from files exported once into one directory. `kasf bench --checkpoint` times
them all; the demo runs the primary ones and shows the backends that cannot run here, saying why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import KasfError
from ..model.checkpoint import read_checkpoint


@dataclass
class Variant:
    """One way to run the model: a file, the backend that opens it, and its options."""
    name: str                   # e.g. "onnxruntime fp16 cuda"
    backend: str
    precision: str
    device: str
    path: Path | None           # None when the file could not be made (status says why)
    options: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    primary: bool = True        # False: an alternative form that only `kasf bench` times
    streaming_rank: int | None = None   # lower runs the streaming runtime first; None: not for streaming
    make: Callable[[], Path] | None = field(default=None, repr=False)   # makes the file when path is None
    making: str = "export"      # what make does, for the status when it fails

    def realise(self) -> "Variant":
        """Make the variant's file, once; a failure becomes its status ("build failed: ...")."""
        if self.path is None and self.make is not None and self.status == "ok":
            try:
                self.path = self.make()
            except KasfError as err:
                self.status = f"{self.making} failed: {err}"
        return self

    def row(self, relative_to: Path | None = None) -> dict:
        """The variant as a JSON row, its path relative to a run directory where given."""
        path = self.path
        if path is not None and relative_to is not None:
            path = path.relative_to(relative_to)
        return {"name": self.name, "path": None if path is None else str(path), "backend": self.backend,
                "precision": self.precision, "device": self.device, "options": self.options, "status": self.status,
                "streaming_rank": self.streaming_rank}


class ModelFiles:
    """A checkpoint and the files made from it in one directory, each made at most once."""

    def __init__(self, checkpoint: str | Path, out_dir: str | Path, config: str | Path | None = None,
                 reuse: bool = False, log: Callable[[str], None] = print):
        """reuse: take a file already in out_dir as made (by an earlier stage of the same run)."""
        self.checkpoint_path, self.out_dir, self.config = Path(checkpoint), Path(out_dir), config
        self.reuse, self.log = reuse, log
        self._made: dict[str, Path] = {}
        self._checkpoint = None

    @property
    def checkpoint(self):
        if self._checkpoint is None:
            self._checkpoint = read_checkpoint(self.checkpoint_path, self.config)
        return self._checkpoint

    def make(self, name: str, write: Callable[[Path], None]) -> Path:
        """out_dir/name, written by write(path) the first time it is asked for."""
        path = self.out_dir / name
        if name not in self._made and not (self.reuse and path.is_file()):
            self.log(f"making {path}")
            write(path)
        self._made[name] = path
        return path

    def onnx(self, precision: str, attention_op: bool = False) -> Path:
        """The fused ONNX graph of a precision (attention_op: the ONNX Attention op form)."""
        from ..export.onnx import export_onnx

        name = f"model_{precision}{'_attention_op' if attention_op else ''}.onnx"
        return self.make(name, lambda path: export_onnx(self.checkpoint, path, fp16=precision == "fp16",
                                                        use_sdpa=attention_op))



def machine_variants(files: ModelFiles, primary_only: bool = False) -> tuple[list[Variant], dict[str, str]]:
    """Every available backend's variants, their files made (failures as statuses), in table order;
    and {backend: why} for the backends that cannot run on this machine."""
    from . import BACKENDS

    runs, unavailable = [], {}
    for backend in BACKENDS.values():
        reason = backend.unavailable()
        if reason:
            unavailable[backend.name] = reason
            continue
        runs += [variant.realise() for variant in backend.engine_class().variants(files)
                 if variant.primary or not primary_only]
    return runs, unavailable
