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
from .losses import LiftingLoss, LossWeights
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


def _train_epoch(model: nn.Module, loader, steps: int, criterion: LiftingLoss, optimizer: torch.optim.Optimizer,
                 flip: bool, flips: torch.Generator, device, report_step: Callable[[float], None]) -> dict[str, float]:
    """One pass of optimiser steps; returns the summed loss terms."""
    model.train()
    sums: dict[str, float] = {}
    for step, (keypoints, targets) in enumerate(loader):
        if step == steps:
            break
        keypoints, targets = keypoints.to(device), targets.to(device)
        if flip:
            keypoints, targets = random_flip(keypoints, targets, generator=flips)
        loss, parts = criterion(model(keypoints), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for name, value in {"loss": loss, **parts}.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        report_step(sums["loss"] / (step + 1))
    return sums


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
    out = Path(out_dir) if out_dir is not None else None
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = WarmupPlateau(optimizer, config.lr, config.warmup_epochs, config.lr_decay, config.plateau_patience)
    history: list[dict[str, float]] = []
    start_epoch, best_metric, best_epoch, stale = 0, math.inf, -1, 0
    best_state = None
    if resume:
        if out is None or not (out / LAST).is_file():
            raise CheckpointError(f"nothing to resume: {out / LAST if out else 'no output directory'} does not exist")
        payload = read_checkpoint_payload(out / LAST)
        state = payload["training"]
        _check_resumable(state["config"], config, out / LAST)
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = list(state["history"])
        start_epoch, best_metric, best_epoch, stale = (state["epoch"] + 1, state["best_metric"],
                                                       state["best_epoch"], state["stale_epochs"])
        if (out / BEST).is_file():
            best_state = read_checkpoint_payload(out / BEST)["state_dict"]
        log(f"resuming after epoch {state['epoch']} (best validation {best_metric:.3f} at epoch {best_epoch})")

    train_model = model
    if world.world_size > 1:
        train_model = nn.parallel.DistributedDataParallel(model)
        if world.main:
            log(f"data-parallel over {world.world_size} processes, {config.batch_size // world.world_size} clips each per step")
    criterion = LiftingLoss(config.loss)
    dataset = ClipDataset(splits.train)
    per_rank_batch = max(1, config.batch_size // world.world_size)
    writer = None
    if out is not None and world.main:
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(out / "tensorboard", purge_step=start_epoch)
    started, stopped = time.monotonic(), "epochs"
    epoch_seconds = 0.0
    for epoch in range(start_epoch, config.epochs):
        if config.time_limit_s is not None and time.monotonic() - started + epoch_seconds > config.time_limit_s:
            stopped = "time limit"
            break
        epoch_start = time.monotonic()
        torch.manual_seed(_epoch_seed(config, epoch, world.rank))
        flips = torch.Generator().manual_seed(_epoch_seed(config, epoch, world.rank) + 1)
        scheduler.start_epoch(epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=per_rank_batch,
                                             sampler=_shard(config, epoch, len(dataset), world),
                                             num_workers=config.num_workers)
        steps = len(loader) if config.steps_per_epoch is None else min(len(loader), config.steps_per_epoch)
        lr = optimizer.param_groups[0]["lr"]
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (progress and world.main),
                   leave=False, dynamic_ncols=True)

        def report_step(loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            bar.update()

        sums = world.mean(_train_epoch(train_model, loader, steps, criterion, optimizer, config.flip, flips, device,
                                       report_step))
        bar.close()

        metric, unit = math.nan, "mm" if splits.validation.factor is not None else "normalised"
        if world.main:
            metric = evaluate_clips(model, splits.validation, device=device)["mpjpe"]
        metric = world.broadcast(metric)
        scheduler.end_epoch(epoch, metric)
        improved = metric < best_metric
        if improved:
            best_metric, best_epoch, stale = metric, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        epoch_seconds = time.monotonic() - epoch_start
        row = {"epoch": epoch, "lr": lr, **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
               f"val_mpjpe_{unit}": metric, "seconds": epoch_seconds}
        history.append(row)
        if world.main:
            log(f"epoch {epoch + 1}: loss {row.get('train_loss', math.nan):.4f}  lr {lr:.2e}  "
                f"val MPJPE {metric:.2f} {unit}{'  *best*' if improved else ''}  ({epoch_seconds:.1f} s)")
        if out is not None and world.main:
            _save_epoch(out, model, optimizer, scheduler, config, history, epoch, best_metric, best_epoch, stale, improved)
            for key, value in row.items():
                if key != "epoch":
                    writer.add_scalar(key, value, epoch)
            writer.flush()
        if stale >= config.early_stop_patience:
            stopped = "early stopping"
            break
    if writer is not None:
        writer.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(history, best_epoch, best_metric, stopped)


def _save_epoch(out: Path, model, optimizer, scheduler, config, history, epoch, best_metric, best_epoch, stale,
                improved) -> None:
    """log.csv for any model; best.pt and last.pt for KASportsFormer (kasf's checkpoint format)."""
    _write_csv(out / LOG, history)
    if not isinstance(model, KASportsFormer):
        return
    source = {"trained_epochs": epoch + 1, "best_epoch": best_epoch, "val_mpjpe": best_metric}
    if improved:
        save_checkpoint(out / BEST, model, source=source)
    training = {"config": config.to_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "history": history, "epoch": epoch, "best_metric": best_metric, "best_epoch": best_epoch,
                "stale_epochs": stale}
    save_checkpoint(out / LAST, model, source=source, training=training)
