"""Export a KASportsFormer checkpoint (kasf's or the authors') to ONNX, with parity in mm.

    python export/to_onnx.py --checkpoint model.pt -o model.onnx [--fp16 | --int8] [--opset N] [--max-batch N]

The same as `kasf export`; see `--help`.
"""

import sys

from kasf.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
