"""How much the reference's noise floor moves from one draw of its rounding noise to the next: the
evidence behind kasf.verify's FLOOR_MARGIN (an engine's deviation may be this many times the floor).

    python benchmarks/parity_floor.py --checkpoint runs/mocap/best.pt --precision fp32 fp16 --seeds 5

For each precision it prints the floor's statistics under several seeds of the rounding noise, the
batch-split run beside them, and the largest over smallest value of each statistic across seeds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kasf.model.checkpoint import build_from_checkpoint, read_checkpoint
from kasf.table import render_table
from kasf.verify import ParityCheck, parity_clips
from kasf.verify.parity import FLOOR_MARGIN, JUDGED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a kasf or authors' checkpoint")
    parser.add_argument("--config", help="the authors' YAML (for their checkpoints)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "fp16"], help="precisions (default fp32 fp16)")
    parser.add_argument("--seeds", type=int, default=5, help="draws of the rounding noise (default 5)")
    parser.add_argument("--clips", type=int, help="test clips (default all)")
    parser.add_argument("--threads", type=int, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = read_checkpoint(args.checkpoint, args.config)
    started = time.perf_counter()
    check = ParityCheck(build_from_checkpoint(checkpoint), parity_clips(args.clips, checkpoint.config.n_frames))
    columns = [*JUDGED, "max_mm", "clips_with_flips"]
    for precision in args.precision:
        runs = {f"rounding, seed {seed}": check.rounding_run(precision, seed) for seed in range(args.seeds)}
        rows = [[name, *(run[c] for c in columns)] for name, run in runs.items()]
        rows.append(["batch split", *(check.floor(precision)["runs"]["batch_split"][c] for c in columns)])
        spread = [max(run[c] for run in runs.values()) / max(min(run[c] for run in runs.values()), 1e-12)
                  for c in columns]
        rows.append(["largest / smallest seed", *spread])
        print(render_table(["run", *columns], rows, digits=4,
                           title=f"{args.checkpoint}: the floor at {precision} rounding on {len(check.clips)} clips"))
        judged = np.array(spread[:len(JUDGED)])
        print(f"judged statistics vary by up to {judged.max():.2f}x across seeds (FLOOR_MARGIN {FLOOR_MARGIN:g})\n")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
