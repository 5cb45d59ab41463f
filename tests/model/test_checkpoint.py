import subprocess
import sys

import numpy as np
import pytest
import torch

import kasf
from kasf.model.checkpoint import FORMAT_VERSION, read_checkpoint, save_checkpoint
from kasf.errors import CheckpointError, ConfigError
from kasf.model.normalization import ScreenNormalization

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML


def _authors_payload() -> dict:
    return torch.load(AUTHORS_CHECKPOINT, weights_only=True)


def _outputs(model, clip):
    with torch.no_grad():
        return model(clip)


def test_kasf_checkpoint_round_trip_keeps_weights_config_and_metadata(tmp_path, clip):
    model = kasf.build_model("tiny").eval()
    with torch.no_grad():  # make BatchNorm statistics non-trivial so they must travel too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    path = save_checkpoint(tmp_path / "m.pt", model, ScreenNormalization(width=1920, height=1080))
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION and payload["skeleton"]["parents"][1] == 0
    loaded = read_checkpoint(path)
    assert loaded.normalization == ScreenNormalization(width=1920, height=1080)
    assert torch.equal(_outputs(kasf.load_model(path), clip), _outputs(model, clip))


def test_authors_checkpoint_converts_and_gives_the_same_poses(tmp_path, golden):
    out = kasf.convert_authors_checkpoint(AUTHORS_CHECKPOINT, AUTHORS_YAML, tmp_path / "ours.pt")
    checkpoint = read_checkpoint(out)
    assert checkpoint.source["format"] == "authors" and checkpoint.source["epoch"] == 7
    assert len(checkpoint.source["sha256"]) == 64
    clip = torch.from_numpy(golden["input"])
    assert np.abs(_outputs(kasf.load_model(out), clip).numpy() - golden["output"]).max() <= 1e-5


def test_bare_authors_state_dict_with_or_without_prefix_loads(tmp_path, golden):
    state = _authors_payload()["model"]
    for name, weights in (("prefixed.pth", state), ("plain.pth", {k.removeprefix("module."): v for k, v in state.items()})):
        torch.save(weights, tmp_path / name)
        model = kasf.load_model(tmp_path / name, config=AUTHORS_YAML)
        out = _outputs(model, torch.from_numpy(golden["input"])).numpy()
        assert np.abs(out - golden["output"]).max() <= 1e-5


def test_numpy_scalars_in_the_training_dict_are_accepted(tmp_path):
    payload = _authors_payload()
    payload["min_mpjpe"] = np.float64(55.5)
    torch.save(payload, tmp_path / "np.pth")
    assert read_checkpoint(tmp_path / "np.pth", AUTHORS_YAML).config.n_layers == 2


def test_authors_checkpoint_without_config_says_what_to_pass():
    with pytest.raises(ConfigError, match="training YAML"):
        kasf.load_model(AUTHORS_CHECKPOINT)


def test_missing_key_is_named(tmp_path):
    payload = _authors_payload()
    del payload["model"]["module.layers_with_bone.1.graph_temporal.mixer.U.weight"]
    torch.save(payload, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing 1 key\(s\), first: blocks\.1\.gcn_temporal\.mixer\.U\.weight"):
        kasf.load_model(tmp_path / "missing.pth", config=AUTHORS_YAML)


def test_unknown_key_is_named(tmp_path):
    payload = _authors_payload()
    payload["model"]["module.extra_head.weight"] = torch.zeros(3)
    torch.save(payload, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected 1 key\(s\), first: extra_head\.weight"):
        kasf.load_model(tmp_path / "extra.pth", config=AUTHORS_YAML)


def test_misshaped_key_is_named(tmp_path):
    payload = _authors_payload()
    payload["model"]["module.head.weight"] = torch.zeros(3, 65)
    torch.save(payload, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"'head\.out\.weight' has shape \[3, 65\], the config needs \[3, 64\]"):
        kasf.load_model(tmp_path / "shape.pth", config=AUTHORS_YAML)


def test_yaml_that_does_not_match_the_checkpoint_is_a_clear_error(tmp_path):
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(AUTHORS_YAML.read_text().replace("dim_feat: 32", "dim_feat: 64"))
    with pytest.raises(CheckpointError, match="does not fit the model config.*dim_feat=64"):
        kasf.load_model(AUTHORS_CHECKPOINT, config=wrong)
    deeper = tmp_path / "deeper.yaml"
    deeper.write_text(AUTHORS_YAML.read_text().replace("n_layers: 2", "n_layers: 3"))
    with pytest.raises(CheckpointError, match=r"missing \d+ key\(s\), first: blocks\.2\."):
        kasf.load_model(AUTHORS_CHECKPOINT, config=deeper)


def test_kasf_checkpoint_with_a_different_config_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", kasf.build_model("tiny"))
    with pytest.raises(ConfigError, match="n_layers: checkpoint 2 vs config 4"):
        kasf.load_model(path, config="small")


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.95])
def test_truncated_files_are_reported(tmp_path, keep):
    data = AUTHORS_CHECKPOINT.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        kasf.load_model(path, config=AUTHORS_YAML)


def test_foreign_files_are_reported(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        kasf.load_model(text)
    other = tmp_path / "other.pth"
    torch.save({"weights": [1, 2, 3], "name": "resnet"}, other)
    with pytest.raises(CheckpointError, match="neither a kasf checkpoint nor an authors'"):
        kasf.load_model(other)
    with pytest.raises(CheckpointError, match="does not exist"):
        kasf.load_model(tmp_path / "absent.pth")


def test_newer_format_version_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", kasf.build_model("tiny"))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="upgrade kasf"):
        kasf.load_model(path)


def _kasf(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kasf.cli.main", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_cli_convert_then_info(tmp_path):
    out = tmp_path / "converted.pt"
    result = _kasf("convert", AUTHORS_CHECKPOINT, "--config", AUTHORS_YAML, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "153,724 parameters" in result.stdout and out.is_file()
    info = _kasf("info", out, "--runs", "1")
    assert info.returncode == 0, info.stderr
    assert "source.format           authors" in info.stdout and "n_layers                2" in info.stdout


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    result = _kasf("convert", AUTHORS_CHECKPOINT, "--config", tmp_path / "absent.yaml", "-o", tmp_path / "x.pt")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "kasf convert: error:" in result.stderr and "absent.yaml" in result.stderr
    assert not (tmp_path / "x.pt").exists()
    assert _kasf("convert").returncode == 2
