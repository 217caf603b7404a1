"""Is a query keeping up? A verdict from its consumer lag over time, robust to the trigger's saw-tooth.

A query that reads every ``trigger`` seconds has a lag that climbs between batches and drops
when one commits: sampled every few seconds, a 60 s archiver looks like noise around a slope of
anything. Its peaks do not: the largest lag seen in each stretch of at least two triggers is
what the query had to catch up at worst, and a query keeps up when those peaks stay level.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

# a queue growing by this share of the input per minute is not sustained: 2 % of a minute's
# input per minute doubles a one-minute backlog within an hour
GROWTH_TOLERANCE = 0.02


@dataclass(frozen=True)
class LagVerdict:
    sustained: bool
    peak_slope_per_minute: float  # records per minute, least squares over the window peaks
    peaks: int
    last_peak: int
    tolerance_per_minute: float


def window_peaks(samples: list[tuple[float, int]], window_seconds: float) -> list[tuple[float, int]]:
    """(middle of the window, the largest lag in it) of consecutive whole windows of
    ``window_seconds`` (a last, shorter one may have missed its peak; it counts only when there
    is no whole window)."""
    if not samples:
        return []
    start = samples[0][0]
    whole = int((samples[-1][0] - start) // window_seconds) or 1
    windows: dict[int, list[tuple[float, int]]] = {}
    for moment, lag in samples:
        index = int((moment - start) // window_seconds)
        if index < whole:
            windows.setdefault(index, []).append((moment, lag))
    return [(start + (index + 0.5) * window_seconds, max(lag for _, lag in members))
            for index, members in sorted(windows.items())]


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    xs, ys = [t for t, _ in points], [v for _, v in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    variance = sum((x - mean_x) ** 2 for x in xs)
    if variance == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / variance * 60


def lag_verdict(samples: list[tuple[float, int]], trigger_seconds: float, input_per_second: float) -> LagVerdict:
    """Whether a query sustained its input over ``samples`` ((seconds, records behind)): the
    slope of its lag peaks (windows of two triggers, at least 20 s) is below
    ``GROWTH_TOLERANCE`` of its input per minute, with a floor of 100 records per minute for a
    trickle of input."""
    peaks = window_peaks(samples, max(2 * trigger_seconds, 20.0))
    slope = slope_per_minute([(t, float(v)) for t, v in peaks])
    tolerance = max(GROWTH_TOLERANCE * input_per_second * 60, 100.0)
    return LagVerdict(slope <= tolerance, round(slope, 1), len(peaks), peaks[-1][1] if peaks else 0, round(tolerance, 1))
