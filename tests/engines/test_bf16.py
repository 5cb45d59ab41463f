"""The torch backend's BF16 precision: the BF16 export form, FP32 keypoints in and poses out, its
FP32 islands kept; refused, saying why, where the hardware would emulate BF16."""

import numpy as np
import pytest
import torch

import kasf.hardware
from kasf.engines import load_engine
from kasf.engines.aoti import AotiEngine
from kasf.engines.torch import TorchEngine
from kasf.engines.variants import ModelFiles
from kasf.errors import KasfError
from kasf.export.fuse import FP32_MODULES
from kasf.model.checkpoint import build_from_checkpoint
from kasf.verify import ParityCheck, parity_clips

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML

WHY_NOT_HERE = kasf.hardware.bf16_unavailable("cpu")
needs_bf16 = pytest.mark.skipif(WHY_NOT_HERE is not None, reason=f"BF16 is refused here: {WHY_NOT_HERE}")
needs_cuda_bf16 = pytest.mark.skipif(kasf.hardware.bf16_unavailable("cuda") is not None,
                                     reason="needs a CUDA GPU with BF16 (compute capability 8.0 or later)")
BF16_UNIT_ROUNDOFF = 2.0 ** -8


@pytest.fixture
def without_bf16_units(monkeypatch):
    """A CPU with neither AVX-512 BF16 nor AMX, as /proc/cpuinfo would say."""
    monkeypatch.setattr(kasf.hardware, "bf16_unit", lambda features=None: None)


def _fp32_island(name: str) -> bool:
    return any(name == module or name.startswith(module + ".") for module in FP32_MODULES)


def _close_to_fp32(poses: np.ndarray, expected: np.ndarray) -> bool:
    """Within two BF16 unit roundoffs of the poses' size on average (the tiny model: about half of one)."""
    scale = np.abs(expected).mean()
    return poses.dtype == np.float32 and np.abs(poses - expected).mean() < 2 * BF16_UNIT_ROUNDOFF * scale


@needs_bf16
def test_bf16_engine_runs_the_export_form_close_to_fp32(authors_checkpoint, clip):
    with torch.no_grad():
        expected = build_from_checkpoint(authors_checkpoint)(clip).numpy()
    with load_engine(AUTHORS_CHECKPOINT, config=AUTHORS_YAML, precision="bf16") as engine:
        poses = engine.infer(clip)
        meta = engine.metadata()
        tensors = [*engine.model.named_parameters(), *engine.model.named_buffers()]
    assert _close_to_fp32(poses, expected) and not np.array_equal(poses, expected)
    assert (meta["backend"], meta["precision"], meta["device"]) == ("torch", "bf16", "cpu")
    floating = [(name, t.dtype) for name, t in tensors if t.is_floating_point()]
    assert {dtype for name, dtype in floating if _fp32_island(name)} == {torch.float32}
    assert {dtype for name, dtype in floating if not _fp32_island(name)} == {torch.bfloat16}
    assert {name.split(".")[0] for name, _ in floating if _fp32_island(name)} == {m.split(".")[0] for m in FP32_MODULES}


@needs_bf16
def test_bf16_parity_costs_no_more_than_the_precision_explains(authors_checkpoint):
    """The project's rules, unchanged: the deviation is within the BF16 floor. The tiny fixture is
    untrained: its poses are half again as large as the truth (740 mm MPJPE), BF16 rounding grows
    them by ~1 mm, and so the reference's own BF16 rounding moves its MPJPE by more than the 0.2 mm
    budget; the task metric fails for that reason only (a trained `small` passes it)."""
    with TorchEngine(AUTHORS_CHECKPOINT, AUTHORS_YAML, precision="bf16") as engine:
        report = ParityCheck(build_from_checkpoint(authors_checkpoint), parity_clips(32)).check(engine)
    assert (report["precision"], report["budget_mm"]) == ("bf16", 0.2)
    assert report["clauses"]["floor"]["passed"], report["explanation"]
    assert report["passed"] or "the cost is the precision's on this model, not the graph's" in report["explanation"]


def test_bf16_is_refused_where_the_cpu_would_emulate_it(authors_checkpoint, without_bf16_units, tmp_path):
    model = build_from_checkpoint(authors_checkpoint)
    with pytest.raises(KasfError, match="precision 'bf16' on device 'cpu' would not run fast: this CPU has neither "
                                        "AVX-512 BF16 nor AMX-BF16"):
        TorchEngine(model, precision="bf16")
    files = ModelFiles(AUTHORS_CHECKPOINT, tmp_path, AUTHORS_YAML)
    statuses = [v.status for v in TorchEngine.variants(files) + AotiEngine.variants(files) if v.precision == "bf16"]
    assert len(statuses) == 2 and all(s.startswith("skipped: this CPU has neither AVX-512 BF16") for s in statuses)
    with TorchEngine(model) as fp32:
        assert fp32.precision == "fp32"


@needs_bf16
def test_bf16_variants_are_candidates_for_optimize(tmp_path):
    files = ModelFiles(AUTHORS_CHECKPOINT, tmp_path, AUTHORS_YAML)
    torch_bf16 = {v.name: v for v in TorchEngine.variants(files)}["torch bf16 cpu"]
    assert (torch_bf16.role, torch_bf16.precision, torch_bf16.options) == ("candidate", "bf16", {"precision": "bf16"})
    assert torch_bf16.path == AUTHORS_CHECKPOINT
    packages = AotiEngine.variants(files)
    assert [(v.name, v.precision, v.role, v.path) for v in packages] == [
        ("aoti fp32 cpu", "fp32", "candidate", None), ("aoti bf16 cpu", "bf16", "candidate", None)]


@needs_cuda_bf16
def test_bf16_on_a_gpu_with_cuda_graphs(authors_checkpoint, clip, tmp_path):
    model = build_from_checkpoint(authors_checkpoint)
    with torch.no_grad():
        expected = model(clip).numpy()
    with TorchEngine(model, device="cuda", precision="bf16", cuda_graphs=True) as graphs, \
            TorchEngine(model, device="cuda", precision="bf16") as plain:
        for batch in (2, 1, 2):
            assert np.allclose(graphs.infer(clip[:batch]), plain.infer(clip[:batch]), atol=1e-6)
        assert _close_to_fp32(plain.infer(clip), expected) and sorted(graphs._graphs) == [1, 2]
    names = {v.name: v for v in TorchEngine.variants(ModelFiles(AUTHORS_CHECKPOINT, tmp_path, AUTHORS_YAML))}
    assert names["torch bf16 cuda"].role == "candidate"
    assert names["torch bf16 cuda"].options == {"device": "cuda", "precision": "bf16"}
