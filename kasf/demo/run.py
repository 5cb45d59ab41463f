"""The demo: the whole pipeline on the embedded motion capture, in one command, into one report.

Stages, in order (each a small function; later stages read what earlier ones wrote in --out):

  train      the preset, time-bounded (kasf.train.fit)              train/best.pt
  evaluate   MPJPE / P-MPJPE per motion and per joint on test       evaluation.json, predictions.npz
  export     fused ONNX graphs, FP32 and FP16 (kasf.export.onnx)    model_fp32.onnx, model_fp16.onnx
  engines    every engine this machine runs (TensorRT only where    engines.json (+ .engine files)
             `import tensorrt` works; otherwise a row saying why)
  parity     each engine against PyTorch FP32: MPJPE and the noise  parity.json, parity.png
             floor (kasf.verify)
  bench      interleaved timing at small batches (kasf.bench)       bench.json, bench.csv, bench.png
  realtime   the streaming runtime replaying people at 30 fps       realtime.json
  report     charts, 3D skeletons, an animated clip, one HTML page  report.html, *.png, clip.gif

Every output is written atomically; a stage that finished leaves a JSON marker in --out/stages/.
A second run reuses finished stages (unless --force, or the settings the stage depends on
changed, or an output has gone); once a stage is redone, every stage after it is redone too.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from ..errors import KasfError
from ..files import atomic_write
from ..table import format_cell, render_table

MARKERS = "stages"
CHECKPOINT = Path("train") / "best.pt"
EXPORTS = {"fp32": "model_fp32.onnx", "fp16": "model_fp16.onnx"}
REFERENCE = "torch fp32 cpu"          # the engine every other one is compared with


@dataclass(frozen=True)
class DemoSettings:
    preset: str = "small"
    minutes: float = 15.0                # training budget
    warmup_epochs: int = 2               # the README's mocap recipe (the paper's 10 outlast a short budget;
                                         # --quick: 0, its first epoch at lr/100 would be wasted)
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
    test_every: int = 1                  # evaluate every n-th test clip (tests)
    skeleton_clips: int = 4
    gif_frames: int = 108
    progress: bool = True

    @classmethod
    def quick(cls, **changes) -> "DemoSettings":
        """About 2 minutes of training; the whole demo well under 10 minutes on a 2-core CPU."""
        # Epochs of 16 steps: fit stops only between epochs, so short ones spend the budget more fully.
        return cls(**{"minutes": 2.0, "warmup_epochs": 0, "steps_per_epoch": 16, "bench_duration_s": 1.0,
                      "replay_seconds": 2.0, **changes})


# Which settings each stage's outputs depend on: a change re-runs the stage (and the ones after it).
DEPENDS = {
    "train": ("preset", "minutes", "warmup_epochs", "device", "steps_per_epoch"),
    "evaluate": ("device", "test_every"),
    "export": (),
    "engines": ("device",),
    "parity": ("parity_clips",),
    "bench": ("bench_batches", "bench_duration_s", "bench_warmup_s", "bench_iterations", "peak_size"),
    "realtime": ("people", "fps", "replay_seconds"),
    "report": ("skeleton_clips", "gif_frames"),
}
# Stages whose outputs changed form in a release: a marker from before records no (or another)
# format, so the stage is redone instead of handing the report files it cannot read.
FORMATS = {"parity": 2}


@dataclass
class Demo:
    out: Path
    settings: DemoSettings
    log: Callable[[str], None] = print
    results: dict[str, dict] = field(default_factory=dict)   # stage -> its marker's "summary"

    def path(self, name: str | Path) -> Path:
        return self.out / name

    def clips(self):
        from ..data.splits import load_splits

        return load_splits("mocap").test


# --- files -------------------------------------------------------------------------------------

def write_json(path: Path, value: Any) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=2, default=str)))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def _save_figure(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)


# --- stages ------------------------------------------------------------------------------------

def stage_train(demo: Demo) -> dict:
    """Train the preset from scratch for the time budget; best validation weights in train/best.pt."""
    from ..model.config import resolve_config
    from ..data.splits import load_splits
    from ..model.kasportsformer import build_model
    from ..train.fit import TrainConfig, fit

    settings, run = demo.settings, demo.path("train")
    if run.exists():
        shutil.rmtree(run)      # an interrupted training: start again, the budget is the stage's
    config = resolve_config(settings.preset)
    splits = load_splits("mocap", n_frames=config.n_frames)
    torch.manual_seed(0)
    model = build_model(config)
    train_config = TrainConfig(warmup_epochs=settings.warmup_epochs, time_limit_s=60 * settings.minutes,
                               steps_per_epoch=settings.steps_per_epoch)
    result = fit(model, splits, train_config, run, device=settings.device, progress=settings.progress, log=demo.log)
    if not demo.path(CHECKPOINT).is_file():
        raise KasfError(f"training wrote no {demo.path(CHECKPOINT)}: no epoch finished within {settings.minutes} min")
    return {"epochs": len(result.history), "best_epoch": result.best_epoch + 1, "val_mpjpe_mm": result.best_metric,
            "stopped": result.stopped, "parameters": sum(p.numel() for p in model.parameters()),
            "outputs": [str(CHECKPOINT)],
            "result": f"{len(result.history)} epochs ({result.stopped}); best validation MPJPE "
                      f"{result.best_metric:.1f} mm at epoch {result.best_epoch + 1}"}


def stage_evaluate(demo: Demo) -> dict:
    """The paper's metrics on the test motions; predictions (mm) kept for the renders."""
    from ..model.checkpoint import load_model
    from ..train.evaluate import predict
    from ..train.metrics import evaluate

    model = load_model(demo.path(CHECKPOINT), device=demo.settings.device)
    clips = demo.clips().select(slice(None, None, demo.settings.test_every))
    predicted = clips.to_millimetres(predict(model, clips, device=demo.settings.device))
    report = evaluate(predicted, clips.poses_mm, clips.action)
    report.update(unit="mm", clips=len(clips), flip=False)

    def save(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, predicted_mm=predicted.astype(np.float32),
                                true_mm=clips.poses_mm.astype(np.float32), action=clips.action, source=clips.source)

    write_json(demo.path("evaluation.json"), report)
    atomic_write(demo.path("predictions.npz"), save)
    return {"mpjpe": report["mpjpe"], "p_mpjpe": report["p_mpjpe"], "clips": len(clips),
            "outputs": ["evaluation.json", "predictions.npz"],
            "result": f"test MPJPE {report['mpjpe']:.1f} mm, P-MPJPE {report['p_mpjpe']:.1f} mm on {len(clips)} clips"}


