"""The benchmark stage: load several engines, time them side by side in one run (interleaved, with
trtexec's conventions, see .timing), and gather one report.

Each row: latency in ms, throughput in clips and frames per second, achieved GFLOP/s from FLOPs
counted from the ONNX graph (kasf.verify.flops) against the matrix-multiply peak measured on this
machine at run time in the precision the engine's products run in (.machine.PEAK_PRECISION), and a
parity column (kasf.verify) against a reference checkpoint. An engine that fails to load or to run is
a status row, never the end of the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import KasfError
from .machine import describe_peak, environment, matmul_peak_gflops, peak_precision
from .specs import EngineSpec, distinct_labels
from .timing import (MIN_DURATION_S, MIN_ITERATIONS, SETTLE_S, WARMUP_S, benchmark_keypoints, engine_runner,
                     latency_stats, run_interleaved, stability_warning)

PARITY_CLIPS = 32


@dataclass
class BenchSettings:
    """How a run times and checks its engines; values no run can use are refused here."""
    batches: Sequence[int] = (1,)
    warmup_s: float = WARMUP_S
    min_iterations: int = MIN_ITERATIONS
    min_duration_s: float = MIN_DURATION_S
    settle_s: float = SETTLE_S           # idle between two engines' turns (see run_interleaved)
    threads: int | None = None          # torch.set_num_threads and ONNX Runtime's intra-op threads
    config: str | Path | None = None     # the authors' YAML for their checkpoints
    reference: str | Path | None = None  # checkpoint the parity column compares with
    parity_clips: int = PARITY_CLIPS     # 0: no parity column
    budgets: dict[str, float] | None = None  # task-metric budgets per precision (kasf.verify's defaults)
    peak_size: int | None = None         # matrix size of the peak measurement (default per device)

    def __post_init__(self) -> None:
        if (any(batch < 1 for batch in self.batches) or self.min_iterations < 1
                or min(self.min_duration_s, self.warmup_s, self.settle_s) < 0):
            raise KasfError("batch sizes and --iterations must be at least 1; --duration, --warmup and --settle not "
                            "negative")
        if self.threads is not None and self.threads < 1:
            raise KasfError(f"--threads must be at least 1, got {self.threads}")


@dataclass
class _Loaded:
    spec: EngineSpec
    engine: Any
    config: dict
    flops_per_clip: float | None
    parity: dict | None


def _engine_options(spec: EngineSpec, backend, settings: BenchSettings) -> dict:
    """The spec's options, with the run's threads and authors' YAML for backends that take them."""
    options = dict(spec.options)
    for name, value in (("threads", settings.threads), ("config", settings.config)):
        if value and backend.option(name) is not None:
            options.setdefault(name, value)
    return options


class _Parity:
    """Each engine's parity verdict (kasf.verify: task metric and noise floor) against a reference
    checkpoint, on a few motion-capture test clips. A run may time several models: each engine is
    compared with the reference of its model config (the first reference where none has it, which
    the notes then name as another model); each reference's floor is measured once."""

    def __init__(self, references: Sequence[Path], settings: BenchSettings, notes: list[str]):
        from ..model.checkpoint import read_checkpoint

        self.checkpoints = []
        for reference in references:
            try:
                self.checkpoints.append(read_checkpoint(reference, settings.config))
            except KasfError as err:
                notes.append(f"no parity against {reference}: it cannot be read ({err})")
        self.count, self.budgets, self.notes, self._checks = settings.parity_clips, settings.budgets, notes, {}
        self.reports: dict[str, dict] = {}

    def _check(self, config: dict):
        from ..model.checkpoint import build_from_checkpoint
        from ..verify import ParityCheck, parity_clips

        index = next((i for i, c in enumerate(self.checkpoints) if c.config.to_dict() == config), 0)
        checkpoint = self.checkpoints[index]
        if index not in self._checks:
            clips = parity_clips(self.count, checkpoint.config.n_frames)
            self._checks[index] = ParityCheck(build_from_checkpoint(checkpoint), clips, budgets=self.budgets)
        return checkpoint, self._checks[index]

    def __call__(self, label: str, engine, config: dict, source: dict) -> dict | None:
        """The engine's verdict in brief (the full report goes to self.reports)."""
        from ..verify import check_reference
        from ..verify.report import verdict

        if not self.checkpoints:
            return None
        try:
            checkpoint, check = self._check(config)
            self.notes += [f"{label}: {n}" for n in check_reference(checkpoint.config.to_dict(), checkpoint.source,
                                                                     config, source)]
            report = self.reports[label] = check.check(engine)
        except Exception as err:  # parity is one column: its failure must not hide the timing
            self.notes.append(f"{label}: no parity ({type(err).__name__}: {err})")
            return None
        if not report["passed"]:
            self.notes.append(f"{label}: parity {report['explanation']}")
        return {"verdict": verdict(report), "passed": report["passed"], "decided_by": report["decided_by"],
                "deviation_mean_mm": report["deviation"]["mean_mm"],
                "floor_mean_mm": report["floor"]["envelope"]["mean_mm"],
                "mpjpe_difference_mm": report["task_metric"]["mpjpe"]["difference_mm"],
                "mpjpe_interval_mm": report["task_metric"]["mpjpe"]["interval_mm"], "budget_mm": report["budget_mm"]}


