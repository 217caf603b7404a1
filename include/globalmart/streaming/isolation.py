"""Which records make a micro-batch fail: bisection over the batch's records, bounded.

A batch that keeps failing is not retried forever (the sink, ``streaming.sink``): its records
are numbered 0..n-1 and :func:`isolate` finds the ones whose presence makes the write fail by
trying halves of the failing ranges, each trial in a savepoint that is rolled back. A range that
fails while neither half does (records that fail only together) is isolated whole; so is every
range still failing when the trial budget is spent. Pure: the trial is a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# (first record, end) → None when the records of [first, end) write without error, else why not
Trial = Callable[[int, int], str | None]


@dataclass(frozen=True)
class Isolated:
    first: int
    end: int  # exclusive
    reason: str

    @property
    def records(self) -> range:
        return range(self.first, self.end)


@dataclass(frozen=True)
class Isolation:
    isolated: tuple[Isolated, ...]
    trials: int

    @property
    def records(self) -> list[int]:
        return [record for part in self.isolated for record in part.records]

    def reason_of(self, record: int) -> str:
        return next(part.reason for part in self.isolated if record in part.records)


def isolate(count: int, reason: str, trial: Trial, max_trials: int) -> Isolation:
    """The records of ``[0, count)`` to set aside so that the rest writes; ``reason`` is why the
    whole batch failed. At most ``max_trials`` calls of ``trial``."""
    failing = [(0, count, reason)]
    isolated: list[Isolated] = []
    trials = 0
    while failing:
        first, end, why = failing.pop()
        if end - first == 1 or trials + 2 > max_trials:
            isolated.append(Isolated(first, end, why))
            continue
        middle = (first + end) // 2
        halves = [(first, middle), (middle, end)]
        verdicts = [trial(lo, hi) for lo, hi in halves]
        trials += 2
        failed = [(lo, hi, verdict) for (lo, hi), verdict in zip(halves, verdicts, strict=True) if verdict]
        if not failed:  # only together do they fail: neither half can be told apart
            isolated.append(Isolated(first, end, why))
        failing.extend(failed)
    return Isolation(tuple(sorted(isolated, key=lambda part: part.first)), trials)
