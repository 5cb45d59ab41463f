"""Parity as users mean it: does the engine keep the reference's accuracy, and is its deviation from
PyTorch FP32 no more than the reference's own rounding noise?

An engine passes on two clauses, both on the same motion-capture test clips:

- task metric: the paired difference of MPJPE and of P-MPJPE against the ground truth, engine
  minus reference, has its bootstrap 95% interval (over sequences) inside +-budget, the budget of
  the engine's precision (an equivalence test: a worse engine and a suspiciously better one fail);
- floor: the engine's per-joint deviation from the reference is explained by the reference's own
  noise floor (kasf.verify.floor): its mean, median, p90 and p99 are each at most FLOOR_MARGIN
  times the floor's (the larger of its two runs) plus FLOOR_SLACK_MM. The largest deviation is
  reported, not judged: it is one neighbour flip, as large in the floor as in a correct engine.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..data.clips import ClipSet
from ..errors import DataError, KasfError
from ..keypoints.skeleton import JOINT_NAMES
from .floor import NeighbourRecorder, neighbour_flips, perturb_keypoints, rounding_noise, unit_roundoff
from .statistics import CONFIDENCE, OFF_MM, RESAMPLES, balanced_mean, clip_errors, deviation_stats, paired_bootstrap

# Largest paired MPJPE / P-MPJPE difference (mm) each precision may cost. The smallest published
# margin of KASportsFormer over its closest peer is 0.4 mm (SportsPose GT, MPJPE 30.9 against
# MotionAGFormer-L's 31.3): an engine must not cost a fraction of that which could change the
# paper's comparison. FP32 only rounds differently (1/8 of it); FP16 and BF16 round every product
# (1/4, 1/2); INT8 may cost up to the margin itself.
BUDGETS_MM = {"fp32": 0.05, "fp16": 0.1, "bf16": 0.2, "int8": 0.4}
FLOOR_MARGIN = 2.0       # the floor's own runs differ by about this much (batch split against rounding)
FLOOR_SLACK_MM = 0.001   # one micrometre: below any physical meaning, whatever the ratio
JUDGED = ("mean_mm", "p50_mm", "p90_mm", "p99_mm")
FEW_SEQUENCES = 5        # fewer per motion, and a bootstrap interval understates the uncertainty
METRICS = ("mpjpe", "p_mpjpe")


def budget_for(precision: str, budgets: dict[str, float] | None = None) -> float:
    """The task-metric budget of a precision: `budgets` (a CLI override) first, then the default."""
    table = {**BUDGETS_MM, **(budgets or {})}
    if precision not in table:
        raise KasfError(f"no task-metric budget for precision {precision!r} (known: {', '.join(table)})")
    if table[precision] < 0:
        raise KasfError(f"the {precision} budget is {table[precision]} mm: a budget is a distance, at least 0")
    return float(table[precision])


def parity_clips(count: int | None = None, n_frames: int = 27) -> ClipSet:
    """`count` of the embedded motion capture's test clips (all when None), spread evenly over the
    test motions and cameras so that every motion is in the check."""
    from ..data.splits import load_splits

    clips = load_splits("mocap", n_frames=n_frames).test
    if count is None or count >= len(clips):
        return clips
    if count < 1:
        raise KasfError(f"parity needs at least one clip, got {count}")
    return clips.select(np.linspace(0, len(clips) - 1, count).round().astype(np.int64))


def engine_predictions(engine, keypoints: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Run an engine over [M, T, 17, 3] keypoints in batches (no larger than the engine takes)."""
    batch_size = min(batch_size, engine.max_batch or batch_size)
    return np.concatenate([engine.infer(keypoints[i:i + batch_size]) for i in range(0, len(keypoints), batch_size)])


@dataclass
class _Run:
    poses_mm: np.ndarray          # [N, T, 17, 3]
    neighbours: np.ndarray        # [N, layers, joints, frames, packed bytes]


