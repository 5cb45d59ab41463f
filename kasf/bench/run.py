"""Time several engines side by side in one run, with trtexec's conventions, and print one table.

Engines are timed INTERLEAVED: each round runs one timed iteration of every engine in turn, so
drift of the machine (clock boost, a neighbour's load, thermal state) falls on all of them alike.
Warm-up by time (200 ms), then at least 10 rounds and at least 3 s. Latency min / mean / median /
p90 / p95 / p99 / max in ms; throughput in clips and frames per second; a warning when the
coefficient of variation is over 2.5%. On a GPU the end-to-end latency (host numpy in, host numpy
out) is reported with the device compute time apart (CUDA events around the compute on
device-resident data) and the host-to-device and device-to-host copies timed on their own.
Achieved GFLOP/s uses FLOPs counted from the ONNX graph (kasf.flops), against the matrix-multiply
peak measured on this machine at run time.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..engines.base import cuda_event_seconds
from ..errors import KasfError
from ..table import render_table

WARMUP_S, MIN_ITERATIONS, MIN_DURATION_S = 0.2, 10, 3.0     # trtexec's defaults
SETTLE_S = 0.1                                               # idle between two engines' turns
CV_WARNING = 0.025                                           # trtexec warns above 2.5%
PERCENTILES = (90, 95, 99)
PARITY_CLIPS = 32
VERSIONED_PACKAGES = ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "tensorrt", "kasf")


# --- what to run -------------------------------------------------------------------------------

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
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def parse_engine_spec(text: str) -> EngineSpec:
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
    """What this machine can run from one checkpoint: ONNX FP32 and FP16 graphs exported into
    out_dir (FP32 also with the Attention op, ONNX Runtime's fastest CPU form) and the PyTorch eager
    model; with a CUDA device also PyTorch FP32, FP16 and FP16 with CUDA graphs on it, and ONNX
    Runtime's CUDA provider where installed. Exports that fail are returned as status rows."""
    import onnxruntime

    from ..model.checkpoint import read_checkpoint
    from ..export.onnx import export_onnx

    out_dir = Path(out_dir)
    specs, failed = [EngineSpec(Path(checkpoint))], []
    source = read_checkpoint(checkpoint, config)
    for name, precision, attention_op in (("model_fp32.onnx", "fp32", False),
                                          ("model_fp32_attention_op.onnx", "fp32", True),
                                          ("model_fp16.onnx", "fp16", False)):
        path = out_dir / name
        try:
            log(f"exporting {path}")
            export_onnx(source, path, fp16=precision == "fp16", use_sdpa=attention_op)
            specs.append(EngineSpec(path))
            if (not attention_op and torch.cuda.is_available()
                    and "CUDAExecutionProvider" in onnxruntime.get_available_providers()):
                specs.append(EngineSpec(path, None, {"provider": "cuda"}))
        except KasfError as err:
            failed.append({"engine": path.name, "backend": "onnxruntime", "precision": precision,
                           "status": f"export failed: {err}"})
    if torch.cuda.is_available():
        specs += [EngineSpec(Path(checkpoint), "torch", {"device": "cuda", "precision": "fp32"}),
                  EngineSpec(Path(checkpoint), "torch", {"device": "cuda", "precision": "fp16"}),
                  EngineSpec(Path(checkpoint), "torch", {"device": "cuda", "precision": "fp16", "cuda_graphs": True})]
    return specs, failed


# --- statistics --------------------------------------------------------------------------------

def latency_stats(seconds: Sequence[float]) -> dict:
    """trtexec's latency summary of timings in seconds, in ms, with the coefficient of variation."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise KasfError("no timings to summarise")
    mean = float(ms.mean())
    stats = {"iterations": int(ms.size), "min_ms": float(ms.min()), "mean_ms": mean, "median_ms": float(np.median(ms))}
    stats.update({f"p{p}_ms": float(np.percentile(ms, p)) for p in PERCENTILES})
    stats.update(max_ms=float(ms.max()), cv=float(ms.std() / mean) if mean > 0 else 0.0)
    return stats


def stability_warning(label: str, stats: Mapping[str, float], threshold: float = CV_WARNING) -> str | None:
    """trtexec's warning: a coefficient of variation over the threshold makes the figures unreliable."""
    if stats["cv"] <= threshold:
        return None
    return (f"{label}: coefficient of variation {100 * stats['cv']:.1f}% is over {100 * threshold:.1f}%: the machine "
            "was not quiet (other load, frequency scaling); the figures may not be reproducible")


# --- timing ------------------------------------------------------------------------------------

Runner = Callable[[], Mapping[str, float]]


def run_interleaved(runners: Mapping[str, Runner], warmup_s: float = WARMUP_S, min_iterations: int = MIN_ITERATIONS,
                    min_duration_s: float = MIN_DURATION_S,
                    settle_s: float = SETTLE_S) -> tuple[dict[str, dict[str, list[float]]], dict[str, str]]:
    """Round-robin: each round calls every runner once; a runner returns named durations in seconds.
    Between two runners the CPU idles for settle_s, so that the thread pools of the one before
    (ONNX Runtime's and OpenMP's spin after a run) have gone to sleep and take no cores from the next:
    without it, PyTorch eager interleaved with ONNX Runtime measured 3x slower on 2 cores.
    Warm-up rounds for warmup_s (at least one), then timed rounds until at least min_iterations and
    min_duration_s. A runner that raises is dropped from later rounds and reported, never fatal.
    Returns ({runner: {measure: [seconds, ...]}}, {runner: failure})."""
    active, failures = dict(runners), {}
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in runners}

    def one_round(record: bool) -> None:
        for name, run in list(active.items()):
            if len(active) > 1:
                time.sleep(settle_s)
            try:
                measured = run()
            except Exception as err:  # any backend's failure becomes that engine's status
                failures[name] = f"{type(err).__name__}: {err}"
                del active[name]
                continue
            if record:
                for measure, seconds in measured.items():
                    samples[name].setdefault(measure, []).append(seconds)

    started = time.perf_counter()
    while active:
        one_round(record=False)
        if time.perf_counter() - started >= warmup_s:
            break
    rounds, started = 0, time.perf_counter()
    while active and (rounds < min_iterations or time.perf_counter() - started < min_duration_s):
        one_round(record=True)
        rounds += 1
    return samples, failures


