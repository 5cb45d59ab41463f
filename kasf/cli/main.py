"""The `kasf` command line: thin subcommands over library calls.

Exit codes: 0 success, 1 a kasf error (bad input, file or config; the message says which),
2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from .. import __version__
from ..model.checkpoint import build_from_checkpoint, convert_authors_checkpoint, read_checkpoint, unused_authors_parameters
from ..model.config import PRESETS
from ..data.mocap import DEFAULT_CAMERAS
from ..errors import KasfError
from ..model.kasportsformer import build_model, count_parameters

EXAMPLES = """examples:
  kasf info --preset paper
  kasf info checkpoint.pt
  kasf convert their_best.pth --config their_config.yaml -o kasf_model.pt
  kasf train --preset small --time-limit 15 --out runs/mocap
  kasf train --data sportspose.pkl --preset paper --epochs 800 --out runs/sp
  kasf train --out runs/mocap --resume
  kasf eval runs/mocap/best.pt --flip --json runs/mocap/test.json
  kasf export --checkpoint runs/mocap/best.pt -o model_fp16.onnx --fp16
  kasf export --checkpoint runs/mocap/best.pt -o model.pt2 --aoti
  kasf build model_fp16.onnx -o model_fp16.engine --max-batch 256 --timing-cache trt.cache
  kasf parity --engine model_fp16.engine --reference runs/mocap/best.pt --json parity.json
  kasf parity --engine runs/mocap/best.pt --device cuda --precision fp16 --cuda-graphs
  kasf export-triton model_fp16.engine --repository triton_models --instances 2 --preferred-batch 8 16
  kasf bench --checkpoint runs/mocap/best.pt --batch 1 8 32 128 --threads 2
  kasf realtime --engine model_fp16.engine --fps 60 --mode centred --people 1 8 32
  kasf replay model.pt2 --keypoints capture.csv --image-size 1920 1080 -o poses.csv
  kasf demo --quick --out runs/demo
