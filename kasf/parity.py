"""Parity in the user's units: how far an engine's poses are from the PyTorch FP32 reference,
in millimetres per joint, against named budgets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import KasfError
from .skeleton import JOINT_NAMES


@dataclass(frozen=True)
class Budget:
    mean_mm: float
    max_mm: float | None = None


BUDGETS = {"fp32": Budget(mean_mm=0.01), "fp16": Budget(mean_mm=0.5, max_mm=5.0)}


def deviation_mm(reference_mm: np.ndarray, candidate_mm: np.ndarray) -> dict:
    """Per-joint Euclidean deviation statistics between two [..., 17, 3] arrays in mm."""
    distance = np.linalg.norm(np.asarray(candidate_mm, np.float64) - np.asarray(reference_mm, np.float64), axis=-1)
    per_joint = distance.reshape(-1, distance.shape[-1])
    return {
        "mean_mm": float(distance.mean()),
        "p99_mm": float(np.percentile(distance, 99)),
        "max_mm": float(distance.max()),
        "per_joint_mm": dict(zip(JOINT_NAMES, per_joint.mean(axis=0).tolist())),
        "per_joint_max_mm": dict(zip(JOINT_NAMES, per_joint.max(axis=0).tolist())),
    }


def within(stats: dict, budget: Budget) -> bool:
    return stats["mean_mm"] <= budget.mean_mm and (budget.max_mm is None or stats["max_mm"] <= budget.max_mm)


def engine_predictions(engine, keypoints: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Run an engine over [M, T, 17, 3] keypoints in batches (no larger than the engine takes)."""
    batch_size = min(batch_size, engine.max_batch or batch_size)
    return np.concatenate([engine.infer(keypoints[i:i + batch_size]) for i in range(0, len(keypoints), batch_size)])


def compare_on_clips(model, engine, clips, batch_size: int = 32) -> dict:
    """The engine against the PyTorch FP32 reference on the same clips, in mm, with its budget."""
    from .evaluate import predict

    reference = clips.to_millimetres(predict(model, clips, batch_size))
    candidate = clips.to_millimetres(engine_predictions(engine, clips.keypoints, batch_size))
    stats = deviation_mm(reference, candidate)
    budget = BUDGETS[engine.precision]
    return {"backend": engine.backend, "precision": engine.precision, "clips": len(clips), **stats,
            "budget_mean_mm": budget.mean_mm, "budget_max_mm": budget.max_mm, "passed": within(stats, budget)}


def format_parity(reports: list[dict], title: str = "parity against PyTorch FP32 (mm per joint)") -> str:
    from .table import render_table

    rows = [(r["backend"], r["precision"], r["clips"], r["mean_mm"], r["p99_mm"], r["max_mm"],
             f"mean <= {r['budget_mean_mm']}" + (f", max <= {r['budget_max_mm']}" if r["budget_max_mm"] else ""),
             "PASS" if r["passed"] else "FAIL") for r in reports]
    return render_table(["backend", "precision", "clips", "mean", "p99", "max", "budget", "status"], rows,
                        digits=4, title=title)


def format_per_joint(report: dict) -> str:
    """Mean and largest deviation of each joint, in mm."""
    from .table import render_table

    rows = [(name, report["per_joint_mm"][name], report["per_joint_max_mm"][name]) for name in JOINT_NAMES]
    return render_table(["joint", "mean", "max"], rows, digits=4, title="deviation per joint (mm)")


def check_reference(reference_config: dict, reference_source: dict, engine_config: dict,
                    engine_source: dict) -> list[str]:
    """Refuse a reference of another architecture than the engine's; note when both name their
    source checkpoint (kasf metadata keeps the original file's SHA-256) and the two differ."""
    differing = {k: (engine_config.get(k), v) for k, v in reference_config.items() if engine_config.get(k) != v}
    if differing:
        detail = ", ".join(f"{k}: engine {a!r} vs reference {b!r}" for k, (a, b) in differing.items())
        raise KasfError(f"the reference checkpoint is another model than the engine ({detail}); pass the checkpoint "
                        "the engine was exported from")
    ours, theirs = reference_source.get("sha256"), engine_source.get("sha256")
    if ours and theirs and ours != theirs:
        return [f"the engine was exported from {engine_source.get('file', 'a checkpoint')} (sha256 {theirs[:12]}...), "
                f"the reference comes from {reference_source.get('file', 'another')} (sha256 {ours[:12]}...): "
                "the deviation includes the difference between the two checkpoints"]
    return []


def reproduction_commands(onnx_path: str, input_name: str, n_frames: int, precision: str, batch: int,
                          profile: tuple[int, int, int] | None = None, engine_path: str | None = None) -> list[str]:
    """Command lines that check the same graph outside kasf: Polygraphy comparing ONNX Runtime with
    TensorRT (for FP16, NVIDIA's transformer tolerances on the mean error), and trtexec building
    the engine as kasf does (strongly typed, no TF32, the same batch profile) or timing the built one."""
    low, opt, high = profile or (batch, batch, batch)

    def shape(b: int, sep: str) -> str:
        return sep.join(map(str, (b, n_frames, 17, 3)))

    tolerance = "1e-2" if precision == "fp16" else "1e-4"
    polygraphy = (f"polygraphy run {onnx_path} --onnxrt --trt --strongly-typed "
                  f"--input-shapes {input_name}:[{shape(batch, ',')}] "
                  f"--trt-min-shapes {input_name}:[{shape(low, ',')}] --trt-opt-shapes {input_name}:[{shape(opt, ',')}] "
                  f"--trt-max-shapes {input_name}:[{shape(high, ',')}] "
                  f"--atol {tolerance} --rtol {tolerance} --check-error-stat mean")
    trtexec = (f"trtexec --onnx={onnx_path} --stronglyTyped --noTF32 --minShapes={input_name}:{shape(low, 'x')} "
               f"--optShapes={input_name}:{shape(opt, 'x')} --maxShapes={input_name}:{shape(high, 'x')} "
               f"--shapes={input_name}:{shape(batch, 'x')} --profilingVerbosity=detailed --exportLayerInfo=layers.json")
    commands = [polygraphy, trtexec]
    if engine_path:
        commands.append(f"trtexec --loadEngine={engine_path} --shapes={input_name}:{shape(batch, 'x')}")
    return commands
