"""Build a TensorRT engine from a kasf ONNX graph, with its sidecar JSON and precision report.

    python engines/build_engine.py model_fp16.onnx -o model_fp16.engine [--min-batch N] [--opt-batch N]
        [--max-batch N] [--workspace GiB] [--opt-level 0-5] [--timing-cache PATH]

The same as `kasf build`; see `--help`. Needs `pip install 'kasf[tensorrt]'` from NVIDIA's index and a GPU.
"""

import sys

from kasf.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
