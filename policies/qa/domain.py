"""Is this stream what the nano QA model was trained on? A cheap out-of-domain check on the frames.

The nano QA model has only seen rendered PyBullet scenes (``policies.qa.data``): a pale
floor, flat shading, a few saturated task colours. A real camera or clip is far from that
in the simplest statistics, so the check needs no model: each frame is shrunk to 48x48
(area averaging, so a 64 px sim camera and a 1080p clip are compared alike) and described
by 12 numbers (mean and spread of R, G, B; mean and spread of saturation; mean horizontal
and vertical gradient; mean |Laplacian|; share of grey pixels). Its Mahalanobis distance
from the same numbers over rendered sim scenes is the score; a frame scoring above
``threshold`` is out of domain. Mean, inverse covariance and threshold were calibrated on
sim scenes the model never trained on (``agentrt qa-domain calibrate``)
and ship beside the weights (``nano_qa_domain.json``); the model itself is unchanged.

A stream is out of domain when most of the last ``window`` frames are (one odd frame
changes nothing); ``DomainCheck.update`` says so once per stream.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agentrt.errors import ConfigError

__all__ = ["FEATURES", "DomainStats", "DomainCheck", "frame_features", "domain_file", "WARNING"]

SIZE = 48  # frames are compared at this size: below the sim camera's 64 and 96 px
FEATURES = ("mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "saturation", "saturation_spread",
            "gradient_x", "gradient_y", "laplacian", "grey_share")
# what each feature is, in words for the warning line
_WORDS = dict(zip(FEATURES, ("red level", "green level", "blue level", "red contrast", "green contrast",
                             "blue contrast", "saturation", "saturation spread", "horizontal detail",
                             "vertical detail", "fine texture", "share of grey"), strict=True))
WARNING = ("the nano QA model only knows the simulated scenes; this stream looks like {what}: answers are "
           "unreliable; use --model hf:PATH (a SmolVLM / Qwen2-VL checkpoint)")


def frame_features(image: np.ndarray) -> np.ndarray:
    """An RGB frame (H, W, 3) uint8 of any size -> the 12 numbers of ``FEATURES`` (float64)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"domain check: expected an RGB frame (H, W, 3), got shape {image.shape}")
    x = _shrink(image, SIZE) / 255
    grey = x.mean(axis=2)
    saturation = x.max(axis=2) - x.min(axis=2)
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return np.array([*x.mean(axis=(0, 1)), *x.std(axis=(0, 1)), saturation.mean(), saturation.std(),
                     np.abs(np.diff(grey, axis=1)).mean(), np.abs(np.diff(grey, axis=0)).mean(),
                     np.abs(laplacian).mean(), (saturation < 0.05).mean()], dtype=np.float64)


