"""AOTInductor packages: `kasf export --aoti`, the aoti engine, and the refusals of bad files.
One real compile per session (about 30 s on the CI machine; Inductor caches it after)."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import kasf.hardware
from kasf.cli import main
from kasf.model.checkpoint import build_from_checkpoint
from kasf.engines import load_engine, recorded_model
from kasf.engines.aoti import package_precision
from kasf.errors import InputError, KasfError
from kasf.export.aoti import export_aoti
from kasf.export.artifact import ExportError
from kasf.export.fuse import FP32_ISLANDS
from kasf.stream.runtime import StreamRuntime

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML

MAX_BATCH = 8


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The fixture checkpoint compiled through the real CLI."""
    folder = tmp_path_factory.mktemp("aoti")
    path, report = folder / "tiny.pt2", folder / "report.json"
    done = subprocess.run([sys.executable, "-m", "kasf", "export", "--checkpoint", str(AUTHORS_CHECKPOINT),
                           "--config", str(AUTHORS_YAML), "-o", str(path), "--aoti", "--max-batch", str(MAX_BATCH),
                           "--parity-clips", "16", "--report", str(report)], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"AOTInductor package, fp32, cpu, batch 1 to {MAX_BATCH}" in done.stdout
    written = json.loads(report.read_text())
    assert written["aoti_device"] == "cpu" and written["max_batch"] == MAX_BATCH and written["size_mb"] > 0
    assert written["parity"]["backend"] == "aoti" and written["parity"]["clips"] == 16
    return path


def test_the_package_runs_the_model_and_says_what_it_is(package, authors_checkpoint, clip):
    with load_engine(package, threads=1) as engine:
        assert (engine.backend, engine.precision, engine.n_frames, engine.max_batch) == ("aoti", "fp32", 27, MAX_BATCH)
        poses = engine.infer(clip.numpy())
        meta = engine.metadata()
    with torch.no_grad():
        expected = build_from_checkpoint(authors_checkpoint)(clip).numpy()
    np.testing.assert_allclose(poses, expected, atol=1e-4)
    assert meta["device"] == "cpu" and meta["cpu_isa"]
    config, source = recorded_model(package)
    assert config == authors_checkpoint.config.to_dict() and source == authors_checkpoint.source


def test_a_batch_past_the_compiled_one_is_refused_but_the_stream_splits_it(package):
    with load_engine(package, threads=1) as engine:
        with pytest.raises(InputError, match=f"batch {MAX_BATCH + 1} is larger than tiny.pt2 was compiled for"):
            engine.infer(np.zeros((MAX_BATCH + 1, 27, 17, 3), np.float32))
        runtime = StreamRuntime(engine, normalized=True)
        people = {person: np.full((17, 3), 0.01 * person, np.float32) for person in range(MAX_BATCH * 2 + 3)}
        results = runtime.process(people)
        assert [r.track_id for r in results] == list(people)
        alone = StreamRuntime(engine, normalized=True).process({5: people[5]})[0]
        np.testing.assert_allclose(results[5].pose, alone.pose, atol=1e-5)


def test_truncated_and_foreign_packages_are_refused(package, tmp_path):
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(package.read_bytes()[: package.stat().st_size // 2])
    with pytest.raises(KasfError, match="truncated.pt2 is not a loadable AOTInductor package"):
        load_engine(truncated)
    foreign = tmp_path / "foreign.pt2"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("model/archive_format", "pt2")
    with pytest.raises(KasfError, match="foreign.pt2 is not a loadable AOTInductor package"):
        load_engine(foreign)


def test_export_refuses_what_a_package_cannot_be(authors_checkpoint, tmp_path):
    with pytest.raises(ExportError, match=r"a \.pt2 file, got model\.onnx"):
        export_aoti(authors_checkpoint, tmp_path / "model.onnx")
    with pytest.raises(ExportError, match="max batch must be at least 1"):
        export_aoti(authors_checkpoint, tmp_path / "model.pt2", max_batch=0)
    with pytest.raises(ExportError, match="compiles for cpu or cuda"):
        export_aoti(authors_checkpoint, tmp_path / "model.pt2", device="mps")
    done = subprocess.run([sys.executable, "-m", "kasf", "export", "--checkpoint", str(AUTHORS_CHECKPOINT),
                           "--config", str(AUTHORS_YAML), "-o", str(tmp_path / "m.pt2"), "--aoti", "--fp16"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "--fp16 apply to ONNX graphs, not to --aoti packages" in done.stderr
    assert not (tmp_path / "m.pt2").exists()
    with pytest.raises(ExportError, match="AOTInductor packages are fp32 or bf16, got precision 'fp16'"):
        export_aoti(authors_checkpoint, tmp_path / "model.pt2", precision="fp16")


def test_a_package_without_a_precision_is_fp32_and_an_unknown_one_is_refused():
    assert package_precision({}, "old.pt2") == "fp32"
    with pytest.raises(KasfError, match="new.pt2 records precision 'fp8'; this kasf runs fp32 and bf16 packages"):
        package_precision({"kasf_precision": "fp8"}, "new.pt2")


def test_bf16_is_refused_where_it_would_be_emulated_and_for_onnx(authors_checkpoint, tmp_path, monkeypatch, capsys):
    common = ["export", "--checkpoint", str(AUTHORS_CHECKPOINT), "--config", str(AUTHORS_YAML), "--bf16"]
    assert main([*common, "-o", str(tmp_path / "m.onnx")]) == 1
    refusal = capsys.readouterr().err
    assert "--bf16 applies to --aoti packages only: ONNX Runtime's CPU has no fast BF16 kernels" in refusal
    monkeypatch.setattr(kasf.hardware, "bf16_unit", lambda features=None: None)
    with pytest.raises(ExportError, match="a BF16 package for cpu would not run fast: this CPU has neither AVX-512"):
        export_aoti(authors_checkpoint, tmp_path / "model.pt2", precision="bf16")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "model.pt2").exists()


@pytest.mark.skipif(kasf.hardware.bf16_unavailable("cpu") is not None, reason="needs a CPU that computes BF16")
def test_a_bf16_package_computes_in_bf16_with_fp32_in_and_out(authors_checkpoint, clip, tmp_path):
    """One more compile (the BF16 export form): what it records, and poses near FP32's."""
    result = export_aoti(authors_checkpoint, tmp_path / "tiny_bf16.pt2", max_batch=MAX_BATCH, precision="bf16")
    assert result.precision == "bf16"
    with load_engine(result.path, threads=1) as engine:
        assert (engine.precision, engine.max_batch) == ("bf16", MAX_BATCH)
        assert engine.values["kasf_precision"] == "bf16" and engine.values["kasf_fp32_islands"] == list(FP32_ISLANDS)
        raw = engine.package(clip)          # what the C++ runtime gets: one float32 tensor
        poses = engine.infer(clip.numpy())
    with torch.no_grad():
        expected = build_from_checkpoint(authors_checkpoint)(clip).numpy()
    assert raw.dtype == torch.float32 and poses.dtype == np.float32
    deviation = np.abs(poses - expected).mean()
    assert 0 < deviation < 2 * 2.0 ** -8 * np.abs(expected).mean()   # two BF16 unit roundoffs of the poses' size

