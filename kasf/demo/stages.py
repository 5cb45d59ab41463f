"""The demo's stages, in order: each reads what earlier ones wrote in --out, writes its own outputs
atomically and returns its summary (the "result" line and the "outputs" a rerun checks are there)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..errors import KasfError
from ..files import atomic_write, write_json
from .page import render_html
from .render import animate_clip, plot_per_joint, plot_skeletons

if TYPE_CHECKING:
    from ..engines.variants import ModelFiles
    from .run import Demo

CHECKPOINT = Path("train") / "best.pt"
SAMPLES = Path(__file__).parent / "samples"
SAMPLE_DETECTIONS, SAMPLE_VIDEO = SAMPLES / "balancing_cam01", SAMPLES / "balancing_cam01.mp4"
LIFT_OUTPUTS = ("lift/poses.trc", "lift/poses.npz", "lift/lifted.mp4")
EXPORT_PRECISIONS = ("fp32", "fp16")
REFERENCE = "torch fp32 cpu"          # the engine every other one is compared with


def stage_train(demo: Demo) -> dict:
    """Train the preset from scratch for the time budget on 2D with the settings' detector errors;
    best validation weights in train/best.pt."""
    from ..model.config import resolve_config
    from ..data.mocap import DETECTOR_ERRORS
    from ..data.splits import load_splits
    from ..model.kasportsformer import build_model
    from ..train.trainer import TrainConfig, fit

    settings, run = demo.settings, demo.path("train")
    if run.exists():
        shutil.rmtree(run)      # an interrupted training: start again, the budget is the stage's
    config = resolve_config(settings.preset)
    splits = load_splits("mocap", n_frames=config.n_frames,
                         detector_errors=DETECTOR_ERRORS[settings.detector_errors])
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
            "detector_errors": settings.detector_errors,
            "result": f"{len(result.history)} epochs ({result.stopped}) with {settings.detector_errors} detector "
                      f"errors; best validation MPJPE {result.best_metric:.1f} mm at epoch {result.best_epoch + 1}"}


def stage_evaluate(demo: Demo) -> dict:
    """The paper's metrics on the test motions; predictions (mm) kept for the renders."""
    from ..model.checkpoint import load_model
    from ..train.evaluate import predict
    from ..train.metrics import error_tables

    model = load_model(demo.path(CHECKPOINT), device=demo.settings.device)
    clips = demo.clips().select(slice(None, None, demo.settings.test_every))
    predicted = clips.to_millimetres(predict(model, clips, device=demo.settings.device))
    report = error_tables(predicted, clips.poses_mm, clips.action)
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


def _files(demo: Demo, reuse: bool) -> "ModelFiles":
    from ..engines.variants import ModelFiles

    return ModelFiles(demo.path(CHECKPOINT), demo.out, reuse=reuse, log=demo.log)


def stage_export(demo: Demo) -> dict:
    """Fused ONNX graphs in FP32 and strongly typed FP16 (export_onnx writes atomically)."""
    files = _files(demo, reuse=False)
    paths = {precision: files.onnx(precision) for precision in EXPORT_PRECISIONS}
    sizes = {precision: path.stat().st_size / 1e6 for precision, path in paths.items()}
    return {"size_mb": sizes, "outputs": [path.name for path in paths.values()],
            "result": ", ".join(f"{paths[p].name} {sizes[p]:.2f} MB" for p in paths)}


def stage_engines(demo: Demo) -> dict:
    """Every primary variant of every backend this machine can run, each loaded and run once; the
    backends it cannot run as rows saying why not."""
    from ..engines.variants import machine_variants

    variants, unavailable = machine_variants(_files(demo, reuse=True), roles=("primary",))
    rows = [variant.row(relative_to=demo.out) for variant in variants]
    rows += [{"name": backend, "path": None, "backend": backend, "precision": "-", "device": "-", "options": {},
              "status": f"skipped: {why}", "streaming_rank": None} for backend, why in unavailable.items()]
    for row in rows:
        if row["status"] != "ok":
            continue
        try:
            with _open(demo, row) as engine:
                engine.warmup(iterations=1)
        except Exception as err:  # an engine that cannot run is a row, never the end of the demo
            row["status"] = f"failed: {type(err).__name__}: {err}"
    write_json(demo.path("engines.json"), rows)
    ok = [r for r in rows if r["status"] == "ok"]
    skipped = [r["name"] for r in rows if r["status"] != "ok"]
    return {"engines": len(ok), "outputs": ["engines.json"],
            "result": f"{len(ok)} engines run" + (f"; not run: {', '.join(skipped)}" if skipped else "")}


