"""TensorRT backend: build an engine from kasf's ONNX graph (build.py), the sidecar that says what it
was built for (sidecar.py), and run it (runner.py).

Build (`build_engine`): a strongly typed network from the ONNX file, so the precision is the
graph's own (kasf's `--fp16` export is FP16 with FP32 inputs, outputs and islands); TensorRT 11
networks are always strongly typed, and only a TensorRT without strong typing falls back to the
weak FP16 builder flag. TF32 is turned off: it would round the FP32 islands' matmuls (and every
matmul of an FP32 graph) to 10-bit mantissas. One optimisation profile spans the batch axis. The
plan is written atomically with a JSON sidecar `<engine>.json` (TensorRT version, GPU, compute
capability, profile, names, model config, the ONNX's kasf metadata and SHA-256, the plan's
SHA-256) and the engine inspector's layer information `<engine>.layers.json`, summarised in the
sidecar as a precision report (report.py): the share of layers running in FP16 and whether
attention was fused, read from TensorRT 10's or 11's schema, "unknown" (with the reason) where
kasf cannot read it. A timing cache TensorRT refuses (recorded on another GPU) is replaced.

Run (`TensorRTEngine`): the sidecar is checked against the running TensorRT and GPU first (a plan
only runs on the TensorRT version and compute capability it was built for), then the plan is
deserialised and run with execute_async_v3 on torch CUDA buffers through pinned host staging, on
its own torch CUDA stream (a graph replays on torch's current stream, so it is made current);
optionally as one CUDA graph per batch size, and without them when a capture fails (as trtexec
falls back). Input and output shapes are checked against the context (shapes.py).

`import tensorrt` happens inside the functions that need it: this module imports anywhere.
"""

from .build import STRONGLY_TYPED, WEAK_FP16_FLAG, BuiltEngine, build_engine, network_typing
from .report import BOOKKEEPING_LAYERS, FUSED_ATTENTION, precision_report, tensor_precision
from .runner import TensorRTEngine
from .sidecar import (INSTALL_HINT, SIDECAR_FORMAT, SIDECAR_VERSION, EngineCompatibilityError, check_engine_compatibility,
                      compute_capability_text, import_tensorrt, layers_path, read_sidecar, sidecar_path)

__all__ = ["BOOKKEEPING_LAYERS", "FUSED_ATTENTION", "INSTALL_HINT", "SIDECAR_FORMAT", "SIDECAR_VERSION", "STRONGLY_TYPED",
           "WEAK_FP16_FLAG", "BuiltEngine", "EngineCompatibilityError", "TensorRTEngine", "build_engine",
           "check_engine_compatibility", "compute_capability_text", "import_tensorrt", "layers_path",
           "network_typing", "precision_report", "read_sidecar", "sidecar_path", "tensor_precision"]