def stage_export(demo: Demo) -> dict:
    """Fused ONNX graphs in FP32 and strongly typed FP16 (export_onnx writes atomically)."""
    from ..model.checkpoint import read_checkpoint
    from ..export.onnx import export_onnx

    checkpoint = read_checkpoint(demo.path(CHECKPOINT))
    sizes = {}
    for precision, name in EXPORTS.items():
        result = export_onnx(checkpoint, demo.path(name), fp16=precision == "fp16")
        sizes[precision] = result.size_bytes / 1e6
    return {"size_mb": sizes, "outputs": list(EXPORTS.values()),
            "result": ", ".join(f"{name} {sizes[p]:.2f} MB" for p, name in EXPORTS.items())}


def _engine_row(name: str, path: str | None, backend: str, precision: str, device: str,
                options: dict | None = None, status: str = "ok") -> dict:
    return {"name": name, "path": path, "backend": backend, "precision": precision, "device": device,
            "options": options or {}, "status": status}


def _tensorrt_rows(demo: Demo) -> list[dict]:
    """TensorRT FP32 and FP16 engines where `import tensorrt` works and a GPU is there; else why not."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as err:
        return [_engine_row("tensorrt", None, "tensorrt", "-", "cuda",
                            status=f"skipped: `import tensorrt` failed ({err})")]
    if not torch.cuda.is_available():
        return [_engine_row("tensorrt", None, "tensorrt", "-", "cuda", status="skipped: no CUDA device")]
    from ..engines.tensorrt import build_engine

    rows = []
    for precision, onnx_name in EXPORTS.items():
        name = f"model_{precision}.engine"
        try:
            build_engine(demo.path(onnx_name), demo.path(name), 1, 8, 64, timing_cache=demo.path("trt.cache"))
            rows.append(_engine_row(f"tensorrt {precision} cuda", name, "tensorrt", precision, "cuda"))
        except KasfError as err:
            rows.append(_engine_row(f"tensorrt {precision} cuda", None, "tensorrt", precision, "cuda",
                                    status=f"build failed: {err}"))
    return rows


def _candidates(demo: Demo) -> list[dict]:
    import onnxruntime

    checkpoint, device = str(CHECKPOINT), demo.settings.device
    rows = [_engine_row(REFERENCE, checkpoint, "torch", "fp32", "cpu")]
    rows += [_engine_row(f"onnxruntime {p} cpu", name, "onnxruntime", p, "cpu") for p, name in EXPORTS.items()]
    if torch.cuda.is_available():
        gpu = device if device != "cpu" else "cuda"
        rows += [_engine_row(f"torch {p} {gpu}", checkpoint, "torch", p, gpu, {"device": gpu, "precision": p})
                 for p in ("fp32", "fp16")]
    if torch.cuda.is_available() and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        rows += [_engine_row(f"onnxruntime {p} cuda", name, "onnxruntime", p, "cuda", {"provider": "cuda"})
                 for p, name in EXPORTS.items()]
    return rows + _tensorrt_rows(demo)


def stage_engines(demo: Demo) -> dict:
    """Every engine this machine can run, each loaded and run once; the rest as rows saying why not."""
    from ..engines import load_engine

    rows = _candidates(demo)
    for row in rows:
        if row["status"] != "ok":
            continue
        try:
            with load_engine(demo.path(row["path"]), row["backend"], **row["options"]) as engine:
                engine.warmup(iterations=1)
        except Exception as err:  # an engine that cannot run is a row, never the end of the demo
            row["status"] = f"failed: {type(err).__name__}: {err}"
    write_json(demo.path("engines.json"), rows)
    ok = [r for r in rows if r["status"] == "ok"]
    skipped = [r["name"] for r in rows if r["status"] != "ok"]
    return {"engines": len(ok), "outputs": ["engines.json"],
            "result": f"{len(ok)} engines run" + (f"; not run: {', '.join(skipped)}" if skipped else "")}


def _runnable(demo: Demo) -> list[dict]:
    return [row for row in read_json(demo.path("engines.json")) if row["status"] == "ok"]


def stage_parity(demo: Demo) -> dict:
    """Each engine against PyTorch FP32 on the same test clips: task metric and noise floor."""
    from ..model.checkpoint import load_model
    from ..engines import load_engine
    from ..verify import ParityCheck, parity_clips, plot_per_joint

    check = ParityCheck(load_model(demo.path(CHECKPOINT)), parity_clips(demo.settings.parity_clips))
    reports = []
    for row in _runnable(demo):
        if row["name"] == REFERENCE:
            continue
        with load_engine(demo.path(row["path"]), row["backend"], **row["options"]) as engine:
            reports.append({"engine": row["name"], "device": row["device"], **check.check(engine)})
    write_json(demo.path("parity.json"), reports)
    plot_per_joint({r["engine"]: r for r in reports}, demo.path("parity.png"))
    failed = [r["engine"] for r in reports if not r["passed"]]
    return {"passed": not failed, "outputs": ["parity.json", "parity.png"],
            "result": (f"{len(reports)} engines on {len(check.clips)} clips: "
                       + (f"FAIL: {', '.join(failed)}" if failed else "all within budget and floor"))}


def stage_bench(demo: Demo) -> dict:
    """kasf.bench over the runnable engines, interleaved, at the demo's batch sizes."""
    from ..bench.run import BenchSettings, EngineSpec, run_benchmark, write_report

    settings = demo.settings
    specs = [EngineSpec(demo.path(r["path"]), None, r["options"]) for r in _runnable(demo)]   # backend by suffix
    bench = BenchSettings(batches=settings.bench_batches, warmup_s=settings.bench_warmup_s,
                          min_iterations=settings.bench_iterations, min_duration_s=settings.bench_duration_s,
                          parity_clips=0, peak_size=settings.peak_size)
    report = run_benchmark(specs, bench, log=demo.log)
    with tempfile.TemporaryDirectory(dir=demo.out, prefix=".bench.") as staging:
        written = write_report(report, staging)
        for path in written.values():           # rename into place: each file appears whole
            os.replace(path, demo.path(path.name))
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    if not ok:
        raise KasfError("the benchmark timed no engine: see bench.json for each engine's status")
    fastest = min((r for r in ok if r["batch"] == min(settings.bench_batches)),
                  key=lambda r: r["latency"]["median_ms"], default=ok[0])
    return {"outputs": ["bench.json", "bench.csv", "bench.png"],
            "result": f"fastest at batch {fastest['batch']}: {fastest['engine']} "
                      f"{fastest['latency']['median_ms']:.2f} ms median"}