def _open(demo: Demo, row: dict):
    from ..engines import load_engine

    return load_engine(demo.path(row["path"]), row["backend"], **row["options"])


def _runnable(demo: Demo) -> list[dict]:
    return [row for row in demo.read("engines.json") if row["status"] == "ok"]


def stage_parity(demo: Demo) -> dict:
    """Each engine against PyTorch FP32 on the same test clips: task metric and noise floor."""
    from ..model.checkpoint import load_model
    from ..verify import ParityCheck, parity_clips, plot_per_joint

    check = ParityCheck(load_model(demo.path(CHECKPOINT)), parity_clips(demo.settings.parity_clips))
    reports = []
    for row in _runnable(demo):
        if row["name"] == REFERENCE:
            continue
        with _open(demo, row) as engine:
            reports.append({"engine": row["name"], "device": row["device"], **check.check(engine)})
    write_json(demo.path("parity.json"), reports)
    plot_per_joint({r["engine"]: r for r in reports}, demo.path("parity.png"))
    failed = [r["engine"] for r in reports if not r["passed"]]
    return {"passed": not failed, "outputs": ["parity.json", "parity.png"],
            "result": (f"{len(reports)} engines on {len(check.clips)} clips: "
                       + (f"FAIL: {', '.join(failed)}" if failed else "all within budget and floor"))}


def stage_bench(demo: Demo) -> dict:
    """kasf.bench over the runnable engines, interleaved, at the demo's batch sizes."""
    from ..bench import BenchSettings, EngineSpec, run_benchmark, write_report

    settings = demo.settings
    specs = [EngineSpec(demo.path(r["path"]), None, r["options"]) for r in _runnable(demo)]   # backend by suffix
    bench = BenchSettings(batches=settings.bench_batches, warmup_s=settings.bench_warmup_s,
                          min_iterations=settings.bench_iterations, min_duration_s=settings.bench_duration_s,
                          parity_clips=0, peak_size=settings.peak_size)
    report = run_benchmark(specs, bench, log=demo.log)
    write_report(report, demo.out)
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    if not ok:
        raise KasfError("the benchmark timed no engine: see bench.json for each engine's status")
    fastest = min((r for r in ok if r["batch"] == min(settings.bench_batches)),
                  key=lambda r: r["latency"]["median_ms"], default=ok[0])
    return {"outputs": ["bench.json", "bench.csv", "bench.png"],
            "result": f"fastest at batch {fastest['batch']}: {fastest['engine']} "
                      f"{fastest['latency']['median_ms']:.2f} ms median"}


def _streaming_engine(demo: Demo) -> dict:
    """The runnable engine ranked best for streaming on this machine."""
    return min((r for r in _runnable(demo) if r.get("streaming_rank") is not None), key=lambda r: r["streaming_rank"])


def stage_realtime(demo: Demo) -> dict:
    """Replay recorded people through the streaming runtime on the best engine for this machine:
    causal stride 1, then lag 0, stride 27 with the engine worker."""
    from ..stream.realtime import recorded_people, replay_people

    settings = demo.settings
    row = _streaming_engine(demo)
    people, image_size = recorded_people(max(*settings.people, *settings.strided_people))
    with _open(demo, row) as engine:
        runs = [replay_people(engine, people[:count], image_size, settings.fps, settings.replay_seconds)
                for count in settings.people]
        strided = [replay_people(engine, people[:count], image_size, settings.fps, settings.replay_seconds,
                                 lag=0, stride=engine.n_frames, worker=True) for count in settings.strided_people]
    write_json(demo.path("realtime.json"), {"engine": row["name"], "runs": runs + strided})

    def most(reports: list[dict]) -> int:
        return max([r["people"] for r in reports if r["keeps_up"]], default=0)

    return {"engine": row["name"], "outputs": ["realtime.json"],
            "result": f"{row['name']} at {settings.fps:g} fps: causal keeps up with {most(runs)} of "
                      f"{list(settings.people)} people; lag 0, stride 27 with the worker {most(strided)} of "
                      f"{list(settings.strided_people)}"}