@dataclass
class ParityCheck:
    """The PyTorch FP32 reference on a set of clips, its noise floor per precision (measured once),
    and the check of any number of engines against both."""

    model: nn.Module
    clips: ClipSet
    batch_size: int = 32
    budgets: dict[str, float] | None = None
    seed: int = 0                 # of the rounding noise and the bootstrap
    _floors: dict[str, dict] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        if self.clips.factor is None or self.clips.poses_mm is None:
            raise DataError("parity needs clips with ground truth in mm (the 2.5D factor and poses_mm)")
        if len(self.clips) == 0:
            raise DataError("parity needs at least one clip")
        self.model.eval()
        self._recorder = NeighbourRecorder(self.model)
        self.reference = self._run(self.batch_size)
        self.reference_errors = clip_errors(self.reference.poses_mm, self.clips.poses_mm)
        self._batch_split: dict | None = None

    @torch.no_grad()
    def _run(self, batch_size: int, precision: str | None = None, seed: int = 0) -> _Run:
        poses, neighbours = [], []
        noise = rounding_noise(self.model, precision, seed) if precision else nullcontext(None)
        with self._recorder.recording(), noise as generator:
            for start in range(0, len(self.clips), batch_size):
                keypoints = torch.from_numpy(self.clips.keypoints[start:start + batch_size])
                if generator is not None:
                    keypoints = perturb_keypoints(keypoints, generator)
                poses.append(self.model(keypoints).numpy())
                neighbours.append(self._recorder.take())
        return _Run(self.clips.to_millimetres(np.concatenate(poses)), np.concatenate(neighbours))

    def _floor_run(self, run: _Run) -> dict:
        flips = neighbour_flips(self.reference.neighbours, run.neighbours)
        return {**deviation_stats(self.reference.poses_mm, run.poses_mm), **self._task_metric(run.poses_mm),
                "flips_per_clip": flips.tolist(), "clips_with_flips": int((flips > 0).sum()),
                "mean_flips": float(flips.mean())}

    def rounding_run(self, precision: str, seed: int) -> dict:
        """The reference against itself under rounding noise of the precision, drawn with `seed`."""
        return self._floor_run(self._run(self.batch_size, precision, seed))

    def floor(self, precision: str) -> dict:
        """The reference against itself at another batch split and under rounding noise of the
        precision's unit roundoff; `envelope` holds the larger of the two for each judged statistic."""
        if precision not in self._floors:
            if self._batch_split is None:
                self._batch_split = self._floor_run(self._run(1))
            runs = {"batch_split": self._batch_split, "rounding": self.rounding_run(precision, self.seed)}
            envelope = {key: max(run[key] for run in runs.values()) for key in (*JUDGED, "max_mm")}
            envelope["per_joint_mm"] = {j: max(run["per_joint_mm"][j] for run in runs.values()) for j in JOINT_NAMES}
            flipped = np.maximum(*(np.asarray(run["flips_per_clip"]) for run in runs.values())) > 0
            self._floors[precision] = {"precision": precision, "unit_roundoff": unit_roundoff(precision),
                                       "runs": runs, "envelope": envelope, "clips_with_flips": int(flipped.sum()),
                                       "_flipped": flipped}
        return self._floors[precision]

    def _task_metric(self, poses_mm: np.ndarray) -> dict:
        """Engine (or floor run) against the reference in the task metric, with paired intervals."""
        errors = clip_errors(poses_mm, self.clips.poses_mm)
        out = {}
        for metric in METRICS:
            difference = errors[metric] - self.reference_errors[metric]
            out[metric] = {
                "reference_mm": balanced_mean(self.reference_errors[metric], self.clips.action),
                "engine_mm": balanced_mean(errors[metric], self.clips.action),
                "difference_mm": balanced_mean(difference, self.clips.action),
                "interval_mm": list(paired_bootstrap(difference, self.clips.source, self.clips.action,
                                                     seed=self.seed)),
            }
        per_joint = (errors["per_joint"] - self.reference_errors["per_joint"]).mean(axis=0)
        out["per_joint_mpjpe_difference_mm"] = dict(zip(JOINT_NAMES, per_joint.tolist()))
        return out

    def check(self, engine, budget_mm: float | None = None) -> dict:
        """The engine on the same clips: deviation, task metric, the floor of its precision, verdict."""
        poses_mm = self.clips.to_millimetres(engine_predictions(engine, self.clips.keypoints, self.batch_size))
        return self.judge(poses_mm, engine.precision, budget_mm, backend=engine.backend)

    def judge(self, poses_mm: np.ndarray, precision: str, budget_mm: float | None = None,
              backend: str = "") -> dict:
        """The verdict on an engine's poses [N, T, 17, 3] in mm (of these clips, in this order)."""
        budget = budget_for(precision, self.budgets) if budget_mm is None else float(budget_mm)
        broken = np.flatnonzero(~np.isfinite(poses_mm).reshape(len(poses_mm), -1).all(axis=1))
        if len(broken):
            raise KasfError(f"the {backend or 'engine'} {precision} poses hold NaN or Inf in {len(broken)} of "
                            f"{len(poses_mm)} clips (first: clip {broken[0]}): the engine is broken, not imprecise")
        deviation = deviation_stats(self.reference.poses_mm, poses_mm)
        task = self._task_metric(poses_mm)
        floor = self.floor(precision)
        clauses = {"task_metric": _task_clause(task, budget), "floor": _floor_clause(deviation, floor["envelope"])}
        failed = [name for name, clause in clauses.items() if not clause["passed"]]
        off = np.asarray(deviation["per_clip_max_mm"]) > OFF_MM
        per_action = [len(np.unique(self.clips.source[self.clips.action == a])) for a in np.unique(self.clips.action)]
        report = {
            "backend": backend, "precision": precision, "clips": len(self.clips),
            "sequences": int(len(np.unique(self.clips.source))), "actions": sorted(set(self.clips.action.tolist())),
            "fewest_sequences_per_action": int(min(per_action)),
            "batch_size": self.batch_size, "deviation": deviation, "task_metric": task,
            "floor": {k: v for k, v in floor.items() if not k.startswith("_")},
            "budget_mm": budget, "clauses": clauses, "passed": not failed,
            "decided_by": failed or list(clauses),
            "clips_off_where_floor_flips": int((off & floor["_flipped"]).sum()),
            "bootstrap": {"unit": "sequence", "strata": "action", "resamples": RESAMPLES,
                          "confidence": CONFIDENCE, "seed": self.seed},
            "rules": {"floor_margin": FLOOR_MARGIN, "floor_slack_mm": FLOOR_SLACK_MM, "judged": list(JUDGED),
                      "off_mm": OFF_MM},
        }
        report["explanation"] = explain(report)
        return report


