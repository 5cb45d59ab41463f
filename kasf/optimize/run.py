"""`kasf optimize`: the fastest engine that keeps accuracy, chosen by measurement, not up front
(Triton Model Navigator's idea, done for this model).

Every candidate this machine can run on the device is made from the checkpoint (each backend's
variants, kasf.engines.variants: FP32, the INT8 QDQ graph, BF16, AOTInductor packages, TensorRT
plans), checked for parity against PyTorch FP32 within its precision's budget (kasf.verify), and
timed interleaved with the bench's conventions beside PyTorch FP32 eager, the baseline. The winner
is the passing candidate with the largest speed-up over the baseline (the geometric mean over the
batch sizes asked for); it is copied to DIR/best.<suffix> with DIR/best.json, which says how to
load it and what it measured. A candidate that cannot be made, loaded or run is a row with its
reason; when none passes, nothing is written as best.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from tqdm import tqdm

from .. import __version__
from ..bench import BenchSettings, EngineSpec, run_benchmark
from ..engines.variants import ModelFiles, Variant, available_variants
from ..errors import KasfError
from ..files import atomic_write, write_json

DEVICES = ("cpu", "cuda")
PARITY_CLIPS = 64
BEST = "best"


@dataclass
class Candidate:
    """One way to run the model, with what optimize found out about it."""
    variant: Variant
    label: str | None = None            # its label in the benchmark, once it is timed
    parity: dict | None = None
    timings: dict[int, dict] = field(default_factory=dict)   # batch -> the bench row
    speedups: dict[int, float] = field(default_factory=dict)
    verdict: str = ""

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def baseline(self) -> bool:
        return self.variant.backend == "torch" and self.variant.precision == "fp32" and not self.variant.options.get(
            "cuda_graphs") and self.variant.role == "primary"

    @property
    def score(self) -> float | None:
        """The geometric mean of its speed-ups over the baseline, where it ran at every batch."""
        if not self.speedups or any(not math.isfinite(v) for v in self.speedups.values()):
            return None
        return math.exp(sum(math.log(v) for v in self.speedups.values()) / len(self.speedups))

    @property
    def passed(self) -> bool:
        return bool(self.parity and self.parity["passed"])


def candidates(files: ModelFiles, device: str, include: Sequence[str] = ()) -> list[Candidate]:
    """The variants of every backend for the device (those whose name holds one of `include`, when
    given, and the baseline always), and a row for each backend that cannot run here."""
    if device not in DEVICES:
        raise KasfError(f"kasf optimize runs on {' or '.join(DEVICES)}, got device {device!r}")
    variants, unavailable = available_variants(files)
    found = [Candidate(v) for v in variants if v.device == device]
    if not any(c.baseline for c in found):
        raise KasfError(f"no PyTorch FP32 run on {device} to compare with: "
                        f"{'this torch sees no CUDA device' if device == 'cuda' else 'the torch backend is missing'}")
    if include:
        found = [c for c in found if c.baseline or any(text in c.name for text in include)]
    from ..engines import BACKENDS

    for backend, why in unavailable.items():
        if device == "cuda" or not BACKENDS[backend].needs_cuda:
            found.append(Candidate(Variant(backend, backend, "-", device, None, status=f"skipped: {why}")))
    return found


def _make(found: list[Candidate], log: Callable[[str], None]) -> None:
    bar = tqdm(found, desc="making candidates", unit="candidate")
    for candidate in bar:
        bar.set_postfix_str(candidate.name)
        candidate.variant.realise()
        if candidate.variant.status != "ok":
            log(f"{candidate.name}: {candidate.variant.status}")


def _bench(found: list[Candidate], settings: BenchSettings, log: Callable[[str], None]) -> dict:
    """Parity and interleaved timing of every made candidate, in one benchmark run."""
    ready = [c for c in found if c.variant.status == "ok"]
    specs = []
    for candidate in ready:
        spec = EngineSpec(candidate.variant.path, candidate.variant.backend, candidate.variant.options)
        candidate.label = spec.label
        specs.append(spec)
    report = run_benchmark(specs, settings, log=log)
    by_label = {c.label: c for c in ready}
    for row in report["rows"]:
        candidate = by_label.get(row["engine"])
        if candidate is None:
            continue
        if row["status"] != "ok":
            candidate.variant.status = row["status"]
            continue
        candidate.parity = row.get("parity")
        candidate.timings[row["batch"]] = row
    return report


def _judge(found: list[Candidate], batches: Sequence[int]) -> Candidate | None:
    """Speed-ups over the baseline, each candidate's verdict, and the winner (None when none passes)."""
    baseline = next(c for c in found if c.baseline)
    for candidate in found:
        for batch in batches:
            mine, theirs = candidate.timings.get(batch), baseline.timings.get(batch)
            if mine and theirs:
                candidate.speedups[batch] = theirs["latency"]["median_ms"] / mine["latency"]["median_ms"]
    eligible = [c for c in found if not c.baseline and c.passed and c.score is not None
                and len(c.speedups) == len(batches)]
    winner = max(eligible, key=lambda c: c.score, default=None)
    for candidate in found:
        candidate.verdict = _verdict(candidate, winner, baseline, batches)
    return winner


