import numpy as np
import onnx
import pytest
import torch

import kasf
from kasf.model.anatomy import LimbFus
from kasf.engines.onnxruntime import OnnxRuntimeEngine
from kasf.errors import KasfError
from kasf.export.fuse import (FP32_MODULES, BranchFusion, FusedAttention, FusedMlp, LimbContext, PackedLimbFus,
                              PositionalEmbedding, SimilarityGraphConv, SkeletonGraphConv, frame_order, fuse,
                              temporal_order)
from kasf.export.artifact import ExportError, read_metadata
from kasf.export.onnx import export_onnx, op_histogram
from kasf.model.layers import Attention, GraphConv, MixerBlock, split_heads
from kasf.model.kasportsformer import KABlock, merge_branches


def _randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial LayerScale, LayerNorm affines and BatchNorm statistics, so folding them is really tested."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, torch.nn.BatchNorm1d):
                sub.running_mean.copy_(torch.randn(sub.num_features, generator=generator) * 0.3)
                sub.running_var.copy_(torch.rand(sub.num_features, generator=generator) + 0.5)
                sub.weight.copy_(torch.randn(sub.num_features, generator=generator))
                sub.bias.copy_(torch.randn(sub.num_features, generator=generator))
            if isinstance(sub, torch.nn.LayerNorm):
                sub.weight.copy_(torch.randn(sub.normalized_shape, generator=generator))
                sub.bias.copy_(torch.randn(sub.normalized_shape, generator=generator))
            if hasattr(sub, "gamma"):
                sub.gamma.copy_(torch.randn(sub.gamma.shape, generator=generator) * 0.5)
    return module.eval()


@pytest.fixture
def tokens():
    return torch.randn(3, 27, 17, 32, generator=torch.Generator().manual_seed(1))


def test_packed_limb_fus_equals_the_17_composers(clip):
    limb_fus = LimbFus().eval()
    assert torch.allclose(PackedLimbFus(limb_fus)(clip), limb_fus(clip), atol=1e-6)


def test_packed_limb_fus_graph_does_not_grow_with_the_number_of_limbs(tmp_path):
    def histogram(limbs):
        path = tmp_path / f"limbs{len(limbs)}.onnx"
        torch.onnx.export(PackedLimbFus(LimbFus(limbs)).eval(), (torch.rand(2, 27, 17, 3),), str(path), dynamo=True)
        return op_histogram(onnx.load(str(path)))

    assert histogram(kasf.keypoints.skeleton.LIMBS) == histogram(kasf.keypoints.skeleton.LIMBS[:4])


def _flat(tokens: torch.Tensor) -> torch.Tensor:
    return tokens.reshape(-1, tokens.shape[-1])


def test_temporal_order_groups_rows_by_joint_and_frame_order_undoes_it(tokens):
    rows = temporal_order(_flat(tokens), 27)
    assert torch.equal(rows.reshape(3, 17, 27, 32), tokens.transpose(1, 2))
    assert torch.equal(frame_order(rows, 27), _flat(tokens))