def _task_clause(task: dict, budget: float) -> dict:
    """Both intervals inside +-budget (a NaN bound, from non-finite poses, is outside)."""
    widest = {metric: max(map(abs, task[metric]["interval_mm"])) for metric in METRICS}
    outside = [f"{metric} difference {task[metric]['difference_mm']:+.4f} mm, 95% interval "
               f"{format_interval(task[metric]['interval_mm'])}" for metric in METRICS if not widest[metric] <= budget]
    if outside:
        return {"passed": False, "reason": f"{'; '.join(outside)}: not within +-{budget:g} mm"}
    return {"passed": True, "reason": f"both intervals within +-{budget:g} mm (widest bound "
                                      f"{max(widest.values()):.4f} mm)"}


def format_interval(values: list[float]) -> str:
    return f"[{values[0]:+.4f}, {values[1]:+.4f}]"


def _floor_clause(deviation: dict, envelope: dict) -> dict:
    """Each judged statistic within FLOOR_MARGIN x the floor's + FLOOR_SLACK_MM (NaN is above)."""
    limits = {key: FLOOR_MARGIN * envelope[key] + FLOOR_SLACK_MM for key in JUDGED}
    above = [f"{key[:-3]} {deviation[key]:.4f} mm > {limits[key]:.4f}" for key in JUDGED
             if not deviation[key] <= limits[key]]
    if above:
        return {"passed": False, "reason": f"deviation above {FLOOR_MARGIN:g} x floor + {FLOOR_SLACK_MM} mm: "
                                           + ", ".join(above)}
    ratio = max(deviation[key] / limits[key] for key in JUDGED)
    return {"passed": True, "reason": f"deviation within {FLOOR_MARGIN:g} x floor + {FLOOR_SLACK_MM} mm "
                                      f"(at most {100 * ratio:.0f}% of the limit)"}


