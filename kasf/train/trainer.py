"""Training with the paper's schedule, stepped and selected on a validation split.

AdamW (lr 5e-4, weight decay 0.01, batch 32); linear warm-up from lr/100 over 10 epochs, then
ReduceLROnPlateau (factor 0.9, patience 2) on validation MPJPE; early stopping after 20 epochs
without improvement; flip augmentation. Every random draw of an epoch comes from generators
seeded by (seed, epoch, rank), so `resume` from the last completed epoch ends with the same
weights as an uninterrupted run. Under `torchrun` it trains data-parallel (gloo on CPU).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from .augment import random_flip
from ..model.checkpoint import read_checkpoint_payload, save_checkpoint
from ..data.clips import ClipDataset
from ..data.splits import Splits
from ..errors import CheckpointError, ConfigError
from .evaluate import evaluate_clips
from ..files import atomic_write
from .losses import LiftingLoss, LossWeights, focus_weights
from ..model.kasportsformer import KASportsFormer

BEST, LAST, LOG = "best.pt", "last.pt", "log.csv"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 800
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_epochs: int = 10
    lr_decay: float = 0.9
    plateau_patience: int = 2
    early_stop_patience: int = 20
    flip: bool = True
    seed: int = 0
    num_workers: int = 0
    steps_per_epoch: int | None = None   # cap on optimiser steps per epoch (quick runs, tests)
    time_limit_s: float | None = None    # no epoch starts that would end past this budget
    loss: LossWeights = field(default_factory=LossWeights)
    # A low-latency model: the window positions a runtime of this (lag, stride) returns count
    # focus_weight times as much in the loss (None: every frame alike, the paper's objective).
    focus: tuple[int, int] | None = None
    focus_weight: float = 4.0

    # Fields that may change between a run and its resumption without breaking exactness.
    RESUMABLE_CHANGES = ("epochs", "time_limit_s", "num_workers", "early_stop_patience")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class WarmupPlateau:
    """Per-epoch learning rate: linear warm-up from lr/100, then decay on validation plateaus."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, warmup_epochs: int, factor: float, patience: int):
        self.optimizer, self.lr, self.warmup_epochs = optimizer, lr, warmup_epochs
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=factor, patience=patience)

    def start_epoch(self, epoch: int) -> None:
        if epoch < self.warmup_epochs:
            start = self.lr / 100
            for group in self.optimizer.param_groups:
                group["lr"] = start + (self.lr - start) * epoch / self.warmup_epochs
        elif epoch == self.warmup_epochs:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr

    def end_epoch(self, epoch: int, metric: float) -> None:
        if epoch >= self.warmup_epochs:
            self.plateau.step(metric)

    def state_dict(self) -> dict:
        return self.plateau.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.plateau.load_state_dict(state)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> "Distributed":
        """Join the process group torchrun set up (WORLD_SIZE > 1); a single process otherwise."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average per-rank numbers over all ranks."""
        if self.world_size == 1 or not values:
            return values
        tensor = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(tensor)
        return dict(zip(values, (tensor / self.world_size).tolist()))

    def broadcast(self, value: float) -> float:
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_metric: float
    stopped: str


def _epoch_seed(config: TrainConfig, epoch: int, rank: int = 0) -> int:
    return (config.seed * 1_000_003 + epoch) * 101 + rank