def _references_for(specs: Sequence[EngineSpec], settings: BenchSettings) -> list[Path]:
    """--reference, or else every PyTorch checkpoint among the engines."""
    if settings.reference:
        return [Path(settings.reference)]
    from ..engines import backend_for

    found = []
    for spec in specs:
        try:
            if backend_for(spec.path, spec.backend).opens_checkpoints and spec.path not in found:
                found.append(spec.path)
        except KasfError:
            continue
    return found


def _load(spec: EngineSpec, settings: BenchSettings, flops, parity: _Parity | None, notes: list[str]) -> _Loaded:
    from ..engines import backend_for, load_engine

    backend = backend_for(spec.path, spec.backend)
    engine = load_engine(spec.path, backend.name, **_engine_options(spec, backend, settings))
    config, source = backend.recorded_model(spec.path, settings.config)
    try:
        count = flops.for_file(config, spec.path)
    except KasfError as err:
        notes.append(f"{spec.label}: FLOPs not counted ({err})")
        count = None
    return _Loaded(spec, engine, config, count, parity(spec.label, engine, config, source) if parity else None)


def _size_mb(path: Path) -> float | None:
    return path.stat().st_size / 1e6 if path.is_file() else None


def _row(loaded: _Loaded, batch: int, measures: dict[str, list[float]], peaks: dict[str, dict]) -> dict:
    engine = loaded.engine
    device = engine.device
    latency = latency_stats(measures["latency"])
    clips_per_s = batch / (latency["mean_ms"] / 1e3)
    row = {"engine": loaded.spec.label, "backend": engine.backend, "precision": engine.precision,
           "device": str(device), "status": "ok", "size_mb": _size_mb(loaded.spec.path),
           "parity": loaded.parity, "model_config": loaded.config, "batch": batch, "latency": latency,
           "clips_per_s": clips_per_s, "frames_per_s": clips_per_s * engine.n_frames,
           "flops_per_clip": loaded.flops_per_clip, "peak_precision": peak_precision(device.type, engine.precision)}
    for measure in ("compute", "h2d", "d2h"):
        if measure in measures:
            row[measure] = latency_stats(measures[measure])
    if loaded.flops_per_clip is not None:
        row["gflops_per_s"] = loaded.flops_per_clip * clips_per_s / 1e9
        peak = peaks[peak_key(device.type, row["peak_precision"])]["gflops"]
        if peak is not None:
            row["peak_percent"] = 100 * row["gflops_per_s"] / peak
    return row


def _status_row(spec_label: str, status: str, batch: int | None = None, **known) -> dict:
    return {"engine": spec_label, "backend": known.get("backend"), "precision": known.get("precision"),
            "status": status, "size_mb": known.get("size_mb"), "batch": batch}


def speedups(rows: Sequence[dict]) -> list[dict]:
    """Per model config and batch, PyTorch FP32 eager's median over ONNX Runtime FP32's (CPU; the
    fastest graph of those timed, named), where both ran. A run may hold several models (presets):
    an engine is only ever compared with one of the same model."""
    def median(row) -> float:
        return row["latency"]["median_ms"]

    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        if r["status"] == "ok" and r["precision"] == "fp32" and r["device"] == "cpu":
            groups.setdefault((r["batch"], json.dumps(r["model_config"], sort_keys=True)), []).append(r)
    found = []
    for (batch, _), same in sorted(groups.items()):
        ort = min((r for r in same if r["backend"] == "onnxruntime"), key=median, default=None)
        eager = next((r for r in same if r["backend"] == "torch"), None)
        if ort and eager:
            found.append({"batch": batch, "onnxruntime": ort["engine"], "torch": eager["engine"],
                          "onnxruntime_median_ms": median(ort), "torch_median_ms": median(eager),
                          "speedup": median(eager) / median(ort)})
    return found


