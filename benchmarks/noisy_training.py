"""Training on detector-like 2D against training on ground-truth 2D: two KASportsFormer models of
one preset with the same recipe and the same fixed number of epochs (early stopping off, so
neither trains longer), the first on the embedded motion capture's ground-truth 2D, the second
with a detector error model (kasf.data.mocap.DETECTOR_ERRORS). Each model's best validation
checkpoint is evaluated on the clean test sequences and on the same sequences with the detector's
errors (the test split's own draws).

    python benchmarks/noisy_training.py --preset small --epochs 6 --out runs/noisy_compare

Trains one model after the other, never both at once; a model whose run in --out finished (its
training.json is there) is evaluated again without training (--retrain redoes it), and an
interrupted one continues from its last epoch. Prints a markdown table of MPJPE / P-MPJPE (mm) per test motion and writes --out/results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

import kasf
from kasf.data.mocap import DEFAULT_CAMERAS, DETECTOR_ERRORS
from kasf.data.splits import load_splits
from kasf.model.checkpoint import load_model
from kasf.train.evaluate import evaluate_clips
from kasf.train.trainer import BEST, LAST, TrainConfig, fit

CLEAN = "none"


def train(preset: str, errors: str, config: TrainConfig, cameras: int, run_dir: Path) -> dict:
    """Train one model on data with the named detector errors (continuing an interrupted run), or
    read the summary of a finished one."""
    summary_path = run_dir / "training.json"
    if summary_path.is_file():
        print(f"[{errors}] reusing the finished run in {run_dir}", flush=True)
        return json.loads(summary_path.read_text())
    splits = load_splits("mocap", seed=config.seed, cameras_per_motion=cameras,
                         detector_errors=DETECTOR_ERRORS[errors])
    torch.manual_seed(config.seed)
    model = kasf.build_model(preset)
    result = fit(model, splits, config, run_dir, resume=(run_dir / LAST).is_file(), progress=False,
                 log=lambda message: print(f"[{errors}] {message}", flush=True))
    summary = {"train_seconds": sum(row["seconds"] for row in result.history), "epochs": len(result.history),
               "stopped": result.stopped, "best_epoch": result.best_epoch + 1,
               "best_validation_mpjpe": result.best_metric}
    summary_path.write_text(json.dumps(summary, indent=2))
    return summary


def label(errors: str) -> str:
    return "clean" if errors == CLEAN else errors


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = [headers, ["---"] * len(headers), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def results_table(results: dict, trained_on: list[str], tested_on: list[str]) -> str:
    """Per test motion and their mean: 'MPJPE / P-MPJPE' for every (training data, test data)."""
    columns = [(train, test) for train in trained_on for test in tested_on]
    first = results[trained_on[0]]["test"][tested_on[0]]
    rows = []
    for motion in [*first["per_action_mpjpe"], None]:
        cells = []
        for train, test in columns:
            report = results[train]["test"][test]
            errors = ((report["action_mean_mpjpe"], report["action_mean_p_mpjpe"]) if motion is None else
                      (report["per_action_mpjpe"][motion], report["per_action_p_mpjpe"][motion]))
            cells.append(" / ".join(f"{value:.1f}" for value in errors))
        rows.append([motion or "action mean", *cells])
    headers = ["test motion", *[f"trained {label(train)}, tested {label(test)}" for train, test in columns]]
    return markdown(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="KASportsFormer preset (default small)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each model (default 6)")
    parser.add_argument("--errors", choices=[name for name in DETECTOR_ERRORS if name != CLEAN], default="typical",
                        help="detector error model of the second model and the noisy test (default typical)")
    parser.add_argument("--warmup-epochs", type=int, default=2, help="warm-up epochs (default 2, the README's recipe)")
    parser.add_argument("--cameras", type=int, default=DEFAULT_CAMERAS, help="virtual cameras per motion")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain", action="store_true", help="train again even where a finished run is in --out")
    parser.add_argument("--out", default="runs/noisy_compare")
    args = parser.parse_args()
    out = Path(args.out)
    config = TrainConfig(epochs=args.epochs, warmup_epochs=args.warmup_epochs, seed=args.seed,
                         early_stop_patience=args.epochs)
    data = [CLEAN, args.errors]
    tests = {errors: load_splits("mocap", seed=args.seed, cameras_per_motion=args.cameras,
                                 detector_errors=DETECTOR_ERRORS[errors]).test for errors in data}
    results = {}
    for errors in data:
        run_dir = out / f"{args.preset}-{errors}"
        if args.retrain and run_dir.exists():
            shutil.rmtree(run_dir)
        results[errors] = train(args.preset, errors, config, args.cameras, run_dir)
        model = load_model(run_dir / BEST)
        results[errors]["test"] = {test: evaluate_clips(model, clips) for test, clips in tests.items()}

    print(f"\n{args.preset} preset, {args.epochs} epochs each (warm-up {args.warmup_epochs}, early stopping off); "
          f"test MPJPE / P-MPJPE in mm; clean: ground-truth 2D; {args.errors}: "
          f"{DETECTOR_ERRORS[args.errors].describe()}\n")
    print(results_table(results, data, data))
    print()
    print(markdown(["trained on", "epochs", "epoch wall s (train + validation)", "best epoch",
                    "best validation MPJPE mm"],
                   [[label(errors), str(r["epochs"]), f"{r['train_seconds']:.0f}", str(r["best_epoch"]),
                     f"{r['best_validation_mpjpe']:.1f}"] for errors, r in results.items()]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"settings": vars(args), "results": results}, indent=2))
    print(f"\nwrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
