"""The runs kasf makes from one checkpoint on this machine: each backend names its own (its
Engine's `variants`), from files exported once into one directory. `kasf bench --checkpoint` times
them all; the demo runs the primary ones and shows the backends that cannot run here, saying why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import KasfError
from ..model.checkpoint import read_checkpoint

# Who runs a variant: "primary" every stage (the demo, `kasf bench --checkpoint`, `kasf optimize`);
# "alternative" another form of a primary run, for `kasf bench --checkpoint` and `kasf optimize`;
# "candidate" a run that trades precision or build time for speed, for `kasf optimize` alone.
ROLES = ("primary", "alternative", "candidate")


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
    role: str = "primary"       # which runs make it: see ROLES
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


def skipped(reason: str | None) -> str:
    """A variant's status from why it cannot run here (None: it can)."""
    return "ok" if reason is None else f"skipped: {reason}"


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
        """The fused ONNX graph of a precision, fp32, fp16 or int8 (QDQ, calibrated); attention_op:
        the ONNX Attention op form."""
        from ..export.onnx import export_onnx
        from ..export.quantize import export_int8

        name = f"model_{precision}{'_attention_op' if attention_op else ''}.onnx"
        if precision == "int8":
            if attention_op:
                raise KasfError("the INT8 graph has the MatMul-Softmax-MatMul form only (see export_int8)")
            return self.make(name, lambda path: export_int8(self.checkpoint, path))
        return self.make(name, lambda path: export_onnx(self.checkpoint, path, fp16=precision == "fp16",
                                                        use_sdpa=attention_op))

    def aoti(self, precision: str) -> Path:
        """The CPU AOTInductor package of a precision (fp32 or bf16), batch 1 to 1024."""
        from ..export.aoti import export_aoti

        return self.make(f"model_{precision}.pt2", lambda path: export_aoti(self.checkpoint, path, max_batch=1024,
                                                                            precision=precision))



def available_variants(files: ModelFiles, roles: tuple[str, ...] = ROLES) -> tuple[list[Variant], dict[str, str]]:
    """Every available backend's variants of these roles, not yet made, in table order; and
    {backend: why} for the backends that cannot run on this machine."""
    from . import BACKENDS

    runs, unavailable = [], {}
    for backend in BACKENDS.values():
        reason = backend.unavailable()
        if reason:
            unavailable[backend.name] = reason
            continue
        runs += [variant for variant in backend.engine_class().variants(files) if variant.role in roles]
    return runs, unavailable


def machine_variants(files: ModelFiles, roles: tuple[str, ...] = ROLES) -> tuple[list[Variant], dict[str, str]]:
    """available_variants with their files made (failures as statuses)."""
    runs, unavailable = available_variants(files, roles)
    return [variant.realise() for variant in runs], unavailable