def engine_runner(engine, keypoints: np.ndarray) -> Runner:
    """End-to-end latency of infer (numpy in, numpy out); on a GPU also compute and the two copies."""
    def end_to_end() -> float:
        start = time.perf_counter()
        engine.infer(keypoints)
        return time.perf_counter() - start

    device = engine.device
    if device.type != "cuda":
        return lambda: {"latency": end_to_end()}
    engine.infer(keypoints)   # binds the batch's buffers, captures its CUDA graph
    compute = engine.compute_timer(len(keypoints))
    with torch.cuda.device(device):
        host_in = torch.from_numpy(keypoints).pin_memory()
        host_out = torch.empty_like(host_in).pin_memory()
        resident = torch.empty_like(host_in, device=device)

    def run() -> dict[str, float]:
        measured = {"latency": end_to_end(),
                    "h2d": cuda_event_seconds(lambda: resident.copy_(host_in, non_blocking=True)),
                    "d2h": cuda_event_seconds(lambda: host_out.copy_(resident, non_blocking=True))}
        if compute is not None:
            measured["compute"] = compute()
        return measured
    return run


def benchmark_keypoints(batch: int, n_frames: int, seed: int = 0) -> np.ndarray:
    keypoints = np.random.default_rng(seed).uniform(-1, 1, (batch, n_frames, 17, 3)).astype(np.float32)
    keypoints[..., 2] = 1.0
    return keypoints


# --- the machine -------------------------------------------------------------------------------