def explain(report: dict) -> str:
    """One paragraph saying what decided the verdict and where the largest deviations come from."""
    deviation, floor, clauses = report["deviation"], report["floor"], report["clauses"]
    verdict = "PASS" if report["passed"] else f"FAIL on {' and '.join(c.replace('_', ' ') for c in report['decided_by'])}"
    parts = [f"{verdict}. Task metric: {clauses['task_metric']['reason']}. Floor: {clauses['floor']['reason']}."]
    if not clauses["task_metric"]["passed"]:
        own = floor["runs"]["rounding"]["mpjpe"]
        cause = ("so the cost is the precision's on this model, not the graph's"
                 if max(map(abs, own["interval_mm"])) > report["budget_mm"] else
                 "so the engine costs more than its precision explains")
        parts.append(f"The reference itself, rounded at {report['precision']}, moves its MPJPE by "
                     f"{own['difference_mm']:+.4f} mm {format_interval(own['interval_mm'])}: {cause}.")
    if report["fewest_sequences_per_action"] < FEW_SEQUENCES:
        parts.append(f"Only {report['fewest_sequences_per_action']} sequence(s) of some motion: the intervals "
                     "understate the uncertainty (check more clips).")
    if deviation["clips_off"]:
        parts.append(
            f"{deviation['clips_off']} of {report['clips']} clips have a joint over {OFF_MM} mm off (largest "
            f"{deviation['max_mm']:.2f} mm; the reference against itself: {floor['envelope']['max_mm']:.2f} mm); "
            f"{report['clips_off_where_floor_flips']} of them are clips where the reference's own temporal GCN "
            f"flips a neighbour when only rounding changes ({floor['clips_with_flips']} clips flip).")
    return " ".join(parts)


def check_reference(reference_config: dict, reference_source: dict, engine_config: dict,
                    engine_source: dict) -> list[str]:
    """Refuse a reference of another architecture than the engine's; note when both name their
    source checkpoint (kasf metadata keeps the original file's SHA-256) and the two differ."""
    differing = {k: (engine_config.get(k), v) for k, v in reference_config.items() if engine_config.get(k) != v}
    if differing:
        detail = ", ".join(f"{k}: engine {a!r} vs reference {b!r}" for k, (a, b) in differing.items())
        raise KasfError(f"the reference checkpoint is another model than the engine ({detail}); pass the checkpoint "
                        "the engine was exported from")
    ours, theirs = reference_source.get("sha256"), engine_source.get("sha256")
    if ours and theirs and ours != theirs:
        return [f"the engine was exported from {engine_source.get('file', 'a checkpoint')} (sha256 {theirs[:12]}...), "
                f"the reference comes from {reference_source.get('file', 'another')} (sha256 {ours[:12]}...): "
                "the deviation includes the difference between the two checkpoints"]
    return []


def check_exported(checkpoint, path, n_clips: int, budgets: dict[str, float] | None = None) -> dict:
    """An exported file, run by its backend, against the checkpoint it came from on real clips (the
    embedded motion capture's test split); {"skipped": why} when there are no clips to compare on."""
    from ..engines import load_engine
    from ..model import build_from_checkpoint

    try:
        clips = parity_clips(n_clips, checkpoint.config.n_frames)
    except KasfError as err:
        return {"skipped": f"no real clips to compare on ({err})"}
    with load_engine(path) as engine:
        return ParityCheck(build_from_checkpoint(checkpoint), clips, budgets=budgets).check(engine)
