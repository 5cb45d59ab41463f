"""Running the demo: its settings, then the stages in order, each reused when the JSON marker it
left in --out/stages/ still matches the settings and its outputs are all there (see kasf.demo)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from ..errors import KasfError
from ..files import write_json
from ..table import render_table
from .stages import STAGES

MARKERS = "stages"


@dataclass(frozen=True)
class DemoSettings:
    preset: str = "small"
    minutes: float = 15.0                # training budget
    warmup_epochs: int = 2               # the README's mocap recipe (the paper's 10 outlast a short budget;
                                         # --quick: 0, its first epoch at lr/100 would be wasted)
    detector_errors: str = "typical"     # the recipe's training 2D: a detector's mistakes (DETECTOR_ERRORS)
    device: str = "cpu"                  # training, evaluation and the PyTorch engine
    steps_per_epoch: int | None = None   # cap (tests)
    parity_clips: int = 64
    bench_batches: tuple[int, ...] = (1, 8)
    bench_duration_s: float = 3.0
    bench_warmup_s: float = 0.2
    bench_iterations: int = 10
    peak_size: int | None = None         # matmul size of the benchmark's peak measurement
    people: tuple[int, ...] = (1, 4, 8)
    fps: float = 30.0
    replay_seconds: float = 5.0
    strided_people: tuple[int, ...] = (8, 32)      # replayed again at lag 0, stride 27, with the worker
    latency_settings: tuple[str, ...] = ("0:1", "13:1", "0:27", "7:14", "13:7", "13:7:blend")
    latency_sequences: int = 32                    # test sequences streamed per setting
    test_every: int = 1                  # evaluate every n-th test clip (tests)
    skeleton_clips: int = 4
    gif_frames: int = 108
    progress: bool = True

    def __post_init__(self) -> None:
        """Settings the demo cannot run with fail here, before any stage starts."""
        if self.minutes <= 0:
            raise KasfError(f"--minutes must be positive, got {self.minutes:g}")
        from ..data.mocap import DETECTOR_ERRORS

        if self.detector_errors not in DETECTOR_ERRORS:
            raise KasfError(f"unknown detector errors {self.detector_errors!r} (known: {', '.join(DETECTOR_ERRORS)})")
        if min(*self.people, *self.strided_people) < 1 \
                or min(self.parity_clips, self.gif_frames, self.test_every, self.latency_sequences) < 1:
            raise KasfError("people, parity clips, GIF frames, streamed sequences and --test-every must be at "
                            "least 1")
        from ..stream.accuracy import parse_setting

        for setting in self.latency_settings:
            parse_setting(setting)
        if self.device != "cpu" and not torch.cuda.is_available():
            raise KasfError(f"--device {self.device} asked for, but this torch ({torch.__version__}) sees no CUDA "
                            "device: use --device cpu")

    @classmethod
    def quick(cls, **changes) -> "DemoSettings":
        """About 2 minutes of training; the whole demo well under 10 minutes on a 2-core CPU."""
        # Epochs of 16 steps: fit stops only between epochs, so short ones spend the budget more fully.
        return cls(**{"minutes": 2.0, "warmup_epochs": 0, "steps_per_epoch": 16, "bench_duration_s": 1.0,
                      "replay_seconds": 2.0, "latency_sequences": 4, **changes})


# Which settings each stage's outputs depend on: a change re-runs the stage (and the ones after it).
DEPENDS = {
    "train": ("preset", "minutes", "warmup_epochs", "detector_errors", "device", "steps_per_epoch"),
    "evaluate": ("device", "test_every"),
    "export": (),
    "engines": ("device",),
    "parity": ("parity_clips",),
    "bench": ("bench_batches", "bench_duration_s", "bench_warmup_s", "bench_iterations", "peak_size"),
    "realtime": ("people", "fps", "replay_seconds", "strided_people"),
    "latency": ("latency_settings", "latency_sequences"),
    "lift": (),
    "report": ("skeleton_clips", "gif_frames"),
}
# Stages whose outputs changed form in a release: a marker from before records no (or another)
# format, so the stage is redone instead of handing the report files it cannot read.
FORMATS = {"engines": 2, "parity": 2}


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


@dataclass
class Demo:
    out: Path
    settings: DemoSettings
    log: Callable[[str], None] = print
    results: dict[str, dict] = field(default_factory=dict)   # stage -> its marker's "summary"

    def path(self, name: str | Path) -> Path:
        return self.out / name

    def read(self, name: str | Path) -> Any:
        """The JSON file `name` an earlier stage wrote in --out."""
        return read_json(self.path(name))

    def clips(self):
        from ..data.splits import load_splits

        return load_splits("mocap").test


def _marker(demo: Demo, stage: str) -> Path:
    return demo.path(MARKERS) / f"{stage}.json"


def _dependencies(settings: DemoSettings, stage: str) -> dict:
    values = asdict(settings)
    depends = {key: list(values[key]) if isinstance(values[key], tuple) else values[key] for key in DEPENDS[stage]}
    return {**depends, "format": FORMATS[stage]} if stage in FORMATS else depends


def reusable(demo: Demo, stage: str) -> dict | None:
    """The stage's marker when its outputs are all there and were made with the current settings."""
    path = _marker(demo, stage)
    if not path.is_file():
        return None
    try:
        marker = read_json(path)
    except (OSError, ValueError):
        return None
    if marker.get("depends") != _dependencies(demo.settings, stage):
        demo.log(f"{stage}: settings changed since {path}; redoing it")
        return None
    if not all(demo.path(output).exists() for output in marker["summary"].get("outputs", [])):
        return None
    return marker


def run_demo(out: str | Path, settings: DemoSettings, force: bool = False,
             log: Callable[[str], None] | None = None) -> list[dict]:
    """Run (or reuse) every stage in order; one row per stage: stage, status, seconds, result."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise KasfError(f"--out {out} is a file; name a directory for the demo's outputs")
    out.mkdir(parents=True, exist_ok=True)
    demo = Demo(out, settings, log or (lambda message: tqdm.write(message)))
    rows, redo = [], force
    bar = tqdm(STAGES.items(), desc="demo", unit="stage", disable=not settings.progress, dynamic_ncols=True)
    for stage, run in bar:
        bar.set_postfix_str(stage)
        marker = None if redo else reusable(demo, stage)
        if marker is not None:
            demo.results[stage] = marker["summary"]
            rows.append({"stage": stage, "status": "reused", "seconds": marker["seconds"],
                         "result": marker["summary"]["result"], "finished": marker["finished"]})
            demo.log(f"{stage}: reused ({marker['finished']})")
            continue
        redo = True      # everything after a stage that ran is redone: it reads this one's outputs
        _marker(demo, stage).unlink(missing_ok=True)
        demo.log(f"{stage}: {run.__doc__.splitlines()[0]}")
        started = time.perf_counter()
        summary = run(demo)
        seconds = time.perf_counter() - started
        finished = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        demo.results[stage] = summary
        write_json(_marker(demo, stage), {"stage": stage, "finished": finished, "seconds": seconds,
                                          "depends": _dependencies(settings, stage), "summary": summary})
        rows.append({"stage": stage, "status": "ran", "seconds": seconds, "result": summary["result"],
                     "finished": finished})
    bar.close()
    return rows


def format_summary(rows: list[dict], title: str = "kasf demo") -> str:
    return render_table(["stage", "status", "seconds", "result"],
                        [(r["stage"], r["status"], r["seconds"], r["result"]) for r in rows], digits=1, title=title)