def stage_latency(demo: Demo) -> dict:
    """Streamed accuracy against latency for a grid of lag and stride (kasf.stream.accuracy)."""
    from ..stream.accuracy import latency_accuracy, mocap_test_frames, parse_setting, plot_latency_accuracy

    settings = demo.settings
    row = _streaming_engine(demo)
    frames = mocap_test_frames(settings.latency_sequences)
    with _open(demo, row) as engine:
        rows = latency_accuracy(engine, [parse_setting(text) for text in settings.latency_settings], frames)
    write_json(demo.path("latency_accuracy.json"), {"engine": row["name"], "rows": rows})
    plot_latency_accuracy(rows, demo.path("latency_accuracy.png"),
                          f"{row['name']}: {rows[0]['frames']} streamed test frames")
    best = min(rows, key=lambda r: r["mpjpe_mm"])
    return {"engine": row["name"], "outputs": ["latency_accuracy.json", "latency_accuracy.png"],
            "result": f"{len(rows)} settings over {rows[0]['frames']} streamed frames; lowest MPJPE "
                      f"{best['mpjpe_mm']:.1f} mm at {best['setting']}"}


def stage_lift(demo: Demo) -> dict:
    """kasf lift on real detector output: the sample's OpenPose folder (Pose2Sim's, BODY_25B, no
    ids) and its video, tracked, lifted centred, written as TRC and NPZ, and rendered."""
    from ..lift import lift

    row = _streaming_engine(demo)
    trc, npz, video = (demo.path(name) for name in LIFT_OUTPUTS)
    with _open(demo, row) as engine:
        result, written = lift(SAMPLE_DETECTIONS, engine, [trc, npz], video=SAMPLE_VIDEO, render=video,
                               progress=False)
    found = result.detections
    summary = {"engine": row["name"], "detections": SAMPLE_DETECTIONS.name, "format": found.format,
               "layout": found.layout.title, "frames": len(found.frames), "tracks": len(result.track_ids),
               "fps": result.fps, "image_size": list(result.image_size), "notes": result.notes,
               "scale": result.scale_note(), "written": [str(path.relative_to(demo.out)) for path in written]}
    write_json(demo.path("lift/lift.json"), summary)
    return {"engine": row["name"], "outputs": ["lift/lift.json", "lift/poses.npz", "lift/lifted.mp4"],
            "result": f"{found.format} {found.layout.title}, {len(found.frames)} frames: {len(result.track_ids)} "
                      f"tracks lifted, {len(written)} files"}


def stage_report(demo: Demo) -> dict:
    """The renders of this run's own results and the one HTML page that shows everything."""
    data = np.load(demo.path("predictions.npz"))
    evaluation = demo.read("evaluation.json")
    outputs = ["per_joint.png", "skeletons.png", "clip.gif", "report.html"]
    plot_per_joint(evaluation, demo.path("per_joint.png"))
    plot_skeletons(data, demo.path("skeletons.png"), demo.settings.skeleton_clips)
    animate_clip(data, demo.path("clip.gif"), demo.settings.gif_frames)
    page = render_html(demo)
    atomic_write(demo.path("report.html"), lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return {"outputs": outputs, "result": f"{demo.path('report.html')}"}


STAGES: dict[str, Callable[[Demo], dict]] = {
    "train": stage_train, "evaluate": stage_evaluate, "export": stage_export, "engines": stage_engines,
    "parity": stage_parity, "bench": stage_bench, "realtime": stage_realtime, "latency": stage_latency,
    "lift": stage_lift, "report": stage_report,
}

