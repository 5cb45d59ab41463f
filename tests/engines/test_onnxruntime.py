import numpy as np
import onnxruntime as ort
import pytest
import torch

from kasf.engines.onnxruntime import OnnxRuntimeEngine
from kasf.errors import InputError, KasfError

GPU_PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def _keypoints(batch: int, seed: int = 0) -> np.ndarray:
    keypoints = np.random.default_rng(seed).uniform(-1, 1, (batch, 27, 17, 3)).astype(np.float32)
    keypoints[..., 2] = 1.0
    return keypoints


def test_cpu_runs_plain_session_run(tiny_onnx):
    with OnnxRuntimeEngine(tiny_onnx) as engine:
        assert not engine.io_binding
        assert engine.session.get_providers() == ["CPUExecutionProvider"]
        assert engine.metadata()["providers"] == ["CPUExecutionProvider"]
        assert engine.infer(_keypoints(2)).shape == (2, 27, 17, 3)


def test_io_binding_equals_session_run_across_batch_sizes(tiny_onnx):
    """The binding path (the one used on GPUs) run on the CPU: same numbers, buffers reused, results not."""
    with OnnxRuntimeEngine(tiny_onnx) as plain, OnnxRuntimeEngine(tiny_onnx, io_binding=True) as bound:
        first = bound.infer(_keypoints(3, seed=1))
        assert np.array_equal(bound.infer(_keypoints(1, seed=2)), plain.infer(_keypoints(1, seed=2)))
        third = bound.infer(torch.from_numpy(_keypoints(3, seed=3)))
        assert sorted(bound._bindings) == [1, 3]
        assert np.array_equal(first, plain.infer(_keypoints(3, seed=1)))   # not overwritten by the third call
        assert np.array_equal(third, plain.infer(_keypoints(3, seed=3)))
        assert not np.shares_memory(first, third)


@pytest.mark.parametrize("provider", sorted(GPU_PROVIDERS))
def test_gpu_provider_missing_from_this_build_is_refused(tiny_onnx, provider):
    if GPU_PROVIDERS[provider] in ort.get_available_providers():
        pytest.skip(f"this ONNX Runtime has {GPU_PROVIDERS[provider]}")
    with pytest.raises(KasfError, match=f"has no .*{GPU_PROVIDERS[provider]}.*install onnxruntime-gpu"):
        OnnxRuntimeEngine(tiny_onnx, provider=provider)


def test_bad_arguments_are_refused(tiny_onnx, tmp_path):
    with pytest.raises(KasfError, match="unknown ONNX Runtime provider 'gpu'"):
        OnnxRuntimeEngine(tiny_onnx, provider="gpu")
    with pytest.raises(KasfError, match="min <= opt <= max"):
        OnnxRuntimeEngine(tiny_onnx, provider="tensorrt", trt_batch_profile=(1, 16, 8))
    with pytest.raises(KasfError, match="does not exist"):
        OnnxRuntimeEngine(tmp_path / "absent.onnx")


@pytest.mark.parametrize("provider", sorted(GPU_PROVIDERS))
def test_gpu_provider_with_io_binding_equals_cpu(tiny_onnx, tmp_path, provider):
    if GPU_PROVIDERS[provider] not in ort.get_available_providers() or not torch.cuda.is_available():
        pytest.skip(f"needs onnxruntime-gpu with {GPU_PROVIDERS[provider]} and a CUDA device")
    keypoints = _keypoints(4)
    with OnnxRuntimeEngine(tiny_onnx) as cpu, OnnxRuntimeEngine(tiny_onnx, provider=provider, trt_cache_dir=tmp_path,
                                                               trt_batch_profile=(1, 4, 8)) as gpu:
        assert gpu.io_binding and GPU_PROVIDERS[provider] in gpu.session.get_providers()
        assert np.abs(gpu.infer(keypoints) - cpu.infer(keypoints)).max() < 1e-3
        assert np.abs(gpu.infer(torch.from_numpy(keypoints).cuda()) - cpu.infer(keypoints)).max() < 1e-3
        if provider == "tensorrt":
            with pytest.raises(InputError, match="outside the TensorRT profile"):
                gpu.infer(_keypoints(9))
