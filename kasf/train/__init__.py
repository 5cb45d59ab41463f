"""Training: the paper's schedule and losses, flip augmentation, evaluation on clips and the
metrics it reports. fit trains and selects on validation; its checkpoints are best.pt and last.pt."""

from .trainer import BEST, LAST, TrainConfig, TrainResult, WarmupPlateau, fit

__all__ = ["BEST", "LAST", "TrainConfig", "TrainResult", "WarmupPlateau", "fit"]
