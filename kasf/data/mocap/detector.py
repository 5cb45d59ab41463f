"""A 2D detector's mistakes on the true 2D: jitter that scales with the person, rare outliers,
undetected joints, left/right swaps and frames without the person, with confidences that fall
as the error grows.

Missing joints and drop-outs get confidence 0 and the coordinates the streaming runtime gives
them (kasf.stream.runtime): the joint's last position seen in the sequence, else the frame's
pelvis, else the mean of the frame's seen joints, else that point of the previous frame (the
image centre before anything is seen). So training clips look like what the runtime hands the
model from a real detector's readers (unseen joints there arrive as x = y = 0, confidence 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...errors import DataError
from ...keypoints.skeleton import FLIP_LEFT, FLIP_RIGHT, LOWER_BODY, NUM_JOINTS, ROOT
from .cameras import RESOLUTION

# Shapes of the errors (their rates are DetectorErrors'): an outlier jumps this many jitter
# sigmas; confidence falls to 0.5 at an error of this many sigmas.
_OUTLIER_SIGMAS = (5.0, 15.0)
_CONFIDENCE_SIGMAS = 3.0
# Left/right swaps by what a detector confuses: the legs, the arms, or the whole body's sides.
_LEGS = tuple((right, left) for right, left in zip(FLIP_RIGHT, FLIP_LEFT) if right in LOWER_BODY)
_ARMS = tuple((right, left) for right, left in zip(FLIP_RIGHT, FLIP_LEFT) if right not in LOWER_BODY)
SWAP_KINDS = ("legs", "arms", "sides")


@dataclass(frozen=True)
class DetectorErrors:
    """How detected 2D differs from the true 2D. A rate is the expected share of the frames (or
    of a joint's frames) an error covers; an error lasts a number of frames drawn from its
    (shortest, longest). noise_px 0 and the missing, swap and drop-out rates 0: the ground-truth
    2D, without confidences (outliers are jitter, so there are none without it)."""

    noise_px: float = 0.0                       # jitter sigma per axis for a person as tall as the image
    outlier_rate: float = 0.02                  # share of joints whose jitter is 5-15 sigmas instead
    missing_rate: float = 0.0                   # share of a joint's frames it is not detected in
    missing_frames: tuple[int, int] = (1, 10)
    swap_rate: float = 0.0                      # share of frames with the legs, arms or sides swapped
    swap_frames: tuple[int, int] = (2, 8)
    swap_confidence: float = 0.5                # confidence factor of a swapped joint
    dropout_rate: float = 0.0                   # share of frames without the person
    dropout_frames: tuple[int, int] = (1, 5)

    def __post_init__(self) -> None:
        """Settings no data can be built with fail here, naming the field."""
        if not self.noise_px >= 0:
            raise DataError(f"noise_px must be zero or positive, got {self.noise_px}")
        for name in ("outlier_rate", "missing_rate", "swap_rate", "dropout_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise DataError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        for name in ("missing_frames", "swap_frames", "dropout_frames"):
            shortest, longest = getattr(self, name)
            if not 1 <= shortest <= longest:
                raise DataError(f"{name} must be (shortest, longest) frames with 1 <= shortest <= longest, "
                                f"got {getattr(self, name)}")
        if not 0 < self.swap_confidence <= 1:
            raise DataError(f"swap_confidence must lie in (0, 1], got {self.swap_confidence}")

    @property
    def active(self) -> bool:
        """Whether the 2D differs from the ground truth at all (it then carries confidences)."""
        return self.noise_px > 0 or max(self.missing_rate, self.swap_rate, self.dropout_rate) > 0

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def describe(self) -> str:
        """One line for --help and reports."""
        if not self.active:
            return "ground-truth 2D"
        parts = [f"jitter {self.noise_px:g} px with {self.outlier_rate:.0%} outliers" if self.noise_px > 0 else "",
                 f"{self.missing_rate:.0%} of joints missing" if self.missing_rate > 0 else "",
                 f"{self.swap_rate:.0%} of frames left/right-swapped" if self.swap_rate > 0 else "",
                 f"{self.dropout_rate:.0%} of frames without the person" if self.dropout_rate > 0 else ""]
        return ", ".join(part for part in parts if part)


# Named error models: "none" is the ground truth; "typical" a good detector on sports footage
# (about 1% of the person's height of jitter, 4% of joints undetected, 2% of frames with a
# left/right confusion, 1% without the person).
GROUND_TRUTH_2D = DetectorErrors()
DETECTOR_ERRORS = {
    "none": GROUND_TRUTH_2D,
    "typical": DetectorErrors(noise_px=8.0, missing_rate=0.04, swap_rate=0.02, dropout_rate=0.01),
}


def start_chance(rate: float, lengths: tuple[int, int]) -> float:
    """The chance per frame that a run of lengths[0]..lengths[1] frames starts, for runs to cover
    a share `rate` of the frames: a frame is free when no run starting 0..longest-1 frames before
    it reaches it (bisection: the cover grows with the chance)."""
    shortest, longest = lengths
    reaches = np.minimum(1.0, (longest - np.arange(longest)) / (longest - shortest + 1))  # P(length > k)
    low, high = 0.0, 1.0
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if 1 - np.prod(1 - middle * reaches) < rate else (low, middle)
    return low


def covered_frames(rng: np.random.Generator, frames: int, columns: int, rate: float,
                   lengths: tuple[int, int]) -> np.ndarray:
    """[frames, columns] bool: runs of lengths[0]..lengths[1] frames, starting independently
    in each column, that cover an expected share `rate` of the frames (runs may overlap, and
    may start before the first frame so the share holds at the sequence's ends too)."""
    shortest, longest = lengths
    padded = frames + longest - 1                  # run starts from frame -(longest - 1)
    start_frame, column = np.nonzero(rng.random((padded, columns)) < start_chance(rate, lengths))
    length = rng.integers(shortest, longest + 1, size=len(start_frame))
    edges = np.zeros((padded + longest + 1, columns), np.int64)
    np.add.at(edges, (start_frame, column), 1)
    np.add.at(edges, (start_frame + length, column), -1)
    return np.cumsum(edges, axis=0)[longest - 1:longest - 1 + frames] > 0


def _jitter(rng: np.random.Generator, shape: tuple[int, ...], sigma: np.ndarray,
            outlier_rate: float) -> np.ndarray:
    """Offsets [N, 17, 2]: Gaussian of sigma [N, 17], a share outlier_rate of them much further."""
    offset = rng.normal(size=shape) * sigma[..., None]
    outlier = rng.random(shape[:2]) < outlier_rate
    direction = rng.normal(size=shape)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    jump = direction * (rng.uniform(*_OUTLIER_SIGMAS, size=shape[:2]) * sigma)[..., None]
    return np.where(outlier[..., None], jump, offset)


def swapped_joints(swaps: np.ndarray) -> np.ndarray:
    """Which true joint each reported joint shows [N, 17], from swaps [N, len(SWAP_KINDS)]."""
    legs, arms, sides = swaps.T
    shown = np.tile(np.arange(NUM_JOINTS), (len(swaps), 1))
    for pairs, swapped in ((_LEGS, legs | sides), (_ARMS, arms | sides)):
        for right, left in pairs:
            shown[swapped, right], shown[swapped, left] = left, right
    return shown


def hold_missing(pixels: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Coordinates [N, 17, 2] where every unseen joint (seen [N, 17] False) is filled as the
    streaming runtime fills it: its last seen position, else the pelvis, else the seen joints'
    mean, else the previous frame's such point (the image centre before any)."""
    frames = np.arange(len(pixels))
    any_seen = seen.any(axis=1)
    counts = np.maximum(seen.sum(axis=1, keepdims=True), 1)
    centre = np.where(seen[:, ROOT, None], pixels[:, ROOT], (pixels * seen[..., None]).sum(axis=1) / counts)
    last_anchor = np.maximum.accumulate(np.where(any_seen, frames, -1))
    anchor = np.where(last_anchor[:, None] >= 0, centre[np.maximum(last_anchor, 0)], np.array(RESOLUTION) / 2)
    last_seen = np.maximum.accumulate(np.where(seen, frames[:, None], -1), axis=0)
    held = pixels[np.maximum(last_seen, 0), np.arange(NUM_JOINTS)]
    filled = np.where((last_seen >= 0)[..., None], held, anchor[:, None])
    return np.where(seen[..., None], pixels, filled)


def detector_noise(rng: np.random.Generator, pixels: np.ndarray, person_height: np.ndarray,
                   errors: DetectorErrors) -> tuple[np.ndarray, np.ndarray]:
    """Detected 2D [N, 17, 2] and confidence [N, 17] in [0, 1] of one sequence's true pixels
    [N, 17, 2]. Every draw comes from rng, jitter first (so a jitter-only model gives the same
    data as before the other errors existed), then swaps, missing joints and drop-outs."""
    sigma = errors.noise_px * np.broadcast_to(person_height[:, None], pixels.shape[:2]) / RESOLUTION[1]
    offset = _jitter(rng, pixels.shape, sigma, errors.outlier_rate)
    error_sigmas = np.divide(np.linalg.norm(offset, axis=-1), _CONFIDENCE_SIGMAS * sigma,
                             out=np.zeros(sigma.shape), where=sigma > 0)
    confidence = 1 / (1 + error_sigmas ** 2)
    frames = len(pixels)
    if errors.swap_rate > 0:
        kind_rate = 1 - (1 - errors.swap_rate) ** (1 / len(SWAP_KINDS))   # the kinds together cover swap_rate
        shown = swapped_joints(covered_frames(rng, frames, len(SWAP_KINDS), kind_rate, errors.swap_frames))
        pixels = np.take_along_axis(pixels, shown[..., None], axis=1)
        confidence = np.where(shown != np.arange(NUM_JOINTS), confidence * errors.swap_confidence, confidence)
    seen = np.ones(pixels.shape[:2], bool)
    if errors.missing_rate > 0:
        seen &= ~covered_frames(rng, frames, NUM_JOINTS, errors.missing_rate, errors.missing_frames)
    if errors.dropout_rate > 0:
        seen &= ~covered_frames(rng, frames, 1, errors.dropout_rate, errors.dropout_frames)
    detected = hold_missing(pixels + offset, seen)
    return detected.astype(np.float32), np.where(seen, confidence, 0.0).astype(np.float32)
