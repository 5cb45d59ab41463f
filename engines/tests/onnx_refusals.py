"""The C++ runtime refuses ONNX graphs it must not run, with the message the Python side gives: a
graph without kasf's metadata, and one whose metadata format is newer than this runtime reads.

    python engines/tests/onnx_refusals.py --kasf-bench build/kasf_bench --engine tiny.onnx --work DIR
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import onnx

CASES = {
    "no_metadata": (lambda props: [p for p in props if not p.key.startswith("kasf_")], "has no kasf metadata"),
    "newer_metadata": (lambda props: [p for p in props if p.key != "kasf_metadata_version"]
                       + [onnx.StringStringEntryProto(key="kasf_metadata_version", value="2")],
                       "format version 2"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kasf-bench", required=True)
    parser.add_argument("--engine", required=True, help="a kasf ONNX export")
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    failures = 0
    for name, (edit, expected) in CASES.items():
        model = onnx.load(args.engine)
        kept = edit(list(model.metadata_props))
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        path = Path(args.work) / f"{name}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, path)
        done = subprocess.run([args.kasf_bench, str(path), "--iterations", "1", "--duration", "0"],
                              capture_output=True, text=True)
        ok = done.returncode == 1 and "KASF_ENGINE_FILE" in done.stderr and expected in done.stderr
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'}: {name}: exit {done.returncode}, {done.stderr.strip()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
