"""Running a TensorRT plan: the sidecar is checked against the running TensorRT and GPU first (a plan
only runs on the TensorRT version and compute capability it was built for), then the plan is
deserialised and run with execute_async_v3 on torch CUDA buffers through pinned host staging, on
its own torch CUDA stream; optionally as one CUDA graph per batch size, replayed with that stream
current (a replay goes to torch's current stream), and plain enqueues when a capture fails."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...errors import InputError, KasfError
from ...model.kasportsformer import IN_CHANNELS
from ...keypoints.skeleton import NUM_JOINTS
from ..base import Engine, cuda_event_seconds
from ..commands import reproduction_commands
from ..variants import ModelFiles, Variant
from .shapes import check_output_shape, set_input_shape
from .sidecar import (check_engine_compatibility, cuda_index, import_tensorrt, read_sidecar, require_cuda,
                      sha256_bytes, sidecar_path)


PROFILE = (1, 8, 64)   # the (min, opt, max) batch of the plans kasf builds from a checkpoint (demo, bench)


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, path: str | Path, device: int | str = 0, cuda_graphs: bool = False):
        """device: a CUDA device index or "cuda:N". cuda_graphs: capture one CUDA graph per batch
        size, each with its own execution context (a graph fixes shapes and addresses; each context
        holds its own activation memory)."""
        path = Path(path)
        if not path.is_file():
            raise KasfError(f"TensorRT engine {path} does not exist")
        trt = import_tensorrt()
        sidecar = read_sidecar(path)
        require_cuda("running a TensorRT engine")
        device = cuda_index(device)
        self.notes = check_engine_compatibility(sidecar, trt.__version__, torch.cuda.get_device_name(device),
                                                torch.cuda.get_device_capability(device))
        plan = path.read_bytes()
        if sidecar.get("engine_sha256") != sha256_bytes(plan):
            raise KasfError(f"{path} is not the plan its sidecar {sidecar_path(path).name} describes (SHA-256 "
                            "differs): rebuild it with `kasf build`")
        super().__init__(sidecar["model_config"]["n_frames"], sidecar["precision"])
        self.path, self.sidecar, self.device, self.cuda_graphs = path, sidecar, torch.device("cuda", device), cuda_graphs
        self.input_name, self.output_name = sidecar["input"], sidecar["output"]
        with torch.cuda.device(device):
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise KasfError(f"TensorRT {trt.__version__} could not deserialise {path} (its log above says why)")
            self._check_io(trt)
            low, _, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
            self.min_batch, self.max_batch = int(low[0]), int(high[0])
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(device)
            shape = (self.max_batch, self.n_frames, NUM_JOINTS, IN_CHANNELS)
            self._device_input = torch.empty(shape, dtype=torch.float32, device=f"cuda:{device}")
            self._device_output = torch.empty(shape, dtype=torch.float32, device=f"cuda:{device}")
            self._host_input = torch.empty(shape, dtype=torch.float32, pin_memory=True)
            self._host_output = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        self._context_batch = 0
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Any]] = {}

    @classmethod
    def recorded_model(cls, path: Path, config=None) -> tuple[dict, dict]:
        sidecar = read_sidecar(path)
        return sidecar["model_config"], sidecar["kasf_metadata"].get("kasf_source", {})

    @classmethod
    def variants(cls, files: ModelFiles) -> list[Variant]:
        """FP32 and FP16 plans built from the checkpoint's ONNX graphs, with one timing cache; and
        an INT8 plan from the QDQ graph, a candidate for `kasf optimize`."""
        from .build import build_engine

        def plan(precision: str) -> Path:
            return files.make(f"model_{precision}.engine", lambda path: build_engine(
                files.onnx(precision), path, *PROFILE, timing_cache=files.out_dir / "trt.cache"))
        return [Variant(f"tensorrt {p} cuda", cls.backend, p, "cuda", None, making="build",
                        streaming_rank=0 if p == "fp16" else None, role="candidate" if p == "int8" else "primary",
                        make=lambda p=p: plan(p)) for p in ("fp32", "fp16", "int8")]

    def reproduction_commands(self, batch: int) -> list[str]:
        profile = tuple(self.sidecar["profile"][k][0] for k in ("min", "opt", "max"))
        return reproduction_commands(self.sidecar["onnx"]["path"], self.input_name, self.n_frames, self.precision,
                                     batch, profile, str(self.path))

    def _check_io(self, trt) -> None:
        names = {self.engine.get_tensor_name(i): self.engine.get_tensor_mode(self.engine.get_tensor_name(i))
                 for i in range(self.engine.num_io_tensors)}
        expected = {self.input_name: trt.TensorIOMode.INPUT, self.output_name: trt.TensorIOMode.OUTPUT}
        if names != expected:
            raise KasfError(f"{self.path} has I/O tensors {sorted(names)}, its sidecar says input "
                            f"{self.input_name!r} and output {self.output_name!r}: rebuild it with `kasf build`")
        for name in names:
            if self.engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise KasfError(f"{self.path}'s tensor {name!r} is {self.engine.get_tensor_dtype(name)}, kasf's "
                                "engines take and give float32: build it from a kasf ONNX export")

    def _bind(self, context, batch: int) -> None:
        """The batch's input shape, then the output shape it gives checked against the output buffer
        (sized [max_batch, frames, 17, 3]), then both buffers' addresses."""
        shape = (batch, self.n_frames, NUM_JOINTS, IN_CHANNELS)
        set_input_shape(self.engine, context, self.input_name, shape, str(self.path))
        check_output_shape(context, self.output_name, shape, str(self.path))
        for name, buffer in ((self.input_name, self._device_input), (self.output_name, self._device_output)):
            if not context.set_tensor_address(name, buffer.data_ptr()):
                raise KasfError(f"TensorRT refused the device buffer of {name!r} for {self.path}")

    def _enqueue(self, context) -> None:
        if not context.execute_async_v3(stream_handle=self.stream.cuda_stream):
            raise KasfError(f"TensorRT failed to run {self.path} (its log above says why)")

    def _capture(self, batch: int):
        """TensorRT must run once after a shape change before its enqueue can be captured. A failed
        capture turns CUDA graphs off for this engine, with a warning saying why (as trtexec does);
        None then."""
        context = self.engine.create_execution_context()
        self._bind(context, batch)
        self._enqueue(context)
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            capture(graph, self.stream, lambda: self._enqueue(context))
        except KasfError as err:
            self.cuda_graphs = False
            warnings.warn(f"CUDA graphs are off for {self.path}: capturing its enqueue for batch {batch} failed "
                          f"({err}); it runs plain enqueues", stacklevel=4)
            return None
        self._graphs[batch] = (graph, context)
        return self._graphs[batch]

    def _infer(self, keypoints: torch.Tensor) -> np.ndarray:
        batch = len(keypoints)
        if not self.min_batch <= batch <= self.max_batch:
            raise InputError(f"batch {batch} is outside this engine's profile ({self.min_batch} to {self.max_batch}): "
                             "split the batch, or rebuild with `kasf build --min-batch/--max-batch`")
        host_input, host_output = self._host_input[:batch], self._host_output[:batch]
        host_input.copy_(keypoints)
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            self._device_input[:batch].copy_(host_input, non_blocking=True)
            self._runner(batch)()
            host_output.copy_(self._device_output[:batch], non_blocking=True)
        self.stream.synchronize()
        return host_output.numpy().copy()

    def _runner(self, batch: int):
        """What runs the engine on the device buffers for this batch: a graph replay, or an enqueue
        on the shared context bound to the batch's shape. Call it, and what it returns, with the
        engine's stream current (`_on_stream`): a replay goes to torch's current stream."""
        if self.cuda_graphs:
            captured = self._graphs.get(batch) or self._capture(batch)
            if captured is not None:
                return captured[0].replay

        def enqueue() -> None:
            if batch != self._context_batch:
                self._bind(self.context, batch)
                self._context_batch = batch
            self._enqueue(self.context)
        return enqueue

    def _on_stream(self, work: Callable[[], Any]) -> Any:
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            return work()

    def compute_timer(self, batch: int):
        """Events on the engine's stream around a run queued on that same stream."""
        run = self._on_stream(lambda: self._runner(batch))
        return lambda: self._on_stream(lambda: cuda_event_seconds(run, self.stream))

    def metadata(self) -> dict:
        return {**super().metadata(), "path": str(self.path), "tensorrt_version": self.sidecar["tensorrt_version"],
                "gpu_name": self.sidecar["gpu_name"], "batch_range": [self.min_batch, self.max_batch],
                "cuda_graphs": self.cuda_graphs, "model_config": self.sidecar["model_config"], "notes": self.notes}

    def close(self) -> None:
        """Graphs and contexts go before the engine, the engine before the runtime."""
        self._graphs.clear()
        self.context = None
        self.engine = None


def _attempt(work: Callable[[], Any]) -> str | None:
    """None when work runs, else what went wrong (TensorRT's refusal, or torch's CUDA error)."""
    try:
        work()
    except (KasfError, RuntimeError) as err:
        return str(err)
    return None


def capture(graph, stream, enqueue: Callable[[], Any]) -> None:
    """Capture enqueue into graph on stream, as trtexec does: whatever fails, the capture is ended
    (the stream leaves capture mode; torch's check of the end clears CUDA's error, calling
    cudaGetLastError) and a KasfError says why. Capturing in thread-local mode leaves other
    threads' CUDA calls alone. (torch.cuda.graph would hide a failure behind its capture_end's.)"""
    with torch.cuda.stream(stream):
        graph.capture_begin(capture_error_mode="thread_local")
        failed = _attempt(enqueue)
        ended = _attempt(graph.capture_end)
    if failed or ended:
        raise KasfError("; ".join(reason for reason in (failed, ended) if reason))
