"""Accuracy on the embedded motion capture: KASportsFormer against two baselines trained and
evaluated the same way (paper schedule, same time budget, ground-truth 2D, held-out motions).

    python benchmarks/mocap_accuracy.py --preset small --minutes 15 --out runs/mocap-accuracy

Prints MPJPE / P-MPJPE (mm) per test motion for the three side by side and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import kasf
from kasf.train.baselines import FrameMLP, MeanPose
from kasf.data.mocap import DEFAULT_CAMERAS
from kasf.data.splits import load_splits
from kasf.train.evaluate import evaluate_clips
from kasf.model.kasportsformer import count_parameters
from kasf.table import render_table
from kasf.train.trainer import TrainConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="KASportsFormer preset (default small)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget per trained model")
    parser.add_argument("--cameras", type=int, default=DEFAULT_CAMERAS, help="virtual cameras per motion")
    parser.add_argument("--warmup-epochs", type=int, default=2,
                        help="warm-up epochs (default 2: the paper's 10 would fill most of a 15-minute budget)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/mocap-accuracy")
    args = parser.parse_args()
    out = Path(args.out)
    splits = load_splits("mocap", seed=args.seed, cameras_per_motion=args.cameras)
    print(f"clips: train {len(splits.train)}, validation {len(splits.validation)}, test {len(splits.test)}")

    torch.manual_seed(args.seed)
    models = {
        f"KASportsFormer {args.preset}": kasf.build_model(args.preset),
        "frame MLP": FrameMLP(),
        "mean pose": MeanPose.from_clips(splits.train),
    }
    config = TrainConfig(seed=args.seed, time_limit_s=60 * args.minutes, warmup_epochs=args.warmup_epochs)
    results = {}
    for name, model in models.items():
        started = time.monotonic()
        trained = None
        if count_parameters(model):
            run_dir = out / name.replace(" ", "-")
            trained = fit(model, splits, config, run_dir, progress=False,
                          log=lambda message, name=name: print(f"[{name}] {message}", flush=True))
        report = evaluate_clips(model, splits.test)
        results[name] = {
            "parameters": count_parameters(model),
            "train_seconds": time.monotonic() - started,
            "epochs": len(trained.history) if trained else 0,
            "best_validation_mpjpe": trained.best_metric if trained else None,
            "test": report,
        }

    names = list(results)
    actions = list(results[names[0]]["test"]["per_action_mpjpe"])
    rows = [(a, *[results[n]["test"]["per_action_mpjpe"][a] for n in names],
             *[results[n]["test"]["per_action_p_mpjpe"][a] for n in names]) for a in actions]
    rows.append(("action mean", *[results[n]["test"]["action_mean_mpjpe"] for n in names],
                 *[results[n]["test"]["action_mean_p_mpjpe"] for n in names]))
    headers = ["test motion", *[f"MPJPE {n}" for n in names], *[f"P-MPJPE {n}" for n in names]]
    print()
    print(render_table(headers, rows, digits=1, title="test MPJPE / P-MPJPE in mm (ground-truth 2D, unseen motions)"))
    print()
    print(render_table(["model", "parameters", "epochs", "train s"],
                       [(n, r["parameters"], r["epochs"], r["train_seconds"]) for n, r in results.items()], digits=0))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