"""


def cmd_info(args: argparse.Namespace) -> int:
    if args.checkpoint:
        checkpoint = read_checkpoint(args.checkpoint, args.config)
        model = build_from_checkpoint(checkpoint)
        print(f"checkpoint     {args.checkpoint}")
        for key, value in checkpoint.source.items():
            print(f"  {'source.' + key:<24}{value}")
    else:
        model = build_model(args.preset).eval()
        print(f"preset         {args.preset}")
    config = model.config
    for key, value in config.to_dict().items():
        print(f"  {key:<24}{value}")
    total = count_parameters(model)
    print(f"parameters     {total:,} (the authors' code builds {total + unused_authors_parameters(config):,}: "
          f"{unused_authors_parameters(config):,} more in LayerNorms no output depends on)")
    for name in ("limb_fus", "blocks", "head"):
        print(f"  {name:<12} {count_parameters(getattr(model, name)):,}")
    if args.threads:
        torch.set_num_threads(args.threads)
    clip = torch.zeros(args.batch, config.n_frames, 17, 3)
    clip[..., 2] = 1.0
    with torch.inference_mode():
        model(clip)
        timings = []
        for _ in range(args.runs):
            start = time.perf_counter()
            model(clip)
            timings.append(time.perf_counter() - start)
    timings.sort()
    print(f"forward        batch {args.batch}, {args.runs} runs on CPU ({torch.get_num_threads()} threads): "
          f"median {1e3 * timings[len(timings) // 2]:.1f} ms, min {1e3 * timings[0]:.1f} ms")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    path = convert_authors_checkpoint(args.checkpoint, args.config, args.output)
    model = build_from_checkpoint(read_checkpoint(path))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {count_parameters(model):,} parameters)")
    return 0


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="mocap",
                      help="'mocap' (the embedded motion capture, default) or an authors'-format pickle")
    data.add_argument("--dataset", choices=["sportspose", "worldpose"],
                      help="resolution table of a pickle (default: SportsPose if it has camera names)")
    data.add_argument("--validation-fraction", type=float, default=0.1,
                      help="share of a pickle's training sequences held out for validation (default 0.1)")
    data.add_argument("--split-seed", type=int, default=0, help="seed of that hold-out (default 0)")
    data.add_argument("--motion-dir", help="DeepMimic motion directory (default: the installed pybullet_data)")
    data.add_argument("--cameras", type=int, default=DEFAULT_CAMERAS,
                      help=f"virtual cameras per motion (mocap; default {DEFAULT_CAMERAS})")
    data.add_argument("--noise-px", type=float, default=0.0,
                      help="detector-like 2D noise in pixels (mocap; default 0: ground-truth 2D)")


def _load_splits(args: argparse.Namespace, n_frames: int):
    from ..data.splits import load_splits

    mocap = {"motion_dir": args.motion_dir, "cameras_per_motion": args.cameras, "noise_px": args.noise_px}
    if args.data != "mocap":
        mocap = {}
    splits = load_splits(args.data, args.dataset, n_frames, args.validation_fraction, args.split_seed, **mocap)
    if os.environ.get("RANK", "0") == "0":
        for note in splits.notes:
            print(f"note: {note}", file=sys.stderr)
    return splits


def cmd_train(args: argparse.Namespace) -> int:
    from ..model.checkpoint import read_checkpoint_payload
    from ..model.config import ModelConfig, resolve_config
    from ..train.fit import LAST, TrainConfig, fit

    out = Path(args.out)
    if args.resume:
        config = ModelConfig.from_dict(read_checkpoint_payload(out / LAST)["config"])
    else:
        config = resolve_config(args.config or args.preset)
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=args.warmup_epochs,
        seed=args.seed, num_workers=args.workers,
        flip=not args.no_flip, steps_per_epoch=args.steps_per_epoch,
        time_limit_s=None if args.time_limit is None else 60 * args.time_limit)
    splits = _load_splits(args, config.n_frames)
    main_process = os.environ.get("RANK", "0") == "0"
    log = print if main_process else (lambda message: None)
    log(f"clips: train {len(splits.train)}, validation {len(splits.validation)}, test {len(splits.test)}")
    torch.manual_seed(args.seed)
    model = build_model(config)
    result = fit(model, splits, train_config, out, resume=args.resume, device=args.device,
                 progress=not args.no_progress, log=log)
    log(f"stopped by {result.stopped}; best validation MPJPE {result.best_metric:.2f} at epoch "
          f"{result.best_epoch + 1}; checkpoints in {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..model.checkpoint import load_model
    from ..train.evaluate import evaluate_clips, format_report

    model = load_model(args.checkpoint, args.config, device=args.device)
    splits = _load_splits(args, model.config.n_frames)
    clips = getattr(splits, args.split)
    report = evaluate_clips(model, clips, flip=args.flip, device=args.device)
    print(format_report(report, f"{args.checkpoint} on {args.data} {args.split}{' (test-time flip)' if args.flip else ''}"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    from ..export.onnx import ATTENTION_OP_OPSET, DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    parser.add_argument("--checkpoint", required=True, help="a kasf or authors' checkpoint")
    parser.add_argument("--config", help="the authors' YAML (for their checkpoints)")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write (.pt2 with --aoti)")
    parser.add_argument("--aoti", action="store_true",
                        help="an AOTInductor package (.pt2, FP32) for the C++ runtime instead of an ONNX graph")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="--aoti: the device to compile for (default cpu)")
    parser.add_argument("--fp16", action="store_true", help="strongly typed FP16 graph (FP32 IO and islands)")
    parser.add_argument("--opset", type=int,
                        help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET}, "
                             f"{ATTENTION_OP_OPSET} with --attention sdpa)")
    parser.add_argument("--max-batch", type=int, default=1024, help="largest batch the graph accepts")
    parser.add_argument("--attention", choices=["matmul", "sdpa"], default="matmul",
                        help="matmul: MatMul-Softmax-MatMul on 4-D heads, the form TensorRT fuses (default); "
                             "sdpa: the ONNX Attention op on 3-D sequences, ONNX Runtime's fastest form")
    parser.add_argument("--compare-plain", action="store_true",
                        help="also export the unfused model and print both op histograms")
    parser.add_argument("--parity-clips", type=int, default=64, help="clips for the parity check (default 64)")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity check")
    add_budget_argument(parser)
    parser.add_argument("--report", help="write the export report (JSON) here")


def cmd_export(args: argparse.Namespace) -> int:
    from ..model.checkpoint import read_checkpoint
    from ..export.onnx import export_onnx, op_histogram, plain_graph
    from ..table import render_table

    budgets = parse_budgets(args.budget)
    checkpoint = read_checkpoint(args.checkpoint, args.config)
    if args.aoti:
        return _export_aoti(checkpoint, args, budgets)
    result = export_onnx(checkpoint, args.output, fp16=args.fp16, opset=args.opset, max_batch=args.max_batch,
                         use_sdpa=args.attention == "sdpa")
    report = {"path": str(result.path), "precision": result.precision, "opset": result.opset,
              "size_mb": result.size_bytes / 1e6, "nodes": result.nodes, "op_counts": result.op_counts}
    print(f"wrote {result.path}: {result.precision}, opset {result.opset}, {result.size_bytes / 1e6:.1f} MB, "
          f"{result.nodes} nodes")
    if args.compare_plain:
        plain = op_histogram(plain_graph(build_from_checkpoint(checkpoint), result.opset))
        report["plain_op_counts"], report["plain_nodes"] = plain, sum(plain.values())
        ops = sorted(set(plain) | set(result.op_counts), key=lambda op: -plain.get(op, 0) - result.op_counts.get(op, 0))
        rows = [(op, plain.get(op, 0), result.op_counts.get(op, 0)) for op in ops]
        rows.append(("total", report["plain_nodes"], result.nodes))
        print(render_table(["op", "plain export", "kasf fused"], rows,
                           title=f"nodes by op type: {100 * (1 - result.nodes / report['plain_nodes']):.1f}% fewer"))
    return _check_and_report(checkpoint, result.path, report, args, budgets)


def _export_aoti(checkpoint, args: argparse.Namespace, budgets: dict[str, float]) -> int:
    from ..export.aoti import export_aoti

    onnx_only = [flag for flag, given in (("--fp16", args.fp16), ("--compare-plain", args.compare_plain),
                                          ("--attention sdpa", args.attention == "sdpa"),
                                          ("--opset", args.opset is not None)) if given]
    if onnx_only:
        raise KasfError(f"{', '.join(onnx_only)} apply to ONNX graphs, not to --aoti packages (FP32)")
    result = export_aoti(checkpoint, args.output, max_batch=args.max_batch, device=args.device)
    print(f"wrote {result.path}: AOTInductor package, fp32, {result.device}, batch 1 to {result.max_batch}, "
          f"{result.size_bytes / 1e6:.1f} MB")
    report = {"path": str(result.path), "precision": "fp32", "aoti_device": result.device,
              "size_mb": result.size_bytes / 1e6, "max_batch": result.max_batch}
    return _check_and_report(checkpoint, result.path, report, args, budgets)


def _check_and_report(checkpoint, path: Path, report: dict, args: argparse.Namespace,
                      budgets: dict[str, float]) -> int:
    """The end of both exports: the parity check (unless --no-parity), the JSON report, the exit code."""
    if not args.no_parity:
        report["parity"] = _export_parity(checkpoint, path, args.parity_clips, budgets)
    if args.report:
        write_json(args.report, report)
        print(f"wrote {args.report}")
    return 0 if report.get("parity", {}).get("passed", True) else 1


def _export_parity(checkpoint, path: Path, n_clips: int, budgets: dict[str, float]) -> dict:
    """The exported file, run by its backend, against PyTorch FP32 on real clips (the embedded
    motion capture's test split): the task metric and the reference's noise floor."""
    from ..engines import load_engine
    from ..verify import ParityCheck, format_parity, parity_clips

    try:
        clips = parity_clips(n_clips, checkpoint.config.n_frames)
    except KasfError as err:
        print(f"parity skipped: no real clips to compare on ({err})")
        return {}
    with load_engine(path) as engine:
        parity = ParityCheck(build_from_checkpoint(checkpoint), clips, budgets=budgets).check(engine)
    print(format_parity([{**parity, "engine": path.name}],
                        title=f"parity against PyTorch FP32 on {len(clips)} motion-capture test clips (mm)"))
    return parity


def write_json(path: str | Path, value) -> Path:
    """A JSON report, written atomically (never half a file)."""
    from ..files import atomic_write

    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=2, default=str)))


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    from ..verify import BUDGETS_MM

    defaults = ", ".join(f"{p} {v:g}" for p, v in BUDGETS_MM.items())
    parser.add_argument("--budget", nargs="+", default=[], metavar="[PRECISION=]MM",
                        help="largest MPJPE / P-MPJPE difference from PyTorch FP32 an engine may cost, in mm: one "
                             f"value for every precision, or PRECISION=MM each (defaults: {defaults})")


def parse_budgets(values: list[str]) -> dict[str, float]:
    """--budget 0.2 (every precision) or --budget fp16=0.2 int8=1 -> {precision: mm}."""
    from ..verify import BUDGETS_MM

    budgets: dict[str, float] = {}
    for value in values:
        precision, _, number = value.rpartition("=")
        try:
            mm = float(number)
        except ValueError:
            raise KasfError(f"--budget {value!r}: expected MM or PRECISION=MM with MM a number of millimetres") from None
        if precision and precision not in BUDGETS_MM:
            raise KasfError(f"--budget {value!r}: unknown precision {precision!r} (known: {', '.join(BUDGETS_MM)})")
        if not mm >= 0:
            raise KasfError(f"--budget {value!r}: a budget is a distance in mm, at least 0")
        budgets.update({precision: mm} if precision else dict.fromkeys(BUDGETS_MM, mm))
    return budgets


def add_triton_arguments(parser: argparse.ArgumentParser) -> None:
    from ..serve.triton import DEFAULT_NAME, DEFAULT_ONNX_MAX_BATCH, DEFAULT_QUEUE_DELAY_US, KINDS

    parser.add_argument("model", help="the .engine/.plan (with its sidecar JSON) or .onnx file")
    parser.add_argument("--repository", required=True, help="the model repository directory")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model name in the repository (default {DEFAULT_NAME})")
    parser.add_argument("--max-batch", type=int,
                        help=f"max_batch_size (default: the engine profile's max; {DEFAULT_ONNX_MAX_BATCH} for ONNX)")
    parser.add_argument("--instances", type=int, default=1, help="model instances (default 1)")
    parser.add_argument("--kind", choices=KINDS, default="gpu", help="instance kind (default gpu; cpu only for ONNX)")
    parser.add_argument("--preferred-batch", type=int, nargs="+", default=[], metavar="N",
                        help="the dynamic batcher's preferred batch sizes (default none)")
    parser.add_argument("--max-queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                        help=f"longest a request waits for its batch to fill, in microseconds "
                             f"(default {DEFAULT_QUEUE_DELAY_US})")
    parser.add_argument("--force", action="store_true", help="replace an existing model directory")


def cmd_export_triton(args: argparse.Namespace) -> int:
    from google.protobuf import text_format

    from ..serve.triton import export_triton

    model = export_triton(args.model, args.repository, name=args.name, max_batch=args.max_batch,
                          instances=args.instances, kind=args.kind, preferred_batch_sizes=args.preferred_batch,
                          max_queue_delay_us=args.max_queue_delay_us, overwrite=args.force)
    print(f"wrote {model.directory}: {model.config.platform}, max batch {model.config.max_batch_size}, "
          f"{args.instances} x {args.kind.upper()} instance(s), model {model.model_path.name}")
    print(text_format.MessageToString(model.config), end="")
    if model.note:
        print(f"note: {model.note}")
    print(f"serve it with: tritonserver --model-repository {Path(args.repository).resolve()}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from ..engines.tensorrt import build_engine

    built = build_engine(args.onnx, args.output, args.min_batch, args.opt_batch, args.max_batch,
                         args.workspace, args.opt_level, args.timing_cache)
    sidecar, report = built.sidecar, built.sidecar["precision_report"]
    profile = {k: v[0] for k, v in sidecar["profile"].items()}
    print(f"wrote {built.path}: {sidecar['precision']} graph, TensorRT {sidecar['tensorrt_version']} "
          f"({sidecar['network']}), {sidecar['gpu_name']} (compute capability {sidecar['compute_capability']}), "
          f"{sidecar['engine_bytes'] / 1e6:.1f} MB in {sidecar['builder']['build_seconds']:.0f} s")
    print(f"  batch profile min {profile['min']}, opt {profile['opt']}, max {profile['max']}; "
          f"sidecar {built.sidecar_path.name}, layer information {built.layers_path.name}")
    if not report["detailed"]:
        print(f"  {report['note']}")
        return 0
    fused = report["fused_attention_layers"]
    print(f"  {report['layers']} layers, {100 * report['fp16_share']:.1f}% of the floating-point ones in FP16; "
          f"attention {'fused (' + str(len(fused)) + ' layers)' if fused else 'not fused'}")
    if sidecar["precision"] == "fp16" and report["fp16_share"] == 0:
        print(f"kasf build: error: {built.path} was built from an FP16 graph but runs no layer in FP16 (see "
              f"{built.layers_path.name}): it is an FP32 engine", file=sys.stderr)
        return 1
    return 0


def _reproduction(engine, backend: str, batch: int) -> list[str]:
    from ..export.onnx import INPUT_NAME
    from ..verify import reproduction_commands

    if backend == "tensorrt":
        side = engine.sidecar
        profile = tuple(side["profile"][k][0] for k in ("min", "opt", "max"))
        return reproduction_commands(side["onnx"]["path"], side["input"], engine.n_frames, engine.precision,
                                     batch, profile, str(engine.path))
    if backend == "onnxruntime":
        return reproduction_commands(str(engine.path), INPUT_NAME, engine.n_frames, engine.precision, batch,
                                     (1, batch, batch))
    return []


def cmd_parity(args: argparse.Namespace) -> int:
    from ..engines import backend_for, engine_options, load_engine, recorded_model
    from ..verify import ParityCheck, check_reference, format_parity, format_per_joint, parity_clips, plot_per_joint

    budgets = parse_budgets(args.budget)
    backend = backend_for(args.engine, args.backend).name
    engine_config, engine_source = recorded_model(args.engine, backend, args.config)
    if args.reference is None and backend != "torch":
        origin = f", {engine_source['file']}" if engine_source.get("file") else ""
        raise KasfError(f"{args.engine} ({backend} backend) holds no PyTorch weights to compare with: pass "
                        f"--reference with the checkpoint it was exported from{origin} (--config too for an "
                        "authors' checkpoint)")
    reference_path = args.reference or args.engine
    reference = read_checkpoint(reference_path, args.config)
    notes = check_reference(reference.config.to_dict(), reference.source, engine_config, engine_source)
    with load_engine(args.engine, backend, **engine_options(args, backend)) as engine:
        clips = parity_clips(args.clips, reference.config.n_frames)
        check = ParityCheck(build_from_checkpoint(reference), clips, args.batch_size, budgets)
        report = check.check(engine)
        commands = _reproduction(engine, backend, min(args.batch_size, len(clips)))
        report.update(engine=str(args.engine), reference=str(reference_path), engine_metadata=engine.metadata(),
                      notes=notes + list(getattr(engine, "notes", [])), commands=commands)
    print(format_parity([report], title=f"{args.engine} against PyTorch FP32 ({reference_path}) on {len(clips)} "
                                        f"motion-capture test clips, {report['sequences']} sequences (mm)"))
    print()
    print(format_per_joint(report))
    for note in report["notes"]:
        print(f"note: {note}")
    if commands:
        print("\nthe same check outside kasf:")
        print("\n".join(f"  {command}" for command in commands))
    if args.plot:
        print(f"wrote {plot_per_joint({Path(args.engine).name: report}, args.plot)}")
    if args.json:
        print(f"wrote {write_json(args.json, report)}")
    return 0 if report["passed"] else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench.run import bench_from_arguments

    return bench_from_arguments(args)


def cmd_realtime(args: argparse.Namespace) -> int:
    from ..stream.realtime import realtime_from_arguments

    return realtime_from_arguments(args)


def cmd_replay(args: argparse.Namespace) -> int:
    from ..stream.capture import read_keypoints, replay, write_poses
    from ..engines import backend_for, engine_options, load_engine
    from ..stream.runtime import StreamRuntime

    frames = read_keypoints(args.keypoints)
    backend = backend_for(args.engine, args.backend).name
    with load_engine(args.engine, backend, **engine_options(args, backend)) as engine:
        runtime = StreamRuntime(engine, mode=args.mode, image_size=args.image_size,
                                normalized=args.image_size is None, close_after=args.close_after)
        results = replay(runtime, frames)
    write_poses(args.output, results)
    latency = runtime.latency.summary()
    print(f"{len(frames)} frames, {len(results)} poses ({args.mode} mode, {engine.backend}) -> {args.output}; "
          f"per frame p50 {latency['total_p50_ms']:.2f} ms, p99 {latency['total_p99_ms']:.2f} ms")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo.run import demo_from_arguments

    return demo_from_arguments(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kasf", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kasf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="describe a preset or checkpoint and time one forward pass")
    source = info.add_mutually_exclusive_group()
    source.add_argument("checkpoint", nargs="?", help="a kasf or authors' checkpoint")
    source.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="a named config (default paper)")
    info.add_argument("--config", help="the authors' YAML (needed for their checkpoints)")
    info.add_argument("--batch", type=int, default=1, help="clips per forward pass (default 1)")
    info.add_argument("--runs", type=int, default=5, help="timed forward passes (default 5)")
    info.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    info.set_defaults(run=cmd_info)

    convert = commands.add_parser("convert", help="turn an authors' checkpoint into a kasf checkpoint")
    convert.add_argument("checkpoint", help="the authors' .pth (their training dict or state dict)")
    convert.add_argument("--config", required=True, help="their training YAML (hyper-parameters)")
    convert.add_argument("-o", "--output", required=True, help="the kasf checkpoint to write (.pt)")
    convert.set_defaults(run=cmd_convert)

    train = commands.add_parser("train", help="train on the embedded motion capture or SportsPose/WorldPose",
                                description="Train with the paper's schedule (AdamW 5e-4, warm-up 10 epochs, "
                                            "plateau decay 0.9, early stopping), selected on validation.")
    model = train.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model preset (default small)")
    model.add_argument("--config", help="model YAML (kasf's or the authors')")
    train.add_argument("--out", required=True, help="run directory: best.pt, last.pt, log.csv, tensorboard/")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    train.add_argument("--epochs", type=int, default=800, help="maximum epochs (default 800)")
    train.add_argument("--time-limit", type=float, help="minutes; no epoch starts that would end past it")
    train.add_argument("--batch-size", type=int, default=32, help="global batch (default 32)")
    train.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    train.add_argument("--warmup-epochs", type=int, default=10, help="linear warm-up from lr/100 (default 10)")
    train.add_argument("--seed", type=int, default=0, help="seed of initialisation, order and flips (default 0)")
    train.add_argument("--workers", type=int, default=0, help="data-loading processes (default 0)")
    train.add_argument("--steps-per-epoch", type=int, help="cap on optimiser steps per epoch")
    train.add_argument("--no-flip", action="store_true", help="no flip augmentation")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--device", default="cpu", help="torch device (default cpu)")
    _add_data_arguments(train)
    train.set_defaults(run=cmd_train)

    export = commands.add_parser("export", help="ONNX graph (FP32 or strongly typed FP16) or AOTInductor package, "
                                                "with parity in mm",
                                 description="Fuse the model (limb composers, attention, BatchNorm, "
                                             "LayerScale), export it to ONNX (or, with --aoti, compile it into an "
                                             "AOTInductor package for the C++ runtime) and check it against PyTorch.")
    add_export_arguments(export)
    export.set_defaults(run=cmd_export)

    triton = commands.add_parser("export-triton", help="a Triton Inference Server model repository entry",
                                 description="Put a TensorRT engine (.engine/.plan with its sidecar JSON) or a "
                                             "kasf ONNX graph into a Triton model repository with dynamic batching.")
    add_triton_arguments(triton)
    triton.set_defaults(run=cmd_export_triton)

    evaluate = commands.add_parser("eval", help="the paper's tables (MPJPE, P-MPJPE in mm) for a checkpoint")
    evaluate.add_argument("checkpoint", help="a kasf or authors' checkpoint")
    evaluate.add_argument("--config", help="the authors' YAML (for their checkpoints)")
    evaluate.add_argument("--split", choices=["test", "validation"], default="test", help="default test")
    evaluate.add_argument("--flip", action="store_true", help="test-time flip augmentation")
    evaluate.add_argument("--json", help="also write the report as JSON here")
    evaluate.add_argument("--device", default="cpu", help="torch device (default cpu)")
    _add_data_arguments(evaluate)
    evaluate.set_defaults(run=cmd_eval)

    build = commands.add_parser("build", help="TensorRT engine from an ONNX graph (needs tensorrt and a GPU)",
                                description="Build a strongly typed TensorRT engine from a `kasf export` graph, "
                                            "with a sidecar JSON and a precision report (share of FP16 layers, "
                                            "fused attention).")
    build.add_argument("onnx", help="a graph from `kasf export` (--fp16 for an FP16 engine)")
    build.add_argument("-o", "--output", required=True, help="the engine to write (.engine); its sidecar goes beside it")
    build.add_argument("--min-batch", type=int, default=1, help="smallest batch the engine takes (default 1)")
    build.add_argument("--opt-batch", type=int, default=32, help="batch TensorRT tunes for (default 32)")
    build.add_argument("--max-batch", type=int, default=256, help="largest batch the engine takes (default 256)")
    build.add_argument("--workspace", type=float, default=4.0, help="builder workspace in GiB (default 4)")
    build.add_argument("--opt-level", type=int, default=3, choices=range(6), metavar="0-5",
                       help="builder optimisation level (default 3, TensorRT's)")
    build.add_argument("--timing-cache", help="timing cache file: read if present, written after the build")
    build.set_defaults(run=cmd_build)

    from ..engines import add_engine_arguments

    parity = commands.add_parser("parity", help="an engine against the PyTorch FP32 reference: MPJPE and the noise floor",
                                 description="Run an engine (.onnx, .engine/.plan, .pt/.pth, .pt2) and the PyTorch FP32 "
                                             "reference on the embedded motion capture's test clips. It passes when "
                                             "its MPJPE and P-MPJPE differences from the reference (paired bootstrap "
                                             "95%% intervals over sequences) lie within the budget of its precision "
                                             "and its deviation from the reference lies within the reference's own "
                                             "noise floor (exit 1 when it fails; the report says which clause decided).")
    parity.add_argument("--engine", required=True, help="the model file to check")
    parity.add_argument("--reference", help="the checkpoint to compare with (default for a .pt/.pth: itself; "
                                            "required for ONNX and TensorRT engines)")
    parity.add_argument("--clips", type=int, help="test clips to compare on, spread over the test motions (default: "
                                                  "all 256)")
    parity.add_argument("--batch-size", type=int, default=32, help="clips per engine call (default 32)")
    add_budget_argument(parity)
    parity.add_argument("--json", help="also write the report as JSON here")
    parity.add_argument("--plot", help="also plot deviation, floor and MPJPE difference per joint here (PNG)")
    add_engine_arguments(parity)
    parity.set_defaults(run=cmd_parity)

    from ..bench.run import add_bench_arguments

    bench = commands.add_parser("bench", help="time engines side by side, interleaved (trtexec conventions)",
                                description="Time engines interleaved round by round over a batch sweep; print "
                                            "one table (latency, throughput, parity in mm, GFLOP/s against "
                                            "the measured matmul peak); write bench.json, .csv, .png.")
    add_bench_arguments(bench)
    bench.set_defaults(run=cmd_bench)

    from ..stream.realtime import add_realtime_arguments

    realtime = commands.add_parser("realtime", help="how many tracked people the streaming runtime keeps up with",
                                   description="Replay motion-capture people at a frame rate through the streaming "
                                               "runtime; report latency and dropped frames, and search for the "
                                               "most people sustainable (p99 within 1/fps, at most 1%% dropped).")
    add_realtime_arguments(realtime)
    realtime.set_defaults(run=cmd_realtime)

    from ..stream.runtime import MODES

    replay = commands.add_parser("replay", help="lift a capture file of tracked people's keypoints, frame by frame",
                                 description="Replay a keypoint CSV (kasf.capture) through the streaming runtime, "
                                             "frame by frame, closing every track at the end; write the poses CSV. "
                                             "The C++ runtime's kasf_replay does the same with the same files.")
    replay.add_argument("engine", help="the model file (.onnx, .engine/.plan, .pt/.pth, .pt2)")
    replay.add_argument("--keypoints", required=True, help="the keypoint CSV to replay")
    replay.add_argument("-o", "--output", required=True, help="the poses CSV to write")
    replay.add_argument("--mode", choices=MODES, default="causal", help="latency mode (default causal)")
    replay.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"),
                        help="keypoints in pixels of this image size (default: already normalised)")
    replay.add_argument("--close-after", type=int, help="close a track after this many frames without it")
    add_engine_arguments(replay)
    replay.set_defaults(run=cmd_replay)

    from ..demo.run import EXAMPLES as DEMO_EXAMPLES, add_demo_arguments

    demo = commands.add_parser("demo", help="the whole pipeline on the embedded motion capture, one HTML report",
                               description="Train the preset for a time budget, evaluate it on unseen motions, "
                                           "export ONNX FP32/FP16, run every engine this machine has, check parity, "
                                           "benchmark, replay the streaming runtime, and write --out/report.html. "
                                           "Finished stages are reused on the next run (--force redoes them).",
                               epilog=DEMO_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_demo_arguments(demo)
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KasfError as err:
        print(f"kasf {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