def matmul_peak_gflops(device: str | torch.device = "cpu", size: int | None = None, repeats: int = 5) -> dict:
    """This machine's matrix-multiply rate: FP32 sgemm on the CPU (with torch's current threads),
    FP16 on a GPU; the best of `repeats` products of two size x size matrices."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    size = size or (8192 if cuda else 2048)
    dtype = torch.float16 if cuda else torch.float32
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            best = min(best, cuda_event_seconds(lambda: torch.mm(a, b)))
        else:
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    return {"device": str(device), "dtype": str(dtype).removeprefix("torch."), "size": size,
            "threads": None if cuda else torch.get_num_threads(), "gflops": 2 * size ** 3 / best / 1e9}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[dict]:
    if not torch.cuda.is_available():
        return []
    driver = None
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        driver = query.stdout.strip().splitlines()[0] if query.returncode == 0 and query.stdout.strip() else None
    return [{"name": torch.cuda.get_device_name(i),
             "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
             "driver": driver, "cuda": torch.version.cuda} for i in range(torch.cuda.device_count())]


def environment() -> dict:
    """What the figures were measured on."""
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(), "gpus": _gpus(),
            "versions": versions}


# --- the run -----------------------------------------------------------------------------------

@dataclass
class BenchSettings:
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


@dataclass
class _Loaded:
    spec: EngineSpec
    engine: Any
    config: dict
    flops_per_clip: float | None
    parity: dict | None


def _engine_options(spec: EngineSpec, backend: str, settings: BenchSettings) -> dict:
    options = dict(spec.options)
    if backend == "onnxruntime" and settings.threads and options.get("provider", "cpu") == "cpu":
        options.setdefault("threads", settings.threads)
    if backend == "torch" and settings.config:
        options.setdefault("config", settings.config)
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
            if backend_for(spec.path, spec.backend).name == "torch" and spec.path not in found:
                found.append(spec.path)
        except KasfError:
            continue
    return found


def _load(spec: EngineSpec, settings: BenchSettings, flops, parity: _Parity | None, notes: list[str]) -> _Loaded:
    from ..engines import backend_for, load_engine, recorded_model

    backend = backend_for(spec.path, spec.backend).name
    engine = load_engine(spec.path, backend, **_engine_options(spec, backend, settings))
    config, source = recorded_model(spec.path, backend, settings.config if backend == "torch" else None)
    try:
        count = flops.add_graph(config, spec.path) if backend == "onnxruntime" else flops.for_config(config)
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
           "flops_per_clip": loaded.flops_per_clip}
    for measure in ("compute", "h2d", "d2h"):
        if measure in measures:
            row[measure] = latency_stats(measures[measure])
    if loaded.flops_per_clip is not None:
        row["gflops_per_s"] = loaded.flops_per_clip * clips_per_s / 1e9
        peak = peaks[device.type]["gflops"]
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
    from ..verify.flops import COUNTED, FlopsByConfig

    notes: list[str] = []
    rows = list(failed)
    references = _references_for(specs, settings) if settings.parity_clips else []
    parity = _Parity(references, settings, notes) if references else None
    flops, loaded = FlopsByConfig(), []
    for spec in specs:
        log(f"loading {spec.label}")
        try:
            loaded.append(_load(spec, settings, flops, parity, notes))
        except Exception as err:  # a failing engine is a row, never the end of the run
            rows.append(_status_row(spec.label, f"load failed: {type(err).__name__}: {err}",
                                    size_mb=_size_mb(spec.path), backend=spec.backend))
    devices = sorted({item.engine.device.type for item in loaded})
    peaks = {device: matmul_peak_gflops(device, settings.peak_size) for device in devices}
    for device, peak in peaks.items():
        log(f"matmul peak on {device} ({peak['dtype']}, {peak['size']}x{peak['size']}): {peak['gflops']:.0f} GFLOP/s")
    for batch in settings.batches:
        log(f"timing batch {batch}")
        runners, broken = {}, {}
        for item in loaded:
            try:
                runners[item.spec.label] = engine_runner(item.engine, benchmark_keypoints(batch, item.engine.n_frames))
            except Exception as err:
                broken[item.spec.label] = f"{type(err).__name__}: {err}"
        samples, failures = run_interleaved(runners, settings.warmup_s, settings.min_iterations,
                                            settings.min_duration_s, settings.settle_s)
        failures.update(broken)
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
    for item in loaded:
        item.engine.close()
    settings_record = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()}
    settings_record["batches"] = list(settings.batches)
    return {"environment": environment(), "settings": settings_record,
            "references": [str(path) for path in references], "peaks": peaks, "rows": rows,
            "parity": parity.reports if parity else {},
            "speedups": speedups(rows), "notes": notes,
            "flops_counted": COUNTED}


# --- reporting ---------------------------------------------------------------------------------

TABLE_COLUMNS = ("engine", "backend", "precision", "status", "size MB", "parity", "dMPJPE mm", "batch", "p50 ms",
                 "p99 ms", "clips/s", "frames/s", "GFLOP/s", "% peak")


def format_table(report: dict) -> str:
    rows = report["rows"]
    gpu = any("compute" in r for r in rows)
    headers = list(TABLE_COLUMNS) + (["compute p50 ms"] if gpu else [])
    lines = []
    for r in rows:
        latency = r.get("latency", {})
        status = r["status"] if len(r["status"]) <= 60 else r["status"][:57] + "..."
        parity = r.get("parity") or {}
        difference = parity.get("mpjpe_difference_mm")
        line = [r["engine"], r.get("backend") or "-", r.get("precision") or "-", status, r.get("size_mb"),
                parity.get("verdict"), None if difference is None else f"{difference:+.3f}", r.get("batch"),
                latency.get("median_ms"), latency.get("p99_ms"), r.get("clips_per_s"), r.get("frames_per_s"), r.get("gflops_per_s"), r.get("peak_percent")]
        lines.append(line + ([r.get("compute", {}).get("median_ms")] if gpu else []))
    peaks = ", ".join(f"{d} {p['gflops']:.0f} GFLOP/s ({p['dtype']})" for d, p in report["peaks"].items())
    env = report["environment"]
    title = (f"kasf bench: {env['cpu']}, {report['environment']['torch_threads']} torch threads"
             f"{', ' + env['gpus'][0]['name'] if env['gpus'] else ''}; matmul peak {peaks or '-'}")
    return render_table(headers, lines, digits=2, title=title)


def format_speedups(report: dict) -> list[str]:
    return [f"batch {s['batch']}: ONNX Runtime FP32 ({s['onnxruntime']}) median {s['onnxruntime_median_ms']:.2f} ms, "
            f"PyTorch FP32 eager ({s['torch']}) {s['torch_median_ms']:.2f} ms: ONNX Runtime is {_times(s['speedup'])}"
            for s in report["speedups"]]


def _times(speedup: float) -> str:
    return f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"


_CSV_FIELDS = ("engine", "backend", "precision", "device", "status", "size_mb", "batch", "clips_per_s",
               "frames_per_s", "flops_per_clip", "gflops_per_s", "peak_percent")


def _csv_row(row: dict) -> dict:
    flat = {key: row.get(key) for key in _CSV_FIELDS}
    flat.update({f"parity_{key}": value for key, value in (row.get("parity") or {}).items()})
    for measure in ("latency", "compute", "h2d", "d2h"):
        for key, value in row.get(measure, {}).items():
            flat[f"{measure}_{key}"] = value
    return flat


def plot(report: dict, path: Path) -> None:
    """Median latency and throughput against batch, one line per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency_axes, throughput_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    for engine in dict.fromkeys(r["engine"] for r in ok):
        mine = sorted((r for r in ok if r["engine"] == engine), key=lambda r: r["batch"])
        batches = [r["batch"] for r in mine]
        latency_axes.plot(batches, [r["latency"]["median_ms"] for r in mine], marker="o", label=engine)
        throughput_axes.plot(batches, [r["clips_per_s"] for r in mine], marker="o", label=engine)
    for axes, label in ((latency_axes, "median latency (ms)"), (throughput_axes, "throughput (clips/s)")):
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.set_xlabel("batch (clips)")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
    latency_axes.legend(fontsize=7)
    figure.suptitle(f"kasf bench: {report['environment']['cpu']}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """bench.json (everything), bench.csv (one line per engine and batch), bench.png (the plot)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "bench.json", "csv": out_dir / "bench.csv", "png": out_dir / "bench.png"}
    paths["json"].write_text(json.dumps(report, indent=2))
    flat = [_csv_row(r) for r in report["rows"]]
    fields = list(dict.fromkeys(key for row in flat for key in row))
    with open(paths["csv"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)
    plot(report, paths["png"])
    return paths


# --- command line (shared by `kasf bench` and benchmarks/bench.py) ------------------------------

def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--engine", nargs="+", metavar="FILE[:key=value,...]",
                        help="model files to time (.onnx, .engine/.plan, .pt/.pth, .pt2), each with options for its "
                             "backend, e.g. model.pt:device=cuda,precision=fp16,cuda_graphs=true, "
                             "model.onnx:provider=cuda, x.bin:backend=onnxruntime")
    source.add_argument("--checkpoint", help="export what this machine can run from this checkpoint (ONNX FP32 and "
                                             "FP16, PyTorch eager; on a GPU also its CUDA variants) and time it all")
    parser.add_argument("--config", help="the authors' YAML (for their checkpoints)")
    parser.add_argument("--reference", help="checkpoint for the parity column (default: --checkpoint, or each "
                                            "engine's .pt/.pth of the same model among the engines)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes to sweep (default 1)")
    parser.add_argument("--warmup", type=float, default=1e3 * WARMUP_S,
                        help=f"warm-up in ms (default {1e3 * WARMUP_S:.0f})")
    parser.add_argument("--iterations", type=int, default=MIN_ITERATIONS,
                        help=f"at least this many timed rounds (default {MIN_ITERATIONS})")
    parser.add_argument("--duration", type=float, default=MIN_DURATION_S,
                        help=f"and at least this many seconds per batch size (default {MIN_DURATION_S:g})")
    parser.add_argument("--settle", type=float, default=1e3 * SETTLE_S,
                        help=f"idle ms between two engines' turns, so one's spinning threads do not slow the next "
                             f"(default {1e3 * SETTLE_S:.0f})")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: their choice)")
    parser.add_argument("--parity-clips", type=int, default=PARITY_CLIPS,
                        help=f"motion-capture test clips for the parity column (default {PARITY_CLIPS}; 0: none)")
    from ..cli.main import add_budget_argument

    add_budget_argument(parser)
    parser.add_argument("--out", default="runs/bench", help="where the exports, bench.json/.csv/.png go")