def _shrink(x: np.ndarray, size: int) -> np.ndarray:
    """Area averaging to (size, size) in numpy (no OpenCV: the policies import without it); a frame smaller
    than ``size`` is repeated up first, as nearest-neighbour upscaling would. A large frame is thinned to at
    most 4x ``size`` rows and columns first (a 1080p frame in ~2 ms, not 40)."""
    x = x[::max(1, x.shape[0] // (4 * size)), ::max(1, x.shape[1] // (4 * size))]
    for axis in (0, 1):
        if x.shape[axis] < size:
            x = np.repeat(x, -(-size // x.shape[axis]), axis=axis)
        edges = np.linspace(0, x.shape[axis], size + 1).astype(int)
        x = np.add.reduceat(x, edges[:-1], axis=axis, dtype=np.float32) / np.diff(edges).reshape([-1 if a == axis else 1 for a in range(3)])
    return x


def domain_file(weights: Path) -> Path:
    """Where the domain statistics of ``weights`` live: ``nano_qa.safetensors`` -> ``nano_qa_domain.json``."""
    return weights.with_name(weights.stem + "_domain.json")


@dataclass
class DomainStats:
    """What sim frames look like in ``FEATURES``: their mean, inverse covariance and the distance threshold."""

    mean: list[float]
    inv_cov: list[list[float]]
    threshold: float
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    calibration: dict[str, object] = field(default_factory=dict)  # how it was made, for the reader

    @classmethod
    def fit(cls, features: np.ndarray, *, margin: float = 2.0, calibration: dict[str, object] | None = None,
            ridge: float = 1e-5) -> DomainStats:
        """From sim frames' features [N, 12]: threshold = ``margin`` x the largest distance among them."""
        if features.ndim != 2 or features.shape[1] != len(FEATURES) or len(features) < 4 * len(FEATURES):
            raise ConfigError(f"domain calibration: expected >= {4 * len(FEATURES)} frames of {len(FEATURES)} "
                              f"features, got {features.shape}")
        mean = features.mean(axis=0)
        inv_cov = np.linalg.inv(np.cov(features.T) + ridge * np.eye(len(FEATURES)))  # ridge: a constant feature
        stats = cls(mean.tolist(), inv_cov.tolist(), 0.0, calibration=dict(calibration or {}))
        distances = stats.distances(features)
        stats.threshold = float(margin * distances.max())
        stats.calibration.update(frames=len(features), margin=margin,
                                 distance_p50=round(float(np.median(distances)), 3),
                                 distance_max=round(float(distances.max()), 3))
        return stats

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of features [N, 12] (or one [12]) from the sim frames."""
        d = np.atleast_2d(features) - np.asarray(self.mean)
        return np.sqrt(np.einsum("ni,ij,nj->n", d, np.asarray(self.inv_cov), d).clip(min=0))

    def describe(self, features: np.ndarray) -> str:
        """What the frame looks like, in words: the features furthest from the sim's, as ratios."""
        mean, spread = np.asarray(self.mean), 1 / np.sqrt(np.diag(np.asarray(self.inv_cov)))
        z = (features - mean) / spread
        far = [FEATURES[i] for i in np.argsort(-np.abs(z))[:2]]
        ratios = ", ".join(f"{_WORDS[name]} {features[FEATURES.index(name)] / mean[FEATURES.index(name)]:.1f}x"
                           for name in far if abs(mean[FEATURES.index(name)]) > 1e-6)
        return f"a real camera or clip, not a rendered sim scene ({ratios} the sim scenes')"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> DomainStats:
        try:
            raw = json.loads(path.read_text())
            stats = cls(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: not domain statistics ({exc}); rerun "
                              "`agentrt qa-domain calibrate`") from None
        if tuple(stats.features) != FEATURES:
            raise ConfigError(f"{path}: made for other features {stats.features}; rerun "
                              "`agentrt qa-domain calibrate`")
        return stats


class DomainCheck:
    """Frames in, a verdict on the stream: ``out_of_domain`` when most of the last ``window`` frames score above
    the threshold; ``update`` returns the warning line the first time that happens after a ``reset``."""

    def __init__(self, stats: DomainStats, window: int = 5) -> None:
        self.stats, self.window = stats, window
        self.reset()

    def reset(self) -> None:
        self.recent: deque[bool] = deque(maxlen=self.window)
        self.out_of_domain = False
        self.warned = False
        self.what = ""
        self.last_score = 0.0

    def update(self, image: np.ndarray) -> str:
        """Check one frame; the warning line when the stream has just turned out of domain (once), else ""."""
        features = frame_features(image)
        self.last_score = float(self.stats.distances(features)[0])
        flagged = self.last_score > self.stats.threshold
        self.recent.append(flagged)
        self.out_of_domain = 2 * sum(self.recent) > len(self.recent) and len(self.recent) >= min(3, self.window)
        if flagged and not self.what:
            self.what = self.stats.describe(features)
        if self.out_of_domain and not self.warned:
            self.warned = True
            return self.warning()
        return ""

    def warning(self) -> str:
        return WARNING.format(what=self.what or "something else")
