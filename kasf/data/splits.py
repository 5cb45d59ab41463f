"""Train / validation / test clips from a named dataset: the embedded motion capture, or an
authors'-format pickle of SportsPose or WorldPose."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .clips import TEST_STRIDE, TRAIN_STRIDE, ClipSet, make_clips
from .source import Frames, load_pickle, parse_split, published_test_source

# Image resolution per camera (W, H in pixels) used for screen normalisation.
RESOLUTIONS: dict[str, Any] = {
    "sportspose": {"outdoors": (1312, 1216), "indoors": (1216, 1936)},
    "worldpose": (1920, 1080),
    "mocap": (1920, 1080),
}


@dataclass
class Splits:
    train: ClipSet
    validation: ClipSet
    test: ClipSet
    notes: list[str] = field(default_factory=list)  # things a user should know (split warnings)


def hold_out_sequences(frames: Frames, fraction: float, seed: int) -> tuple[Frames, Frames]:
    """Split frames by whole sequences: a seeded `fraction` of the sequence ids go to validation."""
    sources = np.unique(frames.source)
    if len(sources) < 2:
        raise DataError("validation needs at least 2 sequences in the training split")
    count = min(len(sources) - 1, max(1, math.ceil(fraction * len(sources))))
    held = np.random.default_rng(seed).permutation(sources)[:count]
    mask = np.isin(frames.source, held)
    return frames.select(~mask), frames.select(mask)


def published_split_notes(dataset: str, train: Frames, test: Frames) -> list[str]:
    """Differences between the file's split and the paper's test subjects / games."""
    notes = []
    leaked = sorted({s for s in np.unique(train.source) if published_test_source(dataset, s)})
    foreign = sorted({s for s in np.unique(test.source) if not published_test_source(dataset, s)})
    if leaked:
        notes.append(f"{len(leaked)} training sequence(s) belong to the paper's {dataset} test split, e.g. {leaked[0]}")
    if foreign:
        notes.append(f"{len(foreign)} test sequence(s) are outside the paper's {dataset} test split, e.g. {foreign[0]}")
    return notes


def infer_dataset(train: dict) -> str:
    return "sportspose" if "camera_name" in train else "worldpose"


def load_splits(data: str | Path = "mocap", dataset: str | None = None, n_frames: int = 27,
                validation_fraction: float = 0.1, seed: int = 0, **mocap_options) -> Splits:
    """Clips for training (stride 9), validation and test (stride 27).

    data: "mocap" for the embedded motion capture (mocap_options go to load_mocap_source, e.g.
    detector_errors=DETECTOR_ERRORS["typical"] for a detector's 2D in every split), or
    the path of an authors'-format pickle; dataset names its resolution table (inferred: a
    camera_name key means SportsPose). Validation comes from held-out training sequences of a
    pickle, and from held-out motions of the motion capture; never from the test split. seed
    draws the held-out sequences of a pickle, or the virtual cameras of the motion capture.
    """
    if str(data) == "mocap":
        from .mocap import load_mocap_source

        raw = load_mocap_source(seed=seed, **mocap_options)
        dataset, origin, notes = "mocap", "mocap", []
        train = parse_split(raw, "train", origin)
        validation = parse_split(raw, "validation", origin, evaluation=True)
        test = parse_split(raw, "test", origin, evaluation=True)
    else:
        if mocap_options:
            raise DataError(f"options {sorted(mocap_options)} apply only to the embedded motion capture")
        raw = load_pickle(data)
        origin = str(data)
        train = parse_split(raw, "train", origin)
        dataset = dataset or infer_dataset(raw["train"])
        if dataset not in RESOLUTIONS:
            raise DataError(f"unknown dataset '{dataset}' (known: {', '.join(RESOLUTIONS)})")
        test = parse_split(raw, "test", origin, evaluation=True)
        train, validation = hold_out_sequences(train, validation_fraction, seed)
        notes = published_split_notes(dataset, train, test) if dataset != "mocap" else []
    resolutions = RESOLUTIONS[dataset]
    return Splits(
        train=make_clips(train, resolutions, n_frames, TRAIN_STRIDE),
        validation=make_clips(validation, resolutions, n_frames, TEST_STRIDE),
        test=make_clips(test, resolutions, n_frames, TEST_STRIDE),
        notes=notes,
    )
