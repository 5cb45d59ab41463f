import math

import numpy as np
import pytest
import torch

import kasf
from kasf.model.checkpoint import authors_key, unused_authors_parameters
from kasf.model.config import PRESETS, ModelConfig
from kasf.errors import ConfigError, InputError
from kasf.model.kasportsformer import predict_with_flip
from kasf.keypoints.skeleton import flip

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML, PAPER_KEYS

AUTHORS_PAPER_PARAMETERS = 29_365_668


def test_golden_fixture_matches_the_authors_implementation(golden):
    model = kasf.load_model(AUTHORS_CHECKPOINT, config=AUTHORS_YAML)
    assert not model.training
    with torch.no_grad():
        out = model(torch.from_numpy(golden["input"])).numpy()
    assert np.abs(out - golden["output"]).max() <= 1e-5


def _paper_keys() -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in PAPER_KEYS.read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, _ = line.split("\t")
        keys[key] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return keys


def test_paper_preset_parameters_match_the_authors_less_the_unused_layernorms():
    model = kasf.build_model("paper")
    ours = sum(p.numel() for p in model.parameters())
    # The authors' count includes one LayerNorm(128) per attention/GCN sub-block (4 per layer,
    # 26 layers) that only cross-attention sub-blocks use; kasf leaves those out.
    assert unused_authors_parameters(model.config) == 26 * 4 * 2 * 128 == 26_624
    assert ours + unused_authors_parameters(model.config) == AUTHORS_PAPER_PARAMETERS


def test_paper_state_dict_maps_one_to_one_onto_the_authors_keys():
    theirs = _paper_keys()
    assert len(theirs) == 2975
    ours = {k: tuple(v.shape) for k, v in kasf.build_model("paper").state_dict().items()}
    mapped, dropped = {}, []
    for key, shape in theirs.items():
        name = authors_key("module." + key)
        if name is None:
            dropped.append(key)
            continue
        assert name not in mapped, f"two authors' keys map onto {name}"
        mapped[name] = shape
    assert len(dropped) == 26 * 4 * 2 and all(".norm1_limb." in k for k in dropped)
    assert not any(k.split(".")[2].startswith("bone_") for k in dropped)
    assert mapped == ours


def test_layer_zero_cross_branch_starts_from_the_bone_stream(clip):
    model = kasf.build_model("tiny").eval()
    with torch.no_grad():
        base = model(clip)
        # A shift that differs across channels: a constant one is removed exactly by the LayerNorm after
        # the embedding, and left the output equal up to rounding.
        bias = model.bone_embed.bias
        bias.add_(torch.linspace(-1.0, 1.0, bias.numel()))
        changed = model(clip)
    assert not torch.allclose(base, changed)


def test_limb_input_option_selects_the_papers_bone_gathering(clip):
    torch.manual_seed(0)
    joints_model = kasf.build_model(PRESETS["tiny"]).eval()
    bones_model = kasf.build_model(PRESETS["tiny"].replace(limb_input="bones")).eval()
    bones_model.load_state_dict(joints_model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(joints_model(clip), bones_model(clip))
        limbs_from_bones = bones_model.embed(clip)[2]
        expected = bones_model.limb_embed(bones_model.limb_fus(kasf.model.anatomy.bone_features(clip))) + bones_model.limb_pos
    assert torch.allclose(limbs_from_bones, expected)


def test_output_shape_and_determinism_in_eval(clip):
    model = kasf.build_model("tiny").eval()
    with torch.no_grad():
        first, second = model(clip), model(clip)
    assert first.shape == clip.shape
    assert torch.equal(first, second)


def test_batch_members_are_independent_in_eval(clip):
    model = kasf.build_model("tiny").eval()
    with torch.no_grad():
        together = model(clip)
        alone = model(clip[1:])
    assert torch.allclose(together[1:], alone, atol=1e-6)


def test_test_time_flip_of_a_flip_equivariant_function_is_exact(clip):
    model = kasf.build_model("tiny").eval()
    with torch.no_grad():
        averaged = predict_with_flip(model, clip)
        mirrored = predict_with_flip(model, flip(clip))
    assert torch.allclose(flip(averaged), mirrored, atol=1e-5)


def test_model_trains_one_step(clip):
    model = kasf.build_model("tiny").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    target = torch.randn_like(clip)
    loss = (model(clip) - target).square().mean()
    loss.backward()
    optimizer.step()
    assert all(p.grad is not None for p in model.parameters())
    assert math.isfinite(loss.item())


@pytest.mark.parametrize("shape, message", [
    ((27, 17, 3), "4 dimensions"),
    ((1, 27, 16, 3), "17 joints"),
    ((1, 27, 17, 2), "3 channels"),
    ((1, 81, 17, 3), "27 frames"),
])
def test_bad_shapes_are_named(shape, message):
    model = kasf.build_model("tiny").eval()
    with pytest.raises(InputError, match=message):
        model(torch.zeros(shape))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_keypoints_are_rejected(clip, value):
    model = kasf.build_model("tiny").eval()
    clip[1, 5, 3, 0] = value
    with pytest.raises(InputError, match=r"NaN or Inf \(first at index \[1, 5, 3, 0\]\)"):
        model(clip)


def test_non_tensor_and_integer_inputs_are_rejected():
    model = kasf.build_model("tiny").eval()
    with pytest.raises(InputError, match="torch.Tensor"):
        model(np.zeros((1, 27, 17, 3), dtype=np.float32))
    with pytest.raises(InputError, match="floating point"):
        model(torch.zeros(1, 27, 17, 3, dtype=torch.int64))


def test_config_yaml_round_trip(tmp_path):
    config = PRESETS["small"].replace(limb_input="bones", qk_scale=0.2)
    path = tmp_path / "model.yaml"
    path.write_text(config.to_yaml())
    assert kasf.load_config(path) == config


def test_authors_yaml_is_read_onto_the_config():
    config = kasf.load_config(AUTHORS_YAML)
    assert (config.n_layers, config.dim_feat, config.num_heads, config.dim_rep, config.neighbour_num) == (2, 32, 4, 64, 4)


@pytest.mark.parametrize("change, message", [
    ({"dim_feat": 30}, "divisible by num_heads"),
    ({"n_layers": 0}, "positive integer"),
    ({"neighbour_num": 40}, "cannot exceed n_frames"),
    ({"limb_input": "limbs"}, "limb_input"),
    ({"drop": 1.5}, r"\[0, 1\)"),
])
def test_invalid_configs_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**change)


def test_unsupported_authors_variants_and_unknown_keys_are_refused(tmp_path):
    text = AUTHORS_YAML.read_text()
    hierarchical = tmp_path / "hier.yaml"
    hierarchical.write_text(text.replace("hierarchical: false", "hierarchical: true"))
    with pytest.raises(ConfigError, match="hierarchical"):
        kasf.load_config(hierarchical)
    missing = tmp_path / "missing.yaml"
    missing.write_text(text.replace("n_layers: 2\n", ""))
    with pytest.raises(ConfigError, match="n_layers"):
        kasf.load_config(missing)
    with pytest.raises(ConfigError, match="unknown model config key"):
        ModelConfig.from_dict({"n_layer": 3})
    not_yaml = tmp_path / "bad.yaml"
    not_yaml.write_text("n_layers: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        kasf.load_config(not_yaml)