def bench_from_arguments(args: argparse.Namespace) -> int:
    from ..cli.main import parse_budgets

    if min(args.batch) < 1 or args.iterations < 1 or min(args.duration, args.warmup, args.settle) < 0:
        raise KasfError("batch sizes and --iterations must be at least 1; --duration, --warmup and --settle not "
                        "negative")
    if args.threads is not None and args.threads < 1:
        raise KasfError(f"--threads must be at least 1, got {args.threads}")
    out = Path(args.out)
    failed: list[dict] = []
    if args.checkpoint:
        specs, failed = checkpoint_specs(args.checkpoint, args.config, out)
    else:
        specs = [parse_engine_spec(text) for text in args.engine]
    settings = BenchSettings(batches=args.batch, warmup_s=args.warmup / 1e3, min_iterations=args.iterations,
                             min_duration_s=args.duration, settle_s=args.settle / 1e3, threads=args.threads,
                             config=args.config,
                             reference=args.reference or args.checkpoint, parity_clips=args.parity_clips,
                             budgets=parse_budgets(args.budget))
    report = run_benchmark(specs, settings, failed)
    print(format_table(report))
    for line in format_speedups(report):
        print(line)
    for note in report["notes"]:
        print(f"note: {note}")
    paths = write_report(report, out)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0 if any(r["status"] == "ok" for r in report["rows"]) else 1
