"""Each command's argument table: what it parses, its defaults, and the usage errors (exit 2) it
refuses. The commands' behaviour is tested with their library, per package."""

import pytest

from kasf.cli import build_parser
from kasf.cli.arguments import engine_options, parse_budgets
from kasf.cli.main import COMMANDS
from kasf.engines import BACKENDS
from kasf.errors import KasfError
from kasf.verify import BUDGETS_MM


def parse(*argv):
    return build_parser().parse_args(list(argv))


def refused(*argv, capsys):
    with pytest.raises(SystemExit) as stop:
        parse(*argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_every_command_has_a_module_with_help_and_its_run():
    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command")
    assert list(commands.choices) == list(COMMANDS)
    for name, sub in commands.choices.items():
        assert sub.format_help() and sub.get_default("run") is not None, name


def test_info():
    args = parse("info")
    assert (args.checkpoint, args.preset, args.batch, args.runs, args.threads) == (None, "paper", 1, 5, None)
    assert parse("info", "model.pt", "--runs", "3").checkpoint == "model.pt"


def test_info_refuses_a_checkpoint_and_a_preset(capsys):
    assert "not allowed with" in refused("info", "model.pt", "--preset", "small", capsys=capsys)


def test_convert(capsys):
    args = parse("convert", "theirs.pth", "--config", "their.yaml", "-o", "ours.pt")
    assert (args.checkpoint, args.config, args.output) == ("theirs.pth", "their.yaml", "ours.pt")
    assert "--config" in refused("convert", "theirs.pth", "-o", "ours.pt", capsys=capsys)


def test_train():
    args = parse("train", "--out", "runs/x", "--time-limit", "2.5", "--noise-px", "3")
    assert (args.preset, args.epochs, args.batch_size, args.lr, args.time_limit) == ("small", 800, 32, 5e-4, 2.5)
    assert (args.data, args.noise_px, args.cameras) == ("mocap", 3.0, parse("train", "--out", "x").cameras)
    assert (args.focus, args.focus_weight) == (None, 4.0)
    assert parse("train", "--out", "x", "--focus", "0:1", "--focus-weight", "8").focus == "0:1"


def test_train_needs_an_out_directory(capsys):
    assert "--out" in refused("train", capsys=capsys)


def test_eval():
    args = parse("eval", "best.pt", "--flip", "--split", "validation")
    assert (args.checkpoint, args.flip, args.split, args.device) == ("best.pt", True, "validation", "cpu")


def test_export(capsys):
    args = parse("export", "--checkpoint", "best.pt", "-o", "m.onnx", "--fp16", "--budget", "fp16=0.2")
    assert (args.fp16, args.attention, args.max_batch, args.parity_clips, args.budget) == (
        True, "matmul", 1024, 64, ["fp16=0.2"])
    assert "invalid choice" in refused("export", "--checkpoint", "b.pt", "-o", "m.onnx", "--attention", "flash",
                                       capsys=capsys)


def test_export_triton():
    args = parse("export-triton", "m.engine", "--repository", "repo", "--preferred-batch", "8", "16")
    assert (args.model, args.repository, args.preferred_batch, args.kind, args.force) == (
        "m.engine", "repo", [8, 16], "gpu", False)


def test_build(capsys):
    args = parse("build", "m.onnx", "-o", "m.engine")
    assert (args.min_batch, args.opt_batch, args.max_batch, args.workspace, args.opt_level) == (1, 32, 256, 4.0, 3)
    assert "--opt-level" in refused("build", "m.onnx", "-o", "m.engine", "--opt-level", "9", capsys=capsys)


def test_parity_takes_the_engine_options_of_every_backend():
    args = parse("parity", "--engine", "m.onnx", "--reference", "best.pt", "--threads", "2")
    assert (args.engine, args.reference, args.clips, args.batch_size, args.threads) == ("m.onnx", "best.pt", None, 32, 2)
    assert engine_options(args, "onnxruntime") == {"threads": 2}
    args = parse("parity", "--engine", "best.pt", "--device", "cuda", "--precision", "fp16", "--cuda-graphs",
                 "--config", "their.yaml")
    assert engine_options(args, "torch") == {"device": "cuda", "precision": "fp16", "cuda_graphs": True,
                                             "config": "their.yaml"}
    assert engine_options(args, "tensorrt") == {"device": "cuda", "precision": "fp16", "cuda_graphs": True}


def test_engine_options_come_from_the_table(capsys):
    help_text = build_parser()._subparsers._group_actions[0].choices["replay"].format_help()
    for backend in BACKENDS.values():
        for option in backend.options:
            flag = "--" + option.name.replace("_", "-")
            assert (flag in help_text) == option.command_line, flag
    assert "invalid choice" in refused("replay", "m.onnx", "--keypoints", "k.csv", "-o", "p.csv",
                                       "--backend", "openvino", capsys=capsys)


def test_budgets_parse_per_precision_or_for_all():
    assert parse_budgets(["0.3"]) == dict.fromkeys(BUDGETS_MM, 0.3)
    assert parse_budgets(["fp16=0.2"]) == {"fp16": 0.2}
    for bad in ("fp64=1", "x", "-1"):
        with pytest.raises(KasfError, match="--budget"):
            parse_budgets([bad])


def test_bench(capsys):
    args = parse("bench", "--engine", "a.onnx", "b.pt:device=cuda", "--batch", "1", "8")
    assert (args.engine, args.batch, args.iterations, args.parity_clips, args.out) == (
        ["a.onnx", "b.pt:device=cuda"], [1, 8], 10, 32, "runs/bench")
    assert "one of the arguments" in refused("bench", capsys=capsys)
    assert "not allowed with" in refused("bench", "--engine", "a.onnx", "--checkpoint", "b.pt", capsys=capsys)


def test_realtime():
    args = parse("realtime", "--engine", "m.onnx", "--people", "1", "32", "--fps", "60", "--mode", "centred")
    assert (args.people, args.fps, args.mode, args.seconds, args.max_people, args.no_search) == (
        [1, 32], 60.0, "centred", 5.0, 256, False)
    assert (args.lag, args.stride) == (None, 1)
    args = parse("realtime", "--engine", "m.onnx", "--lag", "7", "--stride", "14")
    assert (args.mode, args.lag, args.stride, args.worker) == ("causal", 7, 14, False)
    assert parse("realtime", "--engine", "m.onnx", "--worker").worker


def test_latency_accuracy(capsys):
    args = parse("latency-accuracy", "--engine", "m.onnx", "--settings", "0:1", "7:14", "--people")
    assert (args.settings, args.people, args.fps, args.sequences) == (["0:1", "7:14"], True, 30.0, None)
    assert len(parse("latency-accuracy", "--engine", "m.onnx").settings) >= 8
    assert "--engine" in refused("latency-accuracy", capsys=capsys)


def test_replay(capsys):
    args = parse("replay", "m.pt2", "--keypoints", "k.csv", "-o", "p.csv", "--image-size", "1920", "1080")
    assert (args.engine, args.mode, args.image_size, args.close_after) == ("m.pt2", "causal", [1920.0, 1080.0], None)
    assert parse("replay", "m.pt2", "--keypoints", "k.csv", "-o", "p.csv", "--stride", "9").stride == 9
    assert "invalid int" in refused("replay", "m.pt2", "--keypoints", "k.csv", "-o", "p.csv", "--lag", "x",
                                    capsys=capsys)
    assert "invalid choice" in refused("replay", "m.pt2", "--keypoints", "k.csv", "-o", "p.csv", "--mode", "late",
                                       capsys=capsys)


def test_demo():
    args = parse("demo", "--quick", "--out", "runs/d")
    assert (args.quick, args.out, args.force, args.preset) == (True, "runs/d", False, "small")
