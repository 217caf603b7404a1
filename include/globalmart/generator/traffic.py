"""A stream of rendered events in one of three time modes.

- ``realtime``: event times follow the wall clock; the publisher paces sends to ``rate``.
- ``fast``: event times follow the wall clock; as many events per second as can be sent.
- ``backfill``: ``days`` whole past days (UTC) of historic traffic at the catalog's daily
  volume, shaped by each country's diurnal curve, as fast as possible.

In the wall-clock modes the simulated clock is steered to the wall clock: the session arrival
rate is raised when simulated time runs ahead of the wall clock (too few events per simulated
second for the sending rate) and lowered when it falls behind. Event times then stay within a
second or two of the time they are sent, whatever the send rate.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np

from globalmart.generator.catalog import ShopCatalog
from globalmart.generator.malformed import MALFORMED_KINDS, applicable, corrupt
from globalmart.generator.render import Message, Renderer
from globalmart.generator.simulator import TRUTH, Rows, Simulator
from globalmart.settings import Settings

Mode = Literal["realtime", "fast", "backfill"]
STEERING_SECONDS = 10.0  # the simulated clock closes a gap to the wall clock over about this long
SLICE_MS = {"realtime": 200, "fast": 100, "backfill": 60_000}
WARM_UP_SECONDS = 300  # most sessions last less; their remaining events open the run
WARM_UP_EVENTS = 6_000_000  # a full warm-up up to 20,000 events/s (about 20 s of start-up)


@dataclass
class TrafficConfig:
    mode: Mode = "realtime"
    rate: float | None = None  # realtime: events/s (default from settings)
    seed: int | None = None  # None: a random seed, reported so the run can be repeated
    anomaly_rate: float | None = None  # None: from settings
    days: int = 1  # backfill: how many days
    end_date: date | None = None  # backfill: the day after the last one (default today, UTC)
    daily_transactions: int | None = None  # backfill: volume per day (default from the catalog)
    malformed_rate: float = 0.0  # share of shopper events deliberately broken
    malformed_kinds: list[str] = field(default_factory=lambda: list(MALFORMED_KINDS))

    def __post_init__(self):
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**31)
        unknown = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if unknown:
            raise ValueError(f"unknown malformed kinds {sorted(unknown)}; choose from {', '.join(MALFORMED_KINDS)}")
        if not 0 <= self.malformed_rate <= 1:
            raise ValueError("malformed_rate must be between 0 and 1")
        if self.mode == "backfill" and self.days < 1:
            raise ValueError("backfill needs days >= 1")


@dataclass
class Batch:
    events: list[Message]  # shopper events and restocks, in time order per topic
    truths: list[Message]  # ground-truth records
    malformed: dict[str, int]  # broken on purpose, by kind


def backfill_window(config: TrafficConfig) -> tuple[int, int]:
    end_day = config.end_date or datetime.now(UTC).date()
    end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=UTC)
    start = end - timedelta(days=config.days)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


class TrafficStream:
    """Iterate to get batches; ``rate_hint`` (events/s actually sent) steers the fast mode."""

    def __init__(
        self, settings: Settings, config: TrafficConfig, catalog: ShopCatalog, wall_ms=None,
        opening_stock: np.ndarray | None = None,
    ):
        """``opening_stock``: units per product to sell from (default: the catalog's initial stock)."""
        self.settings = settings
        self.config = config
        self.wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        if config.mode == "backfill":
            start_ms, self.end_ms = backfill_window(config)
        else:
            start_ms, self.end_ms = self.wall_ms(), None
        self.start_ms = start_ms
        self.simulator = Simulator(
            catalog, settings.generator, settings.thresholds, config.seed, start_ms, anomaly_rate=config.anomaly_rate,
            opening_stock=opening_stock,
        )
        self.renderer = Renderer(catalog, self.simulator.tag)
        self.rng = random.Random(config.seed)
        per_session = self.simulator.events_per_session()
        if config.mode == "realtime":
            self.rate_hint = float(config.rate or settings.generator.default_rate)
        else:
            self.rate_hint = 100_000.0
        self._per_session = per_session
        daily = config.daily_transactions or catalog.settings.daily_transactions
        self._backfill_sessions = self.simulator.sessions_per_second_for_daily_volume(daily)
        self.finished = False
        self._ahead_integral = 0.0
        self._warm_up()

    def _warm_up(self) -> None:
        """Open the run in steady state (see ``Simulator.warm_up``), at most WARM_UP_EVENTS simulated events."""
        sim = self.simulator
        if self.config.mode == "backfill":
            seconds = WARM_UP_SECONDS
            rate = lambda at: self._backfill_sessions * sim.diurnal_factor(at)  # noqa: E731
        else:
            seconds = min(WARM_UP_SECONDS, WARM_UP_EVENTS / self.rate_hint)
            rate = lambda at: self.rate_hint / self._per_session  # noqa: E731
        sim.warm_up(seconds, rate)
        if self.config.mode != "backfill":  # the warm-up took wall time: start from now
            lag = self.wall_ms() - sim.now_ms
            sim.shift(lag)
            self.start_ms += lag

    @property
    def tag(self) -> str:
        return self.simulator.tag

    @property
    def sim_ms(self) -> int:
        return self.simulator.now_ms

    def progress(self) -> float | None:
        """Share of a backfill done (None in the open-ended modes)."""
        if self.end_ms is None:
            return None
        return min(1.0, (self.sim_ms - self.start_ms) / (self.end_ms - self.start_ms))

    def _sessions_per_second(self) -> float:
        sim = self.simulator
        if self.config.mode == "backfill":
            return self._backfill_sessions * sim.diurnal_factor(sim.now_ms)
        ahead_seconds = (sim.now_ms - self.wall_ms()) / 1000
        # proportional and integral steering: the integral absorbs the error of the
        # events-per-session estimate, so the clocks do not settle apart
        self._ahead_integral += ahead_seconds * SLICE_MS[self.config.mode] / 1000
        steer = 1 + ahead_seconds / STEERING_SECONDS + self._ahead_integral / STEERING_SECONDS**2 / 30
        return self.rate_hint / self._per_session * float(np.clip(steer, 0.25, 4.0))

    def next_batch(self) -> Batch:
        if self.finished:
            raise StopIteration
        sim = self.simulator
        if self.end_ms is not None and sim.now_ms >= self.end_ms:
            rows = sim.drain()  # sessions still open at the end of the window finish
            self.finished = True
        else:
            until = sim.now_ms + SLICE_MS[self.config.mode]
            if self.end_ms is not None:
                until = min(until, self.end_ms)
            rows = sim.advance(until, self._sessions_per_second())
        return self._batch(rows)

    def stop(self) -> Batch:
        """End an open-ended run: the ground truth that the events already sent make true."""
        self.finished = True
        return self._batch(self.simulator.stop())

    def _batch(self, rows: Rows) -> Batch:
        is_truth = rows.kind == TRUTH
        events = self.renderer.render(rows.take(~is_truth))
        truths = self.renderer.render(rows.take(is_truth))
        malformed: dict[str, int] = {}
        if self.config.malformed_rate > 0 and events:
            events, malformed = self._break_some(events)
        return Batch(events, truths, malformed)

    def _break_some(self, events: list[Message]) -> tuple[list[Message], dict[str, int]]:
        rng, kinds = self.rng, self.config.malformed_kinds
        count = np.random.default_rng(rng.getrandbits(32)).binomial(len(events), self.config.malformed_rate)
        broken: dict[str, int] = {}
        for index in rng.sample(range(len(events)), count):
            usable = [k for k in kinds if applicable(k, events[index][0])]
            if usable:
                kind = rng.choice(usable)
                events[index] = corrupt(events[index], kind, rng)
                broken[kind] = broken.get(kind, 0) + 1
        return events, broken

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        return self.next_batch()
