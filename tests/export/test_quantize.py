"""The INT8 QDQ graph: its FP32 islands are where INT8_PRODUCTS and INT8_FP32_ISLANDS say, its
calibration is deterministic, it runs in ONNX Runtime within the INT8 parity budget, and the floor
rounds as an INT8 engine does."""

import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from kasf.engines import load_engine
from kasf.export.artifact import ExportError, read_metadata
from kasf.export.quantize import INT8_FP32_ISLANDS, INT8_PRODUCTS, calibration_keypoints, export_int8, runs_in_int8
from kasf.model.checkpoint import build_from_checkpoint
from kasf.verify import ParityCheck, parity_clips
from kasf.verify.floor import map_precision, rounding_noise

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML


@pytest.fixture(scope="module")
def int8_graphs(authors_checkpoint, tmp_path_factory):
    """The fixture checkpoint quantized twice, from scratch each time."""
    folder = tmp_path_factory.mktemp("int8")
    return [export_int8(authors_checkpoint, folder / f"tiny_int8_{i}.onnx", calibration_clips=32).path
            for i in range(2)]


def _producers(graph: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {output: node for node in graph.graph.node for output in node.output}


def test_only_the_listed_products_are_quantized(int8_graphs):
    graph = onnx.load(str(int8_graphs[0]))
    producers, weights = _producers(graph), {init.name for init in graph.graph.initializer}
    quantized, kept = set(), set()
    for node in graph.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        dequantized = [producers[name].input[0] for name in node.input
                       if name in producers and producers[name].op_type == "DequantizeLinear"
                       and producers[name].input[0] in weights]
        plain = [name for name in node.input if name in weights]
        for name in dequantized:
            quantized.add(re.sub(r"\.(weight|bias)$", "", name.removesuffix("_quantized")))
        for name in plain:
            if name.endswith(".weight"):
                kept.add(name.removesuffix(".weight"))
    assert quantized and all(runs_in_int8(module) for module in quantized), sorted(quantized)
    consumers = {name for node in graph.graph.node if node.op_type == "QuantizeLinear" for name in node.input[:1]}
    products = [node for node in graph.graph.node if node.op_type in ("MatMul", "Gemm")]
    assert not [node.name for node in products if node.output[0] in consumers]   # outputs stay FP32
    assert kept and not any(runs_in_int8(module) for module in kept), sorted(kept)
    for pattern in INT8_PRODUCTS:   # every family of the list is quantized somewhere
        assert any(re.search(pattern, module) for module in quantized), pattern
    for island in ("joint_embed", "bone_embed", "limb_embed", "head.out", "head.fc", "limb_context.spatial",
                   "blocks.0.attn_spatial.mixer.proj.linear", "blocks.0.attn_spatial.mlp.fc2.linear",
                   "blocks.0.fusion.fusion"):
        assert island in kept, island


def test_normalisation_softmax_and_the_neighbour_choice_stay_fp32(int8_graphs):
    graph = onnx.load(str(int8_graphs[0]))
    producers = _producers(graph)
    checked = 0
    for node in graph.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax", "TopK", "GreaterOrEqual"):
            checked += 1
            sources = {producers[name].op_type for name in node.input if name in producers}
            assert "DequantizeLinear" not in sources, (node.op_type, node.name)
    assert checked
    meta = read_metadata(int8_graphs[0])
    assert meta["kasf_precision"] == "int8" and tuple(meta["kasf_fp32_islands"]) == INT8_FP32_ISLANDS
    assert meta["kasf_int8"]["calibration"]["clips"] == 32 and meta["kasf_int8"]["quantized_nodes"] > 0


def test_calibration_is_deterministic(int8_graphs):
    first, second = (onnx.load(str(path)) for path in int8_graphs)
    scales = [{init.name: onnx.numpy_helper.to_array(init) for init in graph.graph.initializer
               if init.name.endswith(("_scale", "_zero_point"))} for graph in (first, second)]
    assert scales[0] and scales[0].keys() == scales[1].keys()
    for name, value in scales[0].items():
        np.testing.assert_array_equal(value, scales[1][name], err_msg=name)
    np.testing.assert_array_equal(calibration_keypoints(16), calibration_keypoints(16))


def test_the_int8_engine_keeps_parity(int8_graphs, authors_checkpoint):
    with load_engine(int8_graphs[0], threads=2) as engine:
        assert engine.precision == "int8"
        report = ParityCheck(build_from_checkpoint(authors_checkpoint), parity_clips(32)).check(engine)
    assert report["passed"], report["explanation"]
    assert report["budget_mm"] == 0.4


def test_no_calibration_clips_is_refused(authors_checkpoint, tmp_path):
    with pytest.raises(ExportError, match="at least one clip"):
        export_int8(authors_checkpoint, tmp_path / "x.onnx", calibration_clips=0)
    assert not (tmp_path / "x.onnx").exists()


def test_the_floor_rounds_only_the_int8_products_and_to_their_range(authors_checkpoint):
    model = build_from_checkpoint(authors_checkpoint)
    linears = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    before = {name: module.weight.detach().clone() for name, module in linears.items()}
    with rounding_noise(model, "int8", seed=3):
        for name, module in linears.items():
            change = (module.weight - before[name]).abs()
            if map_precision(name, "int8") == "int8":
                bound = before[name].abs().amax(dim=1, keepdim=True) / 254
                assert change.max() > 0 and (change <= bound * (1 + 1e-6)).all(), name
            else:   # an FP32 map: at most an ulp of noise (2^-23 relative)
                assert (change <= before[name].abs() * 2.0 ** -23).all(), name
    assert all(torch.equal(module.weight, before[name]) for name, module in linears.items())
    assert map_precision("head.out", "bf16") == "fp32" and map_precision("blocks.0.attn_spatial.mixer.qkv", "bf16") == "bf16"


def test_kasf_export_int8_writes_and_checks_the_graph(tmp_path):
    path = tmp_path / "tiny_int8.onnx"
    base = [sys.executable, "-m", "kasf", "export", "--checkpoint", str(AUTHORS_CHECKPOINT), "--config",
            str(AUTHORS_YAML), "-o", str(path), "--int8", "--calibration-clips", "32", "--parity-clips", "32"]
    refused = subprocess.run(base + ["--fp16"], capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and "--fp16 cannot go with --int8" in refused.stderr and not path.exists()
    done = subprocess.run(base, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {path}: int8 (QDQ" in done.stdout and "PASS" in done.stdout
    assert read_metadata(path)["kasf_int8"]["calibration"]["clips"] == 32
