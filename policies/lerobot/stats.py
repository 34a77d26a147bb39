"""Feature statistics as LeRobot keeps them: per episode, then pooled over the dataset.

Each feature gets ``min``, ``max``, ``mean``, ``std`` (population) and ``count``. Vectors are
reduced over frames (shape ``[D]``); images per channel on pixels scaled to [0, 1], kept as
``[[[v]]]`` per channel (shape ``[3, 1, 1]``, what LeRobot broadcasts against a C x H x W image).
The pooled mean and std follow from the episodes' means, variances and counts (LeRobot's
``aggregate_stats``), so adding an episode never re-reads the others.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FeatureStats", "vector_stats", "image_stats", "pool_stats", "stats_json"]

FeatureStats = dict[str, np.ndarray]  # min, max, mean, std, count


def vector_stats(x: np.ndarray) -> FeatureStats:
    """(T, D) or (T,) values of one episode -> stats over T."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}


def image_stats(images: np.ndarray) -> FeatureStats:
    """(T, H, W, 3) uint8 frames of one episode -> per-channel stats in [0, 1], each shaped (3, 1, 1)."""
    lo = images.min(axis=(0, 1, 2)).astype(np.float64) / 255.0
    hi = images.max(axis=(0, 1, 2)).astype(np.float64) / 255.0
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    shape = (-1, 1, 1)
    return {"min": lo.reshape(shape), "max": hi.reshape(shape), "mean": pixels.mean(0).reshape(shape),
            "std": pixels.std(0).reshape(shape), "count": np.array([len(images)])}


def pool_stats(parts: list[FeatureStats]) -> FeatureStats:
    """The stats of several episodes together, from each one's (exact: the pooled population variance)."""
    counts = np.array([float(p["count"][0]) for p in parts])
    weights = (counts / counts.sum()).reshape((-1,) + (1,) * parts[0]["mean"].ndim)
    means = np.stack([p["mean"] for p in parts])
    mean = (weights * means).sum(0)
    variance = (weights * (np.stack([p["std"] for p in parts]) ** 2 + (means - mean) ** 2)).sum(0)
    return {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
            "mean": mean, "std": np.sqrt(variance), "count": np.array([int(counts.sum())])}


def stats_json(stats: dict[str, FeatureStats]) -> dict[str, dict[str, list[float]]]:
    """feature -> stat -> nested lists (meta/stats.json)."""
    return {key: {name: value.tolist() for name, value in s.items()} for key, s in stats.items()}