_REALTIME_PREFERENCE = ("tensorrt fp16 cuda", "onnxruntime fp16 cuda", "onnxruntime fp32 cpu", REFERENCE)


def stage_realtime(demo: Demo) -> dict:
    """Replay recorded people through the streaming runtime on the best engine for this machine."""
    from ..engines import load_engine
    from ..stream.realtime import recorded_people, replay

    settings = demo.settings
    runnable = {r["name"]: r for r in _runnable(demo)}
    row = next(runnable[name] for name in _REALTIME_PREFERENCE if name in runnable)
    people, image_size = recorded_people(max(settings.people))
    with load_engine(demo.path(row["path"]), row["backend"], **row["options"]) as engine:
        runs = [replay(engine, people[:count], image_size, settings.fps, settings.replay_seconds)
                for count in settings.people]
    write_json(demo.path("realtime.json"), {"engine": row["name"], "runs": runs})
    kept = [r["people"] for r in runs if r["keeps_up"]]
    return {"engine": row["name"], "outputs": ["realtime.json"],
            "result": f"{row['name']}: keeps up with {max(kept) if kept else 0} of {list(settings.people)} people "
                      f"at {settings.fps:g} fps"}


def stage_report(demo: Demo) -> dict:
    """The renders of this run's own results and the one HTML page that shows everything."""
    data = np.load(demo.path("predictions.npz"))
    evaluation = read_json(demo.path("evaluation.json"))
    outputs = ["per_joint.png", "skeletons.png", "clip.gif", "report.html"]
    plot_per_joint(evaluation, demo.path("per_joint.png"))
    plot_skeletons(data, demo.path("skeletons.png"), demo.settings.skeleton_clips)
    animate_clip(data, demo.path("clip.gif"), demo.settings.gif_frames)
    page = render_html(demo)
    atomic_write(demo.path("report.html"), lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return {"outputs": outputs, "result": f"{demo.path('report.html')}"}


STAGES: dict[str, Callable[[Demo], dict]] = {
    "train": stage_train, "evaluate": stage_evaluate, "export": stage_export, "engines": stage_engines,
    "parity": stage_parity, "bench": stage_bench, "realtime": stage_realtime, "report": stage_report,
}


# --- renders -----------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_per_joint(evaluation: dict, path: Path) -> None:
    """Test MPJPE of each joint, a horizontal bar each."""
    from ..model.skeleton import JOINT_NAMES

    plt = _pyplot()
    values = [evaluation["per_joint"][name] for name in JOINT_NAMES]
    figure, axes = plt.subplots(figsize=(7, 5))
    bars = axes.barh(JOINT_NAMES, values, color=["#c0392b" if "right" in n else "#2471a3" if "left" in n else "#7f8c8d"
                                                 for n in JOINT_NAMES])
    axes.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    axes.invert_yaxis()
    axes.axvline(evaluation["mpjpe"], color="black", linestyle="--", linewidth=1)
    axes.set_xlim(0, 1.12 * max(values))
    axes.set_xlabel("MPJPE on the test motions (mm)")
    axes.set_title(f"error per joint, mean {evaluation['mpjpe']:.1f} mm (dashed)\nred: right side, blue: left side",
                   fontsize=10)
    figure.tight_layout()
    _save_figure(figure, path)


def _upright(pose_mm: np.ndarray) -> np.ndarray:
    """Camera coordinates (x right, y down, z away) -> plot axes (x, depth, up), in metres."""
    return np.stack([pose_mm[..., 0], pose_mm[..., 2], -pose_mm[..., 1]], axis=-1) / 1000.0


def _draw_pose(axes, pose_mm: np.ndarray, color: str, label: str | None = None) -> list:
    from ..model.skeleton import PARENTS

    pose = _upright(pose_mm)
    lines = []
    for joint, parent in enumerate(PARENTS):
        if parent < 0:
            continue
        (line,) = axes.plot(*zip(pose[parent], pose[joint]), color=color, linewidth=2,
                            label=label if not lines else None)
        lines.append(line)
    return lines


def _frame_axes(axes, poses_mm: np.ndarray, title: str) -> None:
    points = _upright(poses_mm).reshape(-1, 3)
    centre, radius = (points.max(0) + points.min(0)) / 2, max(0.5, float((points.max(0) - points.min(0)).max()) / 2)
    for setter, middle in zip((axes.set_xlim, axes.set_ylim, axes.set_zlim), centre):
        setter(middle - radius, middle + radius)
    axes.set_box_aspect((1, 1, 1))
    axes.view_init(elev=12, azim=-70)
    axes.set_xlabel("x (m)", fontsize=7)
    axes.set_ylabel("depth (m)", fontsize=7)
    axes.set_zlabel("up (m)", fontsize=7)
    axes.tick_params(labelsize=6)
    axes.set_title(title, fontsize=9)


def _clip_choice(data, count: int) -> list[int]:
    """One clip per test motion (its middle clip), up to count."""
    chosen = []
    for action in dict.fromkeys(data["action"].tolist()):
        indices = np.flatnonzero(data["action"] == action)
        chosen.append(int(indices[len(indices) // 2]))
    return chosen[:count]


def plot_skeletons(data, path: Path, count: int) -> None:
    """Predicted (red) against true (black) 3D poses at the middle frame of a few test clips."""
    plt = _pyplot()
    chosen = _clip_choice(data, count)
    figure = plt.figure(figsize=(4 * len(chosen), 4.4))
    for column, index in enumerate(chosen):
        predicted, true = data["predicted_mm"][index], data["true_mm"][index]
        frame = len(true) // 2
        error = float(np.linalg.norm(predicted - true, axis=-1).mean())
        axes = figure.add_subplot(1, len(chosen), column + 1, projection="3d")
        _draw_pose(axes, true[frame], "black", "true")
        _draw_pose(axes, predicted[frame], "#d62728", "predicted")
        _frame_axes(axes, np.stack([true[frame], predicted[frame]]),
                    f"{data['action'][index]} ({data['source'][index]})\nclip MPJPE {error:.0f} mm")
        if column == 0:
            axes.legend(loc="upper left", fontsize=7)
    figure.suptitle("test clips: predicted (red) vs motion capture (black), middle frame")
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    _save_figure(figure, path)


def _sequence_frames(data, frames: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Consecutive test clips of the longest test sequence (test clips do not overlap), joined: up to
    `frames` frames."""
    names, counts = np.unique(data["source"], return_counts=True)
    name = names[np.argmax(counts)]
    indices = np.flatnonzero(data["source"] == name)
    predicted = np.concatenate(data["predicted_mm"][indices])[:frames]
    true = np.concatenate(data["true_mm"][indices])[:frames]
    return predicted, true, str(name)


def animate_clip(data, path: Path, frames: int, fps: float = 15.0) -> None:
    """An animated GIF of one test sequence, predicted against true (matplotlib.animation, Pillow)."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt = _pyplot()
    predicted, true, name = _sequence_frames(data, frames)
    figure = plt.figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot(projection="3d")

    def draw(frame: int) -> list:
        axes.cla()
        _draw_pose(axes, true[frame], "black", "true")
        lines = _draw_pose(axes, predicted[frame], "#d62728", "predicted")
        error = float(np.linalg.norm(predicted[frame] - true[frame], axis=-1).mean())
        _frame_axes(axes, np.stack([true, predicted]), f"{name}, frame {frame + 1}/{len(true)}: {error:.0f} mm")
        axes.legend(loc="upper left", fontsize=7)
        return lines

    animation = FuncAnimation(figure, draw, frames=len(true), blit=False)

    def save(tmp: str) -> None:
        staged = tmp + ".gif"        # Pillow picks the format from the suffix
        try:
            animation.save(staged, writer=PillowWriter(fps=fps), dpi=80)
            os.replace(staged, tmp)
        finally:
            Path(staged).unlink(missing_ok=True)

    atomic_write(path, save)
    plt.close(figure)


# --- the page ----------------------------------------------------------------------------------

def html_table(headers: list[str], rows: list[list[Any]], digits: int = 2) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(format_cell(v, digits))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:14px}th,td{border:1px solid #ccc;padding:3px 8px}
td{text-align:right}td:first-child{text-align:left}th{background:#f0f0f0}img{max-width:100%;border:1px solid #ddd}
.note{color:#666;font-size:13px}"""


def render_html(demo: Demo) -> str:
    from ..model.skeleton import JOINT_NAMES
    from ..verify.report import SUMMARY_COLUMNS, summary_row

    evaluation = read_json(demo.path("evaluation.json"))
    engines = read_json(demo.path("engines.json"))
    parity = read_json(demo.path("parity.json"))
    bench = read_json(demo.path("bench.json"))
    realtime = read_json(demo.path("realtime.json"))
    train = demo.results.get("train", {})
    settings = demo.settings
    overall = [["clips", evaluation["clips"]], ["MPJPE (mm)", evaluation["mpjpe"]],
               ["P-MPJPE (mm)", evaluation["p_mpjpe"]], ["upper body (mm)", evaluation["upper_body"]],
               ["lower body (mm)", evaluation["lower_body"]],
               ["acceleration error (mm/frame²)", evaluation.get("acceleration_error")]]
    motions = [[a, v, evaluation["per_action_p_mpjpe"][a]] for a, v in evaluation["per_action_mpjpe"].items()]
    joints = [[name, evaluation["per_joint"][name]] for name in JOINT_NAMES]
    parity_rows = [summary_row(r["engine"], r) for r in parity]
    engine_rows = [[r["name"], r["backend"], r["precision"], r["device"], r["path"], r["status"]] for r in engines]
    bench_rows = [[r["engine"], r.get("precision"), r.get("device"), r["status"], r.get("batch"),
                   r.get("latency", {}).get("median_ms"), r.get("latency", {}).get("p99_ms"), r.get("clips_per_s"),
                   r.get("frames_per_s"), r.get("gflops_per_s")] for r in bench["rows"]]
    replay_rows = [[r["people"], r["fps"], r["mode"], r["frames"], r["dropped"], r["engine_p50_ms"],
                    r["total_p50_ms"], r["total_p99_ms"], 1e3 / r["fps"], r["keeps_up"]] for r in realtime["runs"]]
    stage_rows = [[name, (demo.results.get(name) or {}).get("result", "")] for name in STAGES if name != "report"]
    env = bench["environment"]
    machine = f"{env['cpu']}, {env['usable_cpus']} CPUs" + (f", {env['gpus'][0]['name']}" if env["gpus"] else "")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kasf demo report</title><style>{_STYLE}</style></head><body>
<h1>kasf demo: KASportsFormer on the embedded motion capture</h1>
<p>Preset <b>{html.escape(settings.preset)}</b> ({train.get('parameters', 0):,} parameters) trained for up to
{settings.minutes:g} min on {html.escape(settings.device)}: {html.escape(train.get('result', ''))}.
Test motions were never seen in training. Machine: {html.escape(machine)}. Written {when}.</p>
<h2>Stages</h2>
{html_table(["stage", "result"], stage_rows)}
<h2>Accuracy on the test motions</h2>
{html_table(["metric", "value"], overall)}
<h3>Per motion</h3>
{html_table(["motion", "MPJPE (mm)", "P-MPJPE (mm)"], motions)}
<h3>Per joint</h3>
<img src="per_joint.png" alt="MPJPE per joint">
<details><summary>per-joint table</summary>{html_table(["joint", "MPJPE (mm)"], joints)}</details>
<h3>Predicted against true poses</h3>
<img src="skeletons.png" alt="3D skeletons, predicted and true, of test clips">
<p><img src="clip.gif" alt="animated test sequence, predicted and true"></p>
<h2>Engines</h2>
{html_table(["engine", "backend", "precision", "device", "file", "status"], engine_rows)}
<h2>Parity against PyTorch FP32 (mm)</h2>
<p class="note">Per-joint deviation from the reference beside the reference's own noise floor (PyTorch FP32
against itself at another batch split and under rounding noise of the engine's precision), and the
difference in MPJPE against the ground truth with its paired bootstrap 95% interval over sequences.
An engine passes when both intervals lie within the budget and its deviation within the floor.</p>
{html_table(list(SUMMARY_COLUMNS), parity_rows, 4)}
{"".join(f'<p class="note">{html.escape(r["engine"])}: {html.escape(r["explanation"])}</p>' for r in parity)}
<img src="parity.png" alt="parity per joint: deviation, floor and MPJPE difference">
<h2>Benchmark</h2>
<p class="note">Interleaved timing (kasf bench), batches {', '.join(map(str, settings.bench_batches))},
at least {settings.bench_duration_s:g} s per batch; latency end to end (numpy in, numpy out).</p>
{html_table(["engine", "precision", "device", "status", "batch", "p50 ms", "p99 ms", "clips/s", "frames/s",
             "GFLOP/s"], bench_rows)}
<img src="bench.png" alt="benchmark: latency and throughput against batch">
{"".join(f'<p class="note">note: {html.escape(n)}</p>' for n in bench["notes"])}
<h2>Streaming runtime</h2>
<p class="note">{html.escape(realtime['engine'])} replaying recorded people at {settings.fps:g} fps for
{settings.replay_seconds:g} s each (causal mode); latency in ms; it keeps up when the p99 total latency is
within the frame budget and at most 1% of frames are dropped.</p>
{html_table(["people", "fps", "mode", "frames", "dropped", "engine p50", "total p50", "total p99", "budget",
             "keeps up"], replay_rows)}
</body></html>
"""


# --- running the stages ------------------------------------------------------------------------

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


# --- command line ------------------------------------------------------------------------------

EXAMPLES = """examples:
  kasf demo --quick                       about 5 minutes on a laptop CPU; open runs/demo/report.html
  kasf demo --minutes 30 --out runs/demo30
  kasf demo --quick --force               redo every stage
  kasf demo --device cuda --out runs/demo-gpu
"""


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    from ..model.config import PRESETS

    parser.add_argument("--quick", action="store_true",
                        help="about 2 minutes of training and short timings: the whole demo well under 10 minutes "
                             "on a 2-core CPU")
    parser.add_argument("--out", default="runs/demo", help="where everything goes, report.html too (default runs/demo)")
    parser.add_argument("--force", action="store_true", help="redo every stage, even those finished in --out")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model preset (default small)")
    parser.add_argument("--minutes", type=float,
                        help="training budget in minutes (default 15; 2 with --quick)")
    parser.add_argument("--device", default="cpu", help="torch device for training and the PyTorch engine (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    # Internal knobs, for the tests' tiny runs.
    hidden = argparse.SUPPRESS
    parser.add_argument("--steps-per-epoch", type=int, help=hidden)
    parser.add_argument("--parity-clips", type=int, help=hidden)
    parser.add_argument("--bench-duration", type=float, help=hidden)
    parser.add_argument("--bench-warmup", type=float, help=hidden)
    parser.add_argument("--bench-iterations", type=int, help=hidden)
    parser.add_argument("--peak-size", type=int, help=hidden)
    parser.add_argument("--people", type=int, nargs="+", help=hidden)
    parser.add_argument("--replay-seconds", type=float, help=hidden)
    parser.add_argument("--gif-frames", type=int, help=hidden)
    parser.add_argument("--test-every", type=int, help=hidden)


def settings_from_arguments(args: argparse.Namespace) -> DemoSettings:
    given = {"preset": args.preset, "device": args.device, "progress": not args.no_progress,
             "minutes": args.minutes, "steps_per_epoch": args.steps_per_epoch, "parity_clips": args.parity_clips,
             "bench_duration_s": args.bench_duration, "bench_warmup_s": args.bench_warmup,
             "bench_iterations": args.bench_iterations, "peak_size": args.peak_size,
             "people": tuple(args.people) if args.people else None, "replay_seconds": args.replay_seconds,
             "gif_frames": args.gif_frames, "test_every": args.test_every}
    given = {key: value for key, value in given.items() if value is not None}
    settings = DemoSettings.quick(**given) if args.quick else DemoSettings(**given)
    if settings.minutes <= 0:
        raise KasfError(f"--minutes must be positive, got {settings.minutes:g}")
    if min(settings.people) < 1 or min(settings.parity_clips, settings.gif_frames, settings.test_every) < 1:
        raise KasfError("people, parity clips, GIF frames and --test-every must be at least 1")
    if settings.device != "cpu" and not torch.cuda.is_available():
        raise KasfError(f"--device {settings.device} asked for, but this torch ({torch.__version__}) sees no CUDA "
                        "device: use --device cpu")
    return settings


def demo_from_arguments(args: argparse.Namespace) -> int:
    settings = settings_from_arguments(args)
    started = time.perf_counter()
    rows = run_demo(args.out, settings, force=args.force)
    print(format_summary(rows, f"kasf demo ({settings.preset} preset, {settings.minutes:g} min of training) in "
                               f"{Path(args.out)}: {time.perf_counter() - started:.0f} s"))
    print(f"open {Path(args.out).resolve() / 'report.html'}")
    return 0