def _verdict(candidate: Candidate, winner: Candidate | None, baseline: Candidate, batches: Sequence[int]) -> str:
    if candidate.variant.status != "ok":
        return f"not run: {candidate.variant.status}"
    if candidate.baseline:
        return "baseline (the reference, not a candidate)"
    if candidate.parity is None:
        return "lost: no parity verdict (see the notes)"
    if not candidate.passed:
        return f"lost: parity {candidate.parity['verdict']} on {' and '.join(candidate.parity['decided_by'])}"
    if len(candidate.speedups) < len(batches):
        missing = sorted(set(batches) - set(candidate.speedups))
        return f"lost: did not run at batch {', '.join(map(str, missing))}"
    if candidate is winner:
        return f"won: passes parity, fastest ({candidate.score:.2f}x {baseline.name})"
    return f"lost: passes parity, slower ({candidate.score:.2f}x against the winner's {winner.score:.2f}x)"


def _write_best(winner: Candidate, out: Path, budgets: dict, checkpoint: Path) -> Path:
    """The winner's file as out/best.<suffix> (and a TensorRT plan's own sidecars), then best.json."""
    source = winner.variant.path
    best = out / f"{BEST}{source.suffix}"
    atomic_write(best, lambda tmp: shutil.copyfile(source, tmp), suffix=source.suffix)
    for extra in (".json", ".layers.json"):
        companion = source.with_name(source.name + extra)
        if companion.is_file():
            atomic_write(best.with_name(best.name + extra), lambda tmp: shutil.copyfile(companion, tmp))
    write_json(out / f"{BEST}.json", {
        "kasf_version": __version__, "file": best.name, "candidate": winner.name, "backend": winner.variant.backend,
        "precision": winner.variant.precision, "device": winner.variant.device, "options": winner.variant.options,
        "checkpoint": str(checkpoint), "parity": winner.parity, "budgets_mm": budgets,
        "speedups": {str(b): v for b, v in winner.speedups.items()}, "score": winner.score,
        "latency_ms": {str(b): row["latency"] for b, row in winner.timings.items()},
    })
    return best


def _clear_best(out: Path) -> None:
    """A winner of an earlier run must not stand in for this one's."""
    for path in out.glob(f"{BEST}.*"):
        path.unlink()


def optimize(checkpoint: str | Path, out_dir: str | Path, device: str = "cpu", settings: BenchSettings | None = None,
             include: Sequence[str] = (), config: str | Path | None = None,
             log: Callable[[str], None] = print) -> dict:
    """Make, check and time every candidate; write the winner and return the report (its "winner"
    None when no candidate passes)."""
    from ..verify import BUDGETS_MM

    checkpoint, out = Path(checkpoint), Path(out_dir)
    settings = replace(settings or BenchSettings(parity_clips=PARITY_CLIPS), reference=checkpoint, config=config)
    if settings.parity_clips < 1:
        raise KasfError("kasf optimize needs parity to choose: --parity-clips must be at least 1")
    files = ModelFiles(checkpoint, out / "candidates", config, log=log)
    found = candidates(files, device, include)
    out.mkdir(parents=True, exist_ok=True)
    _clear_best(out)
    _make(found, log)
    bench = _bench(found, settings, log)
    winner = _judge(found, settings.batches)
    budgets = {**BUDGETS_MM, **(settings.budgets or {})}
    best = _write_best(winner, out, budgets, checkpoint) if winner else None
    return {"checkpoint": str(checkpoint), "device": device, "batches": list(settings.batches), "budgets_mm": budgets,
            "winner": winner.name if winner else None, "best": str(best) if best else None,
            "candidates": [_candidate_record(c, out) for c in found], "bench": bench}


def _candidate_record(candidate: Candidate, out: Path) -> dict:
    path = candidate.variant.path
    return {"name": candidate.name, "label": candidate.label, "backend": candidate.variant.backend, "precision": candidate.variant.precision,
            "device": candidate.variant.device, "options": candidate.variant.options,
            "path": str(path.relative_to(out)) if path is not None and path.is_relative_to(out) else path and str(path),
            "status": candidate.variant.status, "baseline": candidate.baseline, "parity": candidate.parity,
            "speedups": {str(b): v for b, v in candidate.speedups.items()}, "score": candidate.score,
            "timings": {str(b): {k: row[k] for k in ("latency", "clips_per_s", "frames_per_s")}
                        for b, row in candidate.timings.items()},
            "verdict": candidate.verdict}
