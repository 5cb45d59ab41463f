"""The demo: the whole pipeline on the embedded motion capture, in one command, into one report.

Stages, in order (each a small function; later stages read what earlier ones wrote in --out):

  train      the preset, time-bounded (kasf.train.trainer)              train/best.pt
  evaluate   MPJPE / P-MPJPE per motion and per joint on test       evaluation.json, predictions.npz
  export     fused ONNX graphs, FP32 and FP16 (kasf.export.onnx)    model_fp32.onnx, model_fp16.onnx
  engines    every engine this machine runs (TensorRT only where    engines.json (+ .engine files)
             `import tensorrt` works; otherwise a row saying why)
  parity     each engine against PyTorch FP32: MPJPE and the noise  parity.json, parity.png
             floor (kasf.verify)
  bench      interleaved timing at small batches (kasf.bench)       bench.json, bench.csv, bench.png
  realtime   the streaming runtime replaying people at 30 fps,      realtime.json
             causal and strided with the engine worker
  latency    streamed MPJPE, jitter and work per (lag, stride)      latency_accuracy.json, .png
  lift       kasf lift on real OpenPose output (samples/) and its    lift/poses*.trc, poses.npz,
             video: tracked, lifted, rendered                        lifted.mp4, lift.json
  report     charts, 3D skeletons, an animated clip, one HTML page  report.html, *.png, clip.gif

Every output is written atomically; a stage that finished leaves a JSON marker in --out/stages/.
A second run reuses finished stages (unless --force, or the settings the stage depends on
changed, or an output has gone); once a stage is redone, every stage after it is redone too.

stages.py holds the stages, render.py the figures, page.py the HTML page, run.py the running.
"""

from .run import Demo, DemoSettings, format_summary, run_demo
from .stages import STAGES

__all__ = ["Demo", "DemoSettings", "STAGES", "format_summary", "run_demo"]