def _attention_op_form(heads: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """[groups, heads, sequence, head_dim] -> the Attention op's [groups, sequence, heads * head_dim]."""
    return tuple(h.transpose(1, 2).reshape(h.shape[0], h.shape[2], -1) for h in heads)


@pytest.mark.parametrize("mode", ["spatial", "temporal"])
@pytest.mark.parametrize("cross", [False, True])
def test_fused_attention_folds_scale_and_layer_scale(tokens, mode, cross):
    attention = Attention(32, 4, mode, cross=cross, qkv_bias=True).eval()
    gamma = torch.randn(32)
    context = torch.randn_like(tokens)
    expected = gamma * (attention(tokens, context) if cross else attention(tokens))
    heads = split_heads(attention.kv(context), 2, 4, mode, 27) if cross else None
    for use_sdpa in (False, True):
        fused = FusedAttention(attention, gamma, 27, use_sdpa).eval()
        kv = _attention_op_form(heads) if use_sdpa and cross else heads
        got = fused(_flat(tokens), kv) if cross else fused(_flat(tokens))
        assert torch.allclose(got, _flat(expected), atol=1e-5)


def test_limb_context_is_every_cross_attention_s_keys_and_values(tokens):
    blocks = [_randomise(KABlock(32, 4, 27), seed) for seed in range(3)]
    for use_sdpa in (False, True):
        context = LimbContext(blocks, 27, use_sdpa)
        for block, (spatial, temporal) in zip(blocks, context(_flat(tokens))):
            for sub_block, got in ((block.cross_spatial, spatial), (block.cross_temporal, temporal)):
                mode = sub_block.mixer.mode
                expected = split_heads(sub_block.mixer.kv(sub_block.norm_context(tokens)), 2, 4, mode, 27)
                if use_sdpa:
                    expected = _attention_op_form(expected)
                assert all(torch.allclose(g, e, atol=1e-5) for g, e in zip(got, expected))


@pytest.mark.parametrize("mode", ["spatial", "temporal"])
def test_fused_graph_conv_folds_batchnorm(tokens, mode):
    gcn = _randomise(GraphConv(32, mode, 17 if mode == "spatial" else 27))
    gamma = torch.randn(32)
    fused = (SkeletonGraphConv(gcn, gamma) if mode == "spatial" else SimilarityGraphConv(gcn, gamma, 27)).eval()
    assert torch.allclose(fused(_flat(tokens)), _flat(gamma * gcn(tokens)), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in fused.modules())


def test_fused_mlp_folds_layer_scale(tokens):
    block = _randomise(MixerBlock(32, torch.nn.Identity()))
    fused = FusedMlp(block.mlp.fc1, block.mlp.fc2, block.ls2.gamma.detach())
    assert torch.allclose(fused(_flat(tokens)), _flat(block.ls2(block.mlp(tokens))), atol=1e-6)


def test_positional_embedding_folds_into_the_bias(clip):
    model = kasf.build_model("tiny")
    with torch.no_grad():
        model.joint_pos.normal_()
        expected = model.joint_embed(clip) + model.joint_pos
        assert torch.allclose(PositionalEmbedding(model.joint_embed, model.joint_pos)(clip), _flat(expected), atol=1e-6)


def test_branch_fusion_equals_the_adaptive_softmax_merge(tokens):
    fusion = torch.nn.Linear(96, 3)
    branches = [torch.randn_like(tokens) for _ in range(3)]
    for linear in (fusion, None):
        expected = merge_branches(*branches, linear)
        assert torch.allclose(BranchFusion(linear)(*map(_flat, branches)), _flat(expected), atol=1e-6)


def test_fused_model_equals_the_reference(clip):
    model = _randomise(kasf.build_model("tiny"))
    with torch.no_grad():
        expected = model(clip)
        assert torch.allclose(fuse(model)(clip), expected, atol=1e-5)
        assert torch.allclose(fuse(model, use_sdpa=True)(clip), expected, atol=1e-5)
        assert (fuse(model, torch.float16)(clip) - expected).abs().mean() < 2e-3
        assert (fuse(model, torch.bfloat16)(clip) - expected).abs().mean() < 8 * 2e-3   # 8x FP16's unit roundoff
    with pytest.raises(KasfError, match="the export form's weights are .* not torch.int8"):
        fuse(model, torch.int8)


def test_fp32_graph_checks_runs_and_matches(tiny_exports, golden):
    result = tiny_exports["fp32"]
    graph = onnx.load(str(result.path))
    onnx.checker.check_model(graph, full_check=True)
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert graph.graph.input[0].name == "keypoints_2d" and dims[1:] == [27, 17, 3] and isinstance(dims[0], str)
    assert graph.graph.output[0].name == "poses_3d"
    assert {"BatchNormalization", "EyeLike"}.isdisjoint(result.op_counts)
    with OnnxRuntimeEngine(result.path) as engine:
        out = engine.infer(golden["input"])
    assert abs(out - golden["output"]).max() < 1e-4


def test_attention_op_graph_has_no_head_transposes_and_matches(tiny_exports, golden):
    """The ONNX Runtime form: one Attention op per attention, heads an attribute; transposes only
    where temporal mixers regroup tokens by joint, Splits only where the limb context's stacked
    K/V map is cut per layer."""
    result = tiny_exports["attention_op"]
    graph = onnx.load(str(result.path)).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    attention_inputs = {producers[name] for node in graph.node if node.op_type == "Attention" for name in node.input}
    assert result.opset == 23 and result.op_counts["Attention"] == 4 * 2   # four attentions per layer, 2 layers
    assert attention_inputs == {"Reshape", "Split"} and result.op_counts["Split"] == 2
    assert result.op_counts["Transpose"] < tiny_exports["fp32"].op_counts["Transpose"] * 0.6
    with OnnxRuntimeEngine(result.path) as engine:
        out = engine.infer(golden["input"])
    assert abs(out - golden["output"]).max() < 1e-4


def test_metadata_travels_inside_the_graph(tiny_exports, authors_checkpoint):
    meta = read_metadata(tiny_exports["fp16"].path)
    assert meta["kasf_model_config"] == authors_checkpoint.config.to_dict()
    assert meta["kasf_skeleton"]["parents"][14] == 8
    assert meta["kasf_source"]["sha256"] == authors_checkpoint.source["sha256"]
    assert meta["kasf_precision"] == "fp16" and "softmax" in meta["kasf_fp32_islands"]
    assert meta["kasf_input_normalization"]["scheme"] == "screen"


def _value_types(graph: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(graph)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    return types


def test_fp16_graph_is_strongly_typed_with_fp32_islands(tiny_exports, golden):
    graph = onnx.load(str(tiny_exports["fp16"].path))
    float16, float32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    assert graph.graph.input[0].type.tensor_type.elem_type == float32
    assert graph.graph.output[0].type.tensor_type.elem_type == float32
    types = _value_types(graph)
    weights = [i for i in graph.graph.initializer if len(i.dims) == 2 and i.data_type in (float16, float32)]
    fp32_weights = {i.name for i in weights if i.data_type == float32}
    assert fp32_weights and all(name.startswith(FP32_MODULES) for name in fp32_weights)
    assert sum(np.prod(i.dims) for i in weights if i.data_type == float16) > 0.9 * sum(np.prod(i.dims) for i in weights)
    for node in graph.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax", "TopK"):
            assert types[node.input[0]] == float32, node.name
    matmuls = [types.get(n.output[0]) for n in graph.graph.node if n.op_type == "MatMul"]
    assert matmuls.count(float16) > matmuls.count(float32)


def test_fp16_graph_runs_in_onnxruntime_in_this_process(tiny_exports, golden):
    with OnnxRuntimeEngine(tiny_exports["fp16"].path) as engine:
        assert engine.session.get_providers() == ["CPUExecutionProvider"]
        out = engine.infer(golden["input"])
    assert abs(out - golden["output"]).mean() < 2e-3


def test_export_errors_are_clear_and_leave_no_file(authors_checkpoint, tmp_path):
    with pytest.raises(ExportError, match="opset 12 is out of range"):
        export_onnx(authors_checkpoint, tmp_path / "a.onnx", opset=12)
    with pytest.raises(ExportError, match="the Attention op form needs opset 23 or later, got 20"):
        export_onnx(authors_checkpoint, tmp_path / "a.onnx", opset=20, use_sdpa=True)
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the output directory should be")
    with pytest.raises(ExportError, match="cannot create the output directory"):
        export_onnx(authors_checkpoint, blocker / "sub" / "a.onnx")
    with pytest.raises(ExportError, match="is a directory"):
        export_onnx(authors_checkpoint, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_dir"]


def test_onnxruntime_engine_refuses_foreign_graphs(tmp_path):
    path = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Linear(3, 3), (torch.rand(1, 3),), str(path), dynamo=True)
    with pytest.raises(KasfError, match="no kasf metadata"):
        OnnxRuntimeEngine(path)
    with pytest.raises(KasfError, match="does not exist"):
        OnnxRuntimeEngine(tmp_path / "absent.onnx")


def _node_counts(n_layers: int) -> tuple[int, int]:
    """(plain, fused) node counts of the paper's block at a small width: per-layer counts do not
    depend on the width, and every layer is the same block."""
    from kasf.export.onnx import _torch_export, plain_graph

    model = _randomise(kasf.build_model(kasf.PRESETS["tiny"].replace(n_layers=n_layers)))
    plain = sum(op_histogram(plain_graph(model)).values())
    fused = sum(op_histogram(_torch_export(fuse(model), model.config, 18, 1024)).values())
    return plain, fused


def test_fused_graph_of_the_paper_depth_has_at_least_40_percent_fewer_nodes():
    (plain1, fused1), (plain2, fused2) = _node_counts(1), _node_counts(2)
    layers = kasf.PRESETS["paper"].n_layers
    plain = plain1 + (layers - 1) * (plain2 - plain1)
    fused = fused1 + (layers - 1) * (fused2 - fused1)
    assert fused <= 0.6 * plain, (plain, fused)


def test_nodes_carry_no_exporter_stack_traces(tiny_exports):
    graph = onnx.load(str(tiny_exports["fp32"].path))
    assert not any(node.metadata_props for node in graph.graph.node)


def test_truncated_foreign_and_newer_graphs_are_refused(tiny_exports, tmp_path):
    data = tiny_exports["fp32"].path.read_bytes()
    truncated, foreign, newer = tmp_path / "truncated.onnx", tmp_path / "foreign.onnx", tmp_path / "newer.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    foreign.write_bytes(b"PK\x03\x04" + b"a zip archive, not a graph" * 8)
    graph = onnx.load(str(tiny_exports["fp32"].path))
    next(p for p in graph.metadata_props if p.key == "kasf_metadata_version").value = "2"
    onnx.save(graph, str(newer))
    for path in (truncated, foreign):
        with pytest.raises(KasfError, match="is not an ONNX model, or it is truncated"):
            OnnxRuntimeEngine(path)
    with pytest.raises(KasfError, match="metadata is format version 2 .* reads up to 1: upgrade kasf"):
        OnnxRuntimeEngine(newer)
    assert read_metadata(tiny_exports["fp32"].path)["kasf_metadata_version"] == 1
