"""What a backend declares, in one row: the files it opens, what it needs to run here, the options it
takes (validated, with the help the CLI shows), its precisions, and the module with its Engine.

Everything else a stage asks of a backend (the model config its file records, the runs kasf makes
of it from a checkpoint, the command lines that reproduce it outside kasf) the Engine subclass
answers; bench, demo, parity and the CLI read the rows and ask, and keep no per-backend branches.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import KasfError


@dataclass(frozen=True)
class Option:
    """One engine option: its keyword, the types it takes (the first is the command line's), the
    values it may take, its help, and whether the command line offers it (Python-only otherwise)."""
    name: str
    types: tuple[type, ...] = (str,)
    help: str = ""
    choices: tuple[str, ...] = ()
    command_line: bool = True

    def check(self, backend: str, value: Any) -> Any:
        """The value, checked; a KasfError names the option, the backend and what it takes."""
        fits = isinstance(value, self.types) and (bool in self.types or not isinstance(value, bool))
        if not fits:
            kinds = " or ".join(kind.__name__ for kind in self.types)
            raise KasfError(f"option {self.name} of the {backend} backend takes {kinds}, got {value!r}")
        if self.choices and value not in self.choices:
            raise KasfError(f"option {self.name} of the {backend} backend is one of {', '.join(self.choices)}, "
                            f"got {value!r}")
        return value


@dataclass(frozen=True)
class Backend:
    name: str
    suffixes: tuple[str, ...]
    module: str                     # the module with the Engine subclass (relative: inside kasf.engines)
    engine: str                     # the Engine subclass in it
    precisions: tuple[str, ...]
    options: tuple[Option, ...] = ()
    requires: tuple[str, ...] = ()  # Python modules it cannot run without
    needs_cuda: bool = False        # runs only on a CUDA device
    opens_checkpoints: bool = False  # its files are PyTorch checkpoints: each its own parity reference

    def unavailable(self) -> str | None:
        """Why this backend cannot run on this machine, or None when it can."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return f"`import {module}` failed (not installed)"
        if self.needs_cuda and not torch.cuda.is_available():
            return "no CUDA device"
        return None

    def engine_class(self):
        module = importlib.import_module(self.module, package=__package__) if self.module.startswith(".") \
            else importlib.import_module(self.module)
        return getattr(module, self.engine)

    def option(self, name: str) -> Option | None:
        return next((option for option in self.options if option.name == name), None)

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The options, each checked; one the backend does not take is refused with the list it does."""
        unknown = sorted(name for name in options if self.option(name) is None)
        if unknown:
            takes = ", ".join(option.name for option in self.options) or "no options"
            raise KasfError(f"the {self.name} backend has no option {', '.join(map(repr, unknown))}; it takes {takes}")
        return {name: self.option(name).check(self.name, value) for name, value in options.items()}

    def recorded_model(self, path: str | Path, config=None) -> tuple[dict, dict]:
        """(model config, source checkpoint) the file records, read without loading the engine."""
        path = Path(path)
        if not path.is_file():
            raise KasfError(f"model file {path} does not exist")
        return self.engine_class().recorded_model(path, config)
