"""AOTInductor packages: `kasf export --aoti`, the aoti engine, and the refusals of bad files.
One real compile per session (about 30 s on the CI machine; Inductor caches it after)."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from kasf.model.checkpoint import build_from_checkpoint
from kasf.engines import load_engine, recorded_model
from kasf.errors import InputError, KasfError
from kasf.export.aoti import export_aoti
from kasf.export.artifact import ExportError
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

