"""A backend is one module and one row of the table: a toy backend, registered by one row and
nothing else, is opened by load_engine, timed by bench (also from a checkpoint), checked by parity
(library and CLI), and offered on the command line with its own option."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FIXTURES
from kasf.bench import BenchSettings, EngineSpec, checkpoint_specs, run_benchmark
from kasf.cli import main
from kasf.engines import BACKENDS, Backend, Option, load_engine
from kasf.engines.base import Engine
from kasf.engines.variants import ModelFiles, Variant
from kasf.errors import KasfError
from kasf.model import load_model, read_checkpoint
from kasf.verify import ParityCheck, parity_clips


class ToyEngine(Engine):
    """Runs the checkpoint a .toy file (JSON) names, through PyTorch, its outputs times `scale`:
    an engine whose error is known."""
    backend = "toy"

    def __init__(self, path, scale: float = 1.0):
        self.path = Path(path)
        self.model = load_model(json.loads(self.path.read_text())["checkpoint"])
        self.scale = scale
        super().__init__(self.model.config.n_frames, "fp32")

    @classmethod
    def recorded_model(cls, path, config=None):
        checkpoint = read_checkpoint(json.loads(Path(path).read_text())["checkpoint"])
        return checkpoint.config.to_dict(), checkpoint.source

    @classmethod
    def variants(cls, files: ModelFiles):
        def write(path: Path) -> None:
            path.write_text(json.dumps({"checkpoint": str(files.checkpoint_path)}))
        return [Variant("toy fp32 cpu", cls.backend, "fp32", "cpu", None, make=lambda: files.make("model.toy", write))]

    def reproduction_commands(self, batch):
        return [f"toy-run {self.path} --batch {batch}"]

    def _infer(self, keypoints):
        with torch.inference_mode():
            return (self.model(keypoints) * self.scale).numpy()


TOY = Backend("toy", (".toy",), __name__, "ToyEngine", ("fp32",),
              (Option("scale", (float,), "a factor on every output"),))


@pytest.fixture
def tiny_checkpoint():
    return FIXTURES / "release_98bfa85.pt"


@pytest.fixture
def toy(monkeypatch, tiny_checkpoint, tmp_path):
    monkeypatch.setitem(BACKENDS, "toy", TOY)
    path = tmp_path / "model.toy"
    path.write_text(json.dumps({"checkpoint": str(tiny_checkpoint)}))
    return path


def test_load_engine_opens_it_and_checks_its_options(toy, clip):
    with load_engine(toy) as engine:
        np.testing.assert_allclose(engine.infer(clip), load_model(json.loads(toy.read_text())["checkpoint"])(clip)
                                   .detach().numpy(), atol=1e-6)
    with pytest.raises(KasfError, match="option scale of the toy backend takes float"):
        load_engine(toy, scale="1")
    with pytest.raises(KasfError, match="the toy backend has no option 'threads'; it takes scale"):
        load_engine(toy, threads=1)


def test_parity_runs_it_and_fails_it_when_it_is_off(toy, tiny_checkpoint):
    clips = parity_clips(8, 27)
    check = ParityCheck(load_model(tiny_checkpoint), clips)
    with load_engine(toy) as exact, load_engine(toy, scale=1.05) as shifted:
        assert check.check(exact)["passed"]
        assert not check.check(shifted)["passed"]


def test_the_parity_command_reads_it_from_the_table(toy, tiny_checkpoint, capsys):
    assert main(["parity", "--engine", str(toy), "--reference", str(tiny_checkpoint), "--clips", "8"]) == 0
    assert f"toy-run {toy} --batch 8" in capsys.readouterr().out
    assert main(["parity", "--engine", str(toy), "--reference", str(tiny_checkpoint), "--clips", "8",
                 "--scale", "1.05"]) == 1


def test_bench_times_it_with_its_parity(toy, tiny_checkpoint, tmp_path):
    settings = BenchSettings(batches=(1,), warmup_s=0.0, min_iterations=2, min_duration_s=0.0, settle_s=0.0,
                             reference=tiny_checkpoint, parity_clips=8)
    report = run_benchmark([EngineSpec(toy)], settings, log=lambda message: None)
    (row,) = report["rows"]
    assert (row["status"], row["backend"], row["precision"]) == ("ok", "toy", "fp32")
    assert row["parity"]["verdict"] == "PASS"


def test_bench_from_a_checkpoint_makes_its_file(toy, tiny_checkpoint, tmp_path):
    specs, failed = checkpoint_specs(tiny_checkpoint, None, tmp_path / "bench", log=lambda message: None)
    assert not failed
    assert tmp_path / "bench" / "model.toy" in [spec.path for spec in specs]
