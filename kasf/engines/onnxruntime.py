"""ONNX Runtime backend: the CPU execution provider always; the CUDA and TensorRT execution
providers when onnxruntime-gpu is installed.

ONNX Runtime silently falls back to the CPU when a GPU provider cannot start, so the engine checks
that every provider it asked for is in use. On a GPU, inputs and outputs are bound to torch CUDA
tensors (IO binding): one binding per batch size, bound once, so a run copies nothing through
numpy and allocates nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, KasfError
from ..export.artifact import INPUT_NAME, OUTPUT_NAME, read_metadata, recorded_model, require_metadata
from ..files import default_cache_dir
from ..model.kasportsformer import IN_CHANNELS
from ..keypoints.skeleton import NUM_JOINTS
from .base import Engine, check_batch_profile
from .commands import reproduction_commands
from .variants import ModelFiles, Variant

# What each kasf provider name asks ONNX Runtime for, in priority order (CPU runs what the others leave).
EXECUTION_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
DEFAULT_TRT_BATCH_PROFILE = (1, 8, 64)
# The newest onnxruntime-gpu whose TensorRT provider kasf has read: its options (trt_fp16_enable,
# trt_bf16_enable, trt_int8_enable, ...) include no strongly typed mode, the network it builds is
# weakly typed, and it links TensorRT 10 (libnvinfer.so.10), so it cannot load TensorRT 11.
ORT_TENSORRT_CHECKED = "1.31.1"


@dataclass
class _Binding:
    """An IO binding with its input and output buffers, for one batch size."""
    binding: object
    keypoints: torch.Tensor
    poses: torch.Tensor


HOW = "`kasf export` / export/to_onnx.py"
# The graph forms kasf runs from a checkpoint: (precision, the ONNX Attention op form, role). The
# Attention op form is ONNX Runtime's fastest FP32 on the CPU, an alternative `kasf bench` times beside
# the default; the INT8 QDQ graph (kasf.export.quantize) is a candidate for `kasf optimize`.
FORMS = (("fp32", False, "primary"), ("fp32", True, "alternative"), ("fp16", False, "primary"),
         ("int8", False, "candidate"))


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, path: str | Path, provider: str = "cpu", device_id: int = 0, threads: int | None = None,
                 io_binding: bool | None = None, trt_batch_profile: tuple[int, int, int] = DEFAULT_TRT_BATCH_PROFILE,
                 trt_cache_dir: str | Path | None = None, spin_wait: bool = True):
        """provider: "cpu", "cuda" or "tensorrt". io_binding (default: on for the GPU providers) binds
        torch tensors on the provider's device; trt_batch_profile is the (min, opt, max) batch the
        TensorRT provider builds for, trt_cache_dir where it keeps engines and timing caches.
        spin_wait=False lets the CPU threads sleep between runs instead of spinning: slower wake-up,
        but no cores taken from other work sharing the CPU (another engine, the capture app)."""
        import onnxruntime as ort

        if provider not in EXECUTION_PROVIDERS:
            raise KasfError(f"unknown ONNX Runtime provider {provider!r}: "
                            f"choose one of {', '.join(EXECUTION_PROVIDERS)}")
        self.trt_batch_profile = check_batch_profile(*trt_batch_profile) if provider == "tensorrt" else None
        path = Path(path)
        if not path.is_file():
            raise KasfError(f"ONNX model {path} does not exist")
        meta = read_metadata(path)
        require_metadata(meta, path, HOW)
        precision = meta.get("kasf_precision", "fp32")
        super().__init__(meta["kasf_model_config"]["n_frames"], precision)
        wanted = EXECUTION_PROVIDERS[provider]
        absent = [name for name in wanted if name not in ort.get_available_providers()]
        if absent:
            raise KasfError(f"this ONNX Runtime build ({ort.__version__}, providers {ort.get_available_providers()}) "
                            f"has no {', '.join(absent)}: install onnxruntime-gpu (it replaces onnxruntime) "
                            "with a CUDA that matches it, or use provider 'cpu'")
        self.device = torch.device("cpu") if provider == "cpu" else torch.device("cuda", device_id)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise KasfError(f"provider {provider!r} needs torch with CUDA (inputs and outputs are torch CUDA "
                            "tensors); this torch has no CUDA device")

        options = ort.SessionOptions()
        # ORT_ENABLE_ALL has crashed ORT on FP16 graphs (see the README); EXTENDED is safe.
        options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if precision == "fp16"
                                            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
        providers = [(name, self._provider_options(name, device_id, trt_cache_dir)) for name in wanted]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # ORT raises its own Fail/InvalidGraph/... types
            raise KasfError(f"ONNX Runtime cannot load {path} with {', '.join(wanted)}: {err}") from None
        missing = [name for name in wanted if name not in self.session.get_providers()]
        if missing:
            raise KasfError(f"ONNX Runtime fell back from {', '.join(missing)} to {self.session.get_providers()}: "
                            "check that the CUDA, cuDNN (and TensorRT) libraries onnxruntime-gpu needs are "
                            "installed (its log above says which failed), or use provider 'cpu'")
        self.path, self.provider, self.device_id = path, provider, device_id
        self.io_binding = self.device.type == "cuda" if io_binding is None else io_binding
        self._bindings: dict[int, _Binding] = {}

    def _provider_options(self, name: str, device_id: int, trt_cache_dir: str | Path | None) -> dict:
        if name == "CPUExecutionProvider":
            return {}
        if name == "CUDAExecutionProvider":
            return {"device_id": device_id}
        cache = Path(trt_cache_dir) if trt_cache_dir else default_cache_dir() / "onnxruntime-tensorrt"
        cache.mkdir(parents=True, exist_ok=True)
        shape = f"{self.n_frames}x{NUM_JOINTS}x{IN_CHANNELS}"
        low, opt, high = self.trt_batch_profile
        return {
            "device_id": device_id,
            **tensorrt_precision_options(self.precision, ort_version()),
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
            "trt_profile_min_shapes": f"{INPUT_NAME}:{low}x{shape}",
            "trt_profile_opt_shapes": f"{INPUT_NAME}:{opt}x{shape}",
            "trt_profile_max_shapes": f"{INPUT_NAME}:{high}x{shape}",
        }

    @classmethod
    def recorded_model(cls, path: Path, config=None) -> tuple[dict, dict]:
        return recorded_model(read_metadata(path), path, HOW)

    @classmethod
    def variants(cls, files: ModelFiles) -> list[Variant]:
        """Each graph form on the CPU; the default FP32 and FP16 forms also on CUDA where
        onnxruntime-gpu has it (its CUDA provider runs QDQ graphs dequantized, in FP32)."""
        import onnxruntime as ort

        cuda = torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()
        found = []
        for precision, attention_op, role in FORMS:
            cpu = Variant(f"onnxruntime {precision} cpu{' attention-op' if attention_op else ''}", cls.backend,
                          precision, "cpu", None, role=role,
                          streaming_rank=2 if (precision, attention_op) == ("fp32", False) else None,
                          make=lambda p=precision, a=attention_op: files.onnx(p, a))
            found.append(cpu)
            if cuda and role == "primary":
                found.append(Variant(f"onnxruntime {precision} cuda", cls.backend, precision, "cuda", None,
                                     {"provider": "cuda"}, streaming_rank=1 if precision == "fp16" else None,
                                     make=lambda p=precision: files.onnx(p)))
        return found

    def reproduction_commands(self, batch: int) -> list[str]:
        return reproduction_commands(str(self.path), INPUT_NAME, self.n_frames, self.precision, batch,
                                     (1, batch, batch))

    def _infer(self, keypoints: torch.Tensor) -> np.ndarray:
        batch = keypoints.shape[0]
        if self.trt_batch_profile and not self.trt_batch_profile[0] <= batch <= self.trt_batch_profile[2]:
            raise InputError(f"batch {batch} is outside the TensorRT profile's batch range "
                             f"{self.trt_batch_profile[0]}..{self.trt_batch_profile[2]} (trt_batch_profile)")
        if not self.io_binding:
            return self.session.run(None, {INPUT_NAME: keypoints.cpu().numpy()})[0]
        bound = self._bindings.get(batch) or self._bind(batch)
        bound.keypoints.copy_(keypoints)
        if self.device.type == "cuda":
            # ORT runs on its own stream and does not wait for torch's: the copy above must be done.
            torch.cuda.current_stream(self.device).synchronize()
        # Run() synchronises ORT's stream before it returns (run option disable_synchronize_execution_providers
        # unset), so the bound output is complete here.
        self.session.run_with_iobinding(bound.binding)
        return bound.poses.cpu().numpy() if self.device.type == "cuda" else bound.poses.numpy().copy()

    def _bind(self, batch: int) -> _Binding:
        """Preallocate the input and output of one batch size on the device and bind them by address."""
        shape = (batch, self.n_frames, NUM_JOINTS, IN_CHANNELS)
        keypoints = torch.empty(shape, dtype=torch.float32, device=self.device)
        poses = torch.empty(shape, dtype=torch.float32, device=self.device)
        binding = self.session.io_binding()
        device_id = self.device.index or 0
        binding.bind_input(INPUT_NAME, self.device.type, device_id, np.float32, shape, keypoints.data_ptr())
        binding.bind_output(OUTPUT_NAME, self.device.type, device_id, np.float32, shape, poses.data_ptr())
        self._bindings[batch] = _Binding(binding, keypoints, poses)
        return self._bindings[batch]

    def compute_timer(self, batch: int):
        """ORT runs on its own stream, out of reach of torch's events, and its run returns
        synchronised: host time around a run on bound device buffers is its compute plus launch."""
        if self.device.type != "cuda":
            return None
        binding = (self._bindings.get(batch) or self._bind(batch)).binding

        def run() -> float:
            start = time.perf_counter()
            self.session.run_with_iobinding(binding)
            return time.perf_counter() - start
        return run

    def metadata(self) -> dict:
        return {**super().metadata(), "path": str(self.path), "provider": self.provider,
                "providers": self.session.get_providers(), "device": str(self.device), "io_binding": self.io_binding}

    def close(self) -> None:
        self._bindings.clear()


def ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("+")[0].split(".")[:3] if part.isdigit())


def tensorrt_precision_options(precision: str, version: str) -> dict[str, bool]:
    """The TensorRT provider's precision options for a kasf graph, in ONNX Runtime `version`.

    The precision must stay the graph's. Only a strongly typed network keeps the FP16 graph's FP32
    islands FP32, and the provider has none: its trt_fp16_enable is weak typing, which lets TensorRT
    put any layer, islands included, in FP16. So the FP16 graph is refused; the FP32 graph gets no
    reduced precision; the INT8 QDQ graph the INT8 flag (weak typing's explicit quantization, the
    scales the graph's own)."""
    if precision == "fp16":
        known = ("has no strongly typed mode" if _release(version) <= _release(ORT_TENSORRT_CHECKED) else
                 f"has no strongly typed mode kasf knows (none up to onnxruntime-gpu {ORT_TENSORRT_CHECKED} has one)")
        raise KasfError(f"ONNX Runtime {version}'s TensorRT provider {known}: it builds weakly typed networks, "
                        "where trt_fp16_enable lets TensorRT run the FP16 graph's FP32 islands (LayerNorm, Softmax, "
                        "the GCN similarity, whose products can pass FP16's 65504) in FP16. Build the FP16 graph "
                        "with `kasf build` (strongly typed TensorRT), or run it on provider 'cuda', or run the FP32 "
                        "graph on provider 'tensorrt'")
    if precision not in ("fp32", "int8"):
        raise KasfError(f"ONNX Runtime's TensorRT provider runs kasf's fp32 and int8 graphs, not {precision!r}")
    return {"trt_fp16_enable": False, "trt_int8_enable": precision == "int8"}
