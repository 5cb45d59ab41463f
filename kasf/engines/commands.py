"""Command lines that reproduce an engine outside kasf, with NVIDIA's own tools."""

from __future__ import annotations

from ..model.kasportsformer import IN_CHANNELS
from ..keypoints.skeleton import NUM_JOINTS


def reproduction_commands(onnx_path: str, input_name: str, n_frames: int, precision: str, batch: int,
                          profile: tuple[int, int, int] | None = None, engine_path: str | None = None) -> list[str]:
    """Command lines that check the same graph outside kasf: Polygraphy comparing ONNX Runtime with
    TensorRT (for FP16, NVIDIA's transformer tolerances on the mean error), and trtexec building
    the engine as kasf does (strongly typed, no TF32, the same batch profile) or timing the built one."""
    low, opt, high = profile or (batch, batch, batch)

    def shape(b: int, sep: str) -> str:
        return sep.join(map(str, (b, n_frames, NUM_JOINTS, IN_CHANNELS)))

    tolerance = "1e-2" if precision == "fp16" else "1e-4"
    polygraphy = (f"polygraphy run {onnx_path} --onnxrt --trt --strongly-typed "
                  f"--input-shapes {input_name}:[{shape(batch, ',')}] "
                  f"--trt-min-shapes {input_name}:[{shape(low, ',')}] --trt-opt-shapes {input_name}:[{shape(opt, ',')}] "
                  f"--trt-max-shapes {input_name}:[{shape(high, ',')}] "
                  f"--atol {tolerance} --rtol {tolerance} --check-error-stat mean")
    trtexec = (f"trtexec --onnx={onnx_path} --stronglyTyped --noTF32 --minShapes={input_name}:{shape(low, 'x')} "
               f"--optShapes={input_name}:{shape(opt, 'x')} --maxShapes={input_name}:{shape(high, 'x')} "
               f"--shapes={input_name}:{shape(batch, 'x')} --profilingVerbosity=detailed --exportLayerInfo=layers.json")
    commands = [polygraphy, trtexec]
    if engine_path:
        commands.append(f"trtexec --loadEngine={engine_path} --shapes={input_name}:{shape(batch, 'x')}")
    return commands