def _shard(config: TrainConfig, epoch: int, size: int, world: Distributed) -> list[int]:
    """This rank's clip order for an epoch: one seeded permutation, dealt round-robin."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(_epoch_seed(config, epoch)))
    usable = size - size % world.world_size
    return order[world.rank:usable:world.world_size].tolist()


def _check_resumable(stored: dict, config: TrainConfig, path: Path) -> None:
    current = config.to_dict()
    differing = [k for k, v in stored.items() if k not in TrainConfig.RESUMABLE_CHANGES and current.get(k) != v]
    if differing:
        raise ConfigError(f"cannot resume {path}: training settings differ from the interrupted run "
                          f"({', '.join(f'{k}: {stored[k]!r} -> {current[k]!r}' for k in differing)})")


def _write_csv(path: Path, history: list[dict]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)

    atomic_write(path, write)


@dataclass(kw_only=True)
class _Training:
    """What one fit call trains and how far it has got: all that last.pt keeps, so that a resumed
    run goes on exactly as an uninterrupted one would have."""

    model: nn.Module
    config: TrainConfig
    world: Distributed
    device: str | torch.device
    out: Path | None
    log: Callable[[str], None]
    optimizer: torch.optim.Optimizer = field(init=False)
    scheduler: WarmupPlateau = field(init=False)
    history: list[dict[str, float]] = field(default_factory=list)
    start_epoch: int = 0
    best_metric: float = math.inf
    best_epoch: int = -1
    stale: int = 0
    best_state: dict[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        config = self.config
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = WarmupPlateau(self.optimizer, config.lr, config.warmup_epochs, config.lr_decay,
                                       config.plateau_patience)

    def resume(self) -> None:
        """Continue from out/last.pt (and the best weights of out/best.pt)."""
        out = self.out
        if out is None or not (out / LAST).is_file():
            raise CheckpointError(f"nothing to resume: {out / LAST if out else 'no output directory'} does not exist")
        payload = read_checkpoint_payload(out / LAST)
        state = payload["training"]
        _check_resumable(state["config"], self.config, out / LAST)
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        self.start_epoch, self.best_metric, self.best_epoch, self.stale = (state["epoch"] + 1, state["best_metric"],
                                                                           state["best_epoch"], state["stale_epochs"])
        if (out / BEST).is_file():
            self.best_state = read_checkpoint_payload(out / BEST)["state_dict"]
        self.log(f"resuming after epoch {state['epoch']} "
                 f"(best validation {self.best_metric:.3f} at epoch {self.best_epoch})")

    def note_validation(self, epoch: int, metric: float) -> bool:
        """Keep the weights of the best epoch and count the epochs since; True when this one is the best."""
        improved = metric < self.best_metric
        if improved:
            self.best_metric, self.best_epoch, self.stale = metric, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.stale += 1
        return improved

    def save(self, epoch: int, improved: bool) -> None:
        """log.csv for any model; best.pt and last.pt for KASportsFormer (kasf's checkpoint format)."""
        _write_csv(self.out / LOG, self.history)
        if not isinstance(self.model, KASportsFormer):
            return
        source = {"trained_epochs": epoch + 1, "best_epoch": self.best_epoch, "val_mpjpe": self.best_metric}
        if improved:
            save_checkpoint(self.out / BEST, self.model, source=source)
        training = {"config": self.config.to_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "history": self.history, "epoch": epoch,
                    "best_metric": self.best_metric, "best_epoch": self.best_epoch, "stale_epochs": self.stale}
        save_checkpoint(self.out / LAST, self.model, source=source, training=training)

    def result(self, stopped: str) -> TrainResult:
        """The outcome, with the best validation weights loaded into the model."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return TrainResult(self.history, self.best_epoch, self.best_metric, stopped)


@dataclass
class _EpochLoop:
    """The epochs of one fit call: train steps, validation, then the log, checkpoints and TensorBoard."""

    training: _Training
    splits: Splits
    show_progress: bool
    train_model: nn.Module = field(init=False)
    criterion: LiftingLoss = field(init=False)
    dataset: ClipDataset = field(init=False)
    writer: Any = field(init=False)   # a SummaryWriter on the main process when there is an output directory

    def __post_init__(self) -> None:
        training, world = self.training, self.training.world
        self.train_model = training.model
        if world.world_size > 1:
            self.train_model = nn.parallel.DistributedDataParallel(training.model)
            if world.main:
                training.log(f"data-parallel over {world.world_size} processes, "
                             f"{training.config.batch_size // world.world_size} clips each per step")
        config = training.config
        frames = None if config.focus is None else focus_weights(self.splits.train.keypoints.shape[1], *config.focus,
                                                                 config.focus_weight)
        self.criterion = LiftingLoss(config.loss, frames)
        self.dataset = ClipDataset(self.splits.train)
        self.writer = None
        if training.out is not None and world.main:
            from torch.utils.tensorboard import SummaryWriter

            training.out.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(training.out / "tensorboard", purge_step=training.start_epoch)

    def run(self) -> str:
        """Train until the last epoch, the time limit or early stopping; returns which stopped it."""
        training, config = self.training, self.training.config
        started, stopped = time.monotonic(), "epochs"
        epoch_seconds = 0.0
        for epoch in range(training.start_epoch, config.epochs):
            if config.time_limit_s is not None and time.monotonic() - started + epoch_seconds > config.time_limit_s:
                stopped = "time limit"
                break
            epoch_start = time.monotonic()
            sums, steps, lr = self.train_steps(epoch)
            metric = self.validate(epoch)
            improved = training.note_validation(epoch, metric)
            epoch_seconds = time.monotonic() - epoch_start
            row = {"epoch": epoch, "lr": lr, **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
                   f"val_mpjpe_{self.unit}": metric, "seconds": epoch_seconds}
            self.record(epoch, row, improved)
            if training.stale >= config.early_stop_patience:
                stopped = "early stopping"
                break
        if self.writer is not None:
            self.writer.close()
        return stopped

    @property
    def unit(self) -> str:
        return "mm" if self.splits.validation.factor is not None else "normalised"

    def train_steps(self, epoch: int) -> tuple[dict[str, float], int, float]:
        """The epoch's optimiser steps, from generators seeded by (seed, epoch, rank): the loss
        terms summed over steps and averaged over ranks, the number of steps and the learning rate."""
        training, config, world = self.training, self.training.config, self.training.world
        torch.manual_seed(_epoch_seed(config, epoch, world.rank))
        flips = torch.Generator().manual_seed(_epoch_seed(config, epoch, world.rank) + 1)
        training.scheduler.start_epoch(epoch)
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=max(1, config.batch_size // world.world_size),
                                             sampler=_shard(config, epoch, len(self.dataset), world),
                                             num_workers=config.num_workers)
        steps = len(loader) if config.steps_per_epoch is None else min(len(loader), config.steps_per_epoch)
        lr = training.optimizer.param_groups[0]["lr"]
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not (self.show_progress and world.main), leave=False, dynamic_ncols=True)

        def report_step(loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            bar.update()

        sums = world.mean(self.optimise(loader, steps, flips, report_step))
        bar.close()
        return sums, steps, lr

    def optimise(self, loader, steps: int, flips: torch.Generator,
                 report_step: Callable[[float], None]) -> dict[str, float]:
        """One pass of optimiser steps; returns the summed loss terms."""
        training = self.training
        self.train_model.train()
        sums: dict[str, float] = {}
        for step, (keypoints, targets) in enumerate(loader):
            if step == steps:
                break
            keypoints, targets = keypoints.to(training.device), targets.to(training.device)
            if training.config.flip:
                keypoints, targets = random_flip(keypoints, targets, generator=flips)
            loss, parts = self.criterion(self.train_model(keypoints), targets)
            training.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            training.optimizer.step()
            for name, value in {"loss": loss, **parts}.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            report_step(sums["loss"] / (step + 1))
        return sums

    def validate(self, epoch: int) -> float:
        """Validation MPJPE of the main process, shared with every rank, and the schedule stepped on it."""
        training = self.training
        metric = math.nan
        if training.world.main:
            metric = evaluate_clips(training.model, self.splits.validation, device=training.device)["mpjpe"]
        metric = training.world.broadcast(metric)
        training.scheduler.end_epoch(epoch, metric)
        return metric

    def record(self, epoch: int, row: dict[str, float], improved: bool) -> None:
        """The epoch's row in the history, its log line, and on the main process log.csv, the
        checkpoints and TensorBoard."""
        training = self.training
        training.history.append(row)
        if not training.world.main:
            return
        training.log(f"epoch {epoch + 1}: loss {row.get('train_loss', math.nan):.4f}  lr {row['lr']:.2e}  "
                     f"val MPJPE {row[f'val_mpjpe_{self.unit}']:.2f} {self.unit}{'  *best*' if improved else ''}  "
                     f"({row['seconds']:.1f} s)")
        if training.out is not None:
            training.save(epoch, improved)
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, epoch)
            self.writer.flush()


def fit(model: nn.Module, splits: Splits, config: TrainConfig = TrainConfig(), out_dir: str | Path | None = None,
        resume: bool = False, device: str | torch.device = "cpu", progress: bool = True,
        log: Callable[[str], None] = print) -> TrainResult:
    """Train `model` on splits.train, validating on splits.validation after every epoch.

    With out_dir: best.pt (best validation weights), last.pt (everything needed to resume),
    log.csv and TensorBoard events there; checkpoints are KASportsFormer-only and written
    atomically. resume=True continues from out_dir/last.pt. On return the model holds the
    best validation weights.
    """
    world = Distributed.from_environment()
    if world.world_size > 1 and str(device) == "cuda":
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    training = _Training(model=model, config=config, world=world, device=device,
                         out=Path(out_dir) if out_dir is not None else None, log=log)
    if resume:
        training.resume()
    stopped = _EpochLoop(training, splits, progress).run()
    return training.result(stopped)