def run_benchmark(specs: Sequence[EngineSpec], settings: BenchSettings, failed: Sequence[dict] = (),
                  log: Callable[[str], None] = print) -> dict:
    """Load every engine (a failure is a status row), then time them interleaved at each batch size."""
    specs = distinct_labels(specs)
    threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        return _run(specs, settings, failed, log)
    finally:
        torch.set_num_threads(threads)


def _run(specs: Sequence[EngineSpec], settings: BenchSettings, failed: Sequence[dict],
         log: Callable[[str], None]) -> dict:
    from ..verify.flops import COUNTED

    notes: list[str] = []
    references = _references_for(specs, settings) if settings.parity_clips else []
    parity = _Parity(references, settings, notes) if references else None
    loaded, rows = _load_all(specs, settings, parity, notes, log)
    rows = list(failed) + rows
    peaks = _peaks(loaded, settings, log)
    for batch in settings.batches:
        log(f"timing batch {batch}")
        rows += _time_batch(loaded, batch, settings, peaks, notes)
    for item in loaded:
        item.engine.close()
    settings_record = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()}
    settings_record["batches"] = list(settings.batches)
    return {"environment": environment(), "settings": settings_record,
            "references": [str(path) for path in references], "peaks": peaks, "rows": rows,
            "parity": parity.reports if parity else {},
            "speedups": speedups(rows), "notes": notes,
            "flops_counted": COUNTED}


def _load_all(specs: Sequence[EngineSpec], settings: BenchSettings, parity: _Parity | None, notes: list[str],
              log: Callable[[str], None]) -> tuple[list[_Loaded], list[dict]]:
    """(the engines that loaded, a status row for each that did not)."""
    from ..verify.flops import FlopsByConfig

    flops, loaded, failed = FlopsByConfig(), [], []
    for spec in specs:
        log(f"loading {spec.label}")
        try:
            loaded.append(_load(spec, settings, flops, parity, notes))
        except Exception as err:  # a failing engine is a row, never the end of the run
            failed.append(_status_row(spec.label, f"load failed: {type(err).__name__}: {err}",
                                      size_mb=_size_mb(spec.path), backend=spec.backend))
    return loaded, failed


def peak_key(device_type: str, precision: str) -> str:
    """Where a run's record keeps the matmul peak of a device type in a precision: "cpu/bf16"."""
    return f"{device_type}/{precision}"


def _peaks(loaded: Sequence[_Loaded], settings: BenchSettings, log: Callable[[str], None]) -> dict[str, dict]:
    """The matmul peak of each (device type, peak precision) the engines' products run in, each measured once."""
    needed = sorted({(item.engine.device.type, peak_precision(item.engine.device.type, item.engine.precision))
                     for item in loaded})
    peaks = {}
    for device, precision in needed:
        peak = matmul_peak_gflops(device, settings.peak_size, precision=precision)
        log(describe_peak(peak))
        peaks[peak_key(device, precision)] = peak
    return peaks


def _time_batch(loaded: Sequence[_Loaded], batch: int, settings: BenchSettings, peaks: dict[str, dict],
                notes: list[str]) -> list[dict]:
    """One row per engine at this batch size: its timings, or the status of its failure."""
    runners, broken = {}, {}
    for item in loaded:
        try:
            runners[item.spec.label] = engine_runner(item.engine, benchmark_keypoints(batch, item.engine.n_frames))
        except Exception as err:
            broken[item.spec.label] = f"{type(err).__name__}: {err}"
    samples, failures = run_interleaved(runners, settings.warmup_s, settings.min_iterations,
                                        settings.min_duration_s, settings.settle_s)
    failures.update(broken)
    rows = []
    for item in loaded:
        label = item.spec.label
        if label in failures:
            rows.append(_status_row(label, f"failed: {failures[label]}", batch, backend=item.engine.backend,
                                    precision=item.engine.precision, size_mb=_size_mb(item.spec.path)))
            continue
        row = _row(item, batch, samples[label], peaks)
        rows.append(row)
        measure = "compute" if "compute" in row else "latency"
        warning = stability_warning(f"{label} batch {batch} ({measure})", row[measure])
        if warning:
            notes.append(warning)
    return rows
