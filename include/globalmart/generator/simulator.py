"""Shopper behaviour, simulated in time: sessions that walk the funnel, plus injected anomalies.

A session browses (views, in the user's favourite categories most of the time, products by
Zipf popularity), may fill a cart (adds, a remove, an update), then checks out and pays or
abandons the cart. A share of paying sessions is replaced by an anomaly scenario. Products
sell out and are restocked after a lead time.

The simulator is columnar: each ``advance`` spawns the sessions starting in a time slice at
once with numpy, and their future events wait in a pending buffer (a few dozen bytes per
event) until their time comes; ``advance`` returns the events due, in time order. Python
touches single events only when they are rendered to JSON, and the few anomaly scenarios.

Ground truth (what was injected) is emitted as events of its own: an anomaly when its last
transaction happens, an abandoned cart when its abandonment timeout has passed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from globalmart.generator.catalog import ShopCatalog
from globalmart.settings import GeneratorSettings, Thresholds

# event kinds, in the pending buffer
VIEW, CART, TX, RESTOCK, TRUTH = range(5)
KIND_TOPICS = {VIEW: "product_views", CART: "cart_events", TX: "transactions", RESTOCK: "inventory", TRUTH: "ground_truth"}
VIEW_ACTIONS = ["view", "search", "filter", "compare"]
VIEW_ACTION_WEIGHTS = [0.7, 0.15, 0.1, 0.05]
ADD, REMOVE, UPDATE, CHECKOUT = range(4)
CART_ACTIONS = ["add", "remove", "update", "checkout"]
NORMAL_TOTAL_SHARE = 0.8  # ordinary carts stay under this share of the high-value threshold
CHEAP_PRICE = 60.0  # products bought in bulk by the unusual-quantity scenario
PREMIUM_PRICE = 500.0  # products of the high-value scenario
SECOND = 1000  # milliseconds
FITTING_ATTEMPTS = 50  # products tried for a rapid-fire-amount purchase inside its value band


def run_tag(seed: int) -> str:
    """Short, stable prefix of every id a run makes: ids are unique across seeds."""
    return hashlib.sha256(str(seed).encode()).hexdigest()[:8]


def segment_cumsum(values: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` restarting at each new value of ``segments`` (grouped, e.g. sorted)."""
    if not len(values):
        return values.copy()
    running = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(np.diff(segments)) + 1]
    sizes = np.diff(np.r_[starts, len(values)])
    return running - np.repeat(running[starts] - values[starts], sizes)


def pick_in_stock(candidates: np.ndarray, stock: np.ndarray, quantity: int) -> int:
    """The first candidate with ``quantity`` units in stock, else the best-stocked product of
    all if it has them, else -1: nothing in the shop has that many."""
    in_stock = candidates[stock[candidates] >= quantity]
    if len(in_stock):
        return int(in_stock[0])
    best = int(np.argmax(stock))
    return best if stock[best] >= quantity else -1


class SoldOut(Exception):
    """No product has the units an anomaly scenario needs."""


@dataclass
class Rows:
    """Columnar events; ``extra`` holds the few Python objects (transaction lines, truth records)."""

    time: np.ndarray  # int64 epoch milliseconds
    kind: np.ndarray  # int8
    serial: np.ndarray  # int64, the event's number (its id)
    session: np.ndarray  # int64
    user: np.ndarray  # int32
    product: np.ndarray  # int32 (-1: none)
    action: np.ndarray  # int8
    quantity: np.ndarray  # int32
    duration: np.ndarray  # int32 (views) or payment method (transactions)
    extra: np.ndarray  # object

    COLUMNS = ("time", "kind", "serial", "session", "user", "product", "action", "quantity", "duration", "extra")
    DTYPES = (np.int64, np.int8, np.int64, np.int64, np.int32, np.int32, np.int8, np.int32, np.int32, object)

    @classmethod
    def empty(cls) -> Rows:
        return cls(*(np.empty(0, dtype=d) for d in cls.DTYPES))

    @classmethod
    def build(cls, n: int, **columns) -> Rows:
        values = []
        for name, dtype in zip(cls.COLUMNS, cls.DTYPES):
            value = columns.get(name, -1 if dtype is not object else None)
            array = np.empty(n, dtype=dtype)
            array[:] = value
            values.append(array)
        return cls(*values)

    def __len__(self) -> int:
        return len(self.time)

    def take(self, index) -> Rows:
        return Rows(*(getattr(self, c)[index] for c in self.COLUMNS))

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, c) for p in parts]) for c in cls.COLUMNS))


class PendingEvents:
    """Future events in time buckets, so that taking the due ones costs what is due, not
    what is pending (at 100k events/s some 10M events wait for their time).

    Events of the current 64 s period sit in 1 s buckets, later ones in 64 s buckets that are
    split into 1 s buckets when their period begins.
    """

    FINE_MS, COARSE_MS = 1_000, 64_000

    def __init__(self):
        self.fine: dict[int, list[Rows]] = {}
        self.coarse: dict[int, list[Rows]] = {}
        self.fine_until = np.iinfo(np.int64).min  # rows before this go to fine buckets
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, rows: Rows) -> None:
        if not len(rows):
            return
        self.size += len(rows)
        near = rows.time < self.fine_until
        self._put(self.fine, rows.take(near), self.FINE_MS)
        self._put(self.coarse, rows.take(~near), self.COARSE_MS)

    @staticmethod
    def _put(table: dict[int, list[Rows]], rows: Rows, width: int) -> None:
        if not len(rows):
            return
        key = rows.time // width
        order = np.argsort(key, kind="stable")
        rows, key = rows.take(order), key[order]
        cuts = np.flatnonzero(np.diff(key)) + 1
        for start, stop in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(key)].tolist()):
            table.setdefault(int(key[start]), []).append(rows.take(slice(start, stop)))

    def pop_before(self, until_ms: int | None) -> Rows:
        """Remove and return the events before ``until_ms`` (None: all of them), unordered."""
        if until_ms is None:
            parts = [p for table in (self.fine, self.coarse) for chunks in table.values() for p in chunks]
            self.fine, self.coarse, self.size = {}, {}, 0
            return Rows.concat(parts)
        for key in sorted(k for k in self.coarse if k * self.COARSE_MS < until_ms):
            self._put(self.fine, Rows.concat(self.coarse.pop(key)), self.FINE_MS)
            self.fine_until = max(self.fine_until, (key + 1) * self.COARSE_MS)
        parts = []
        for key in sorted(k for k in self.fine if k * self.FINE_MS < until_ms):
            chunk = Rows.concat(self.fine.pop(key))
            if (key + 1) * self.FINE_MS <= until_ms:
                parts.append(chunk)
                continue
            due = chunk.time < until_ms
            parts.append(chunk.take(due))
            if not due.all():
                self.fine[key] = [chunk.take(~due)]
        rows = Rows.concat(parts)
        self.size -= len(rows)
        return rows


@dataclass
class Truth:
    kind: str
    user: int
    session: int
    first_time: int
    transactions: list[int] = field(default_factory=list)  # serials
    transaction_times: list[int] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    detail: str = ""


@dataclass
class Purchase:
    """The lines of a transaction (product index, quantity) and its place in the session."""

    lines: list[tuple[int, int]]
    first_add_time: int | None  # None: no cart events (a scripted purchase)
    value: float
    scenario: Truth | None = None


@dataclass
class Counters:
    sessions: int = 0
    carts: int = 0
    purchases: int = 0
    ordinary_checkouts: int = 0
    ordinary_purchases: int = 0
    abandoned: int = 0
    out_of_stock_lines: int = 0
    sold_out_scenarios: int = 0  # anomaly scenarios not played: no product had the units
    restocks: int = 0
    anomalies: dict[str, int] = field(default_factory=dict)


class Simulator:
    def __init__(
        self,
        catalog: ShopCatalog,
        behaviour: GeneratorSettings,
        thresholds: Thresholds,
        seed: int,
        start_ms: int,
        anomaly_rate: float | None = None,
        opening_stock: np.ndarray | None = None,
    ):
        """``opening_stock``: units per product to sell from (default: the catalog's initial stock)."""
        self.catalog = catalog
        self.products = catalog.products
        self.users = catalog.users
        self.behaviour = behaviour
        self.thresholds = thresholds
        self.seed = seed
        self.tag = run_tag(seed)
        self.rng = np.random.default_rng(seed)
        self.now_ms = start_ms  # everything before this has been returned
        self.pending = PendingEvents()
        self.next_serial = 0
        self.next_session = 0
        opening = self.products.initial_stock if opening_stock is None else opening_stock
        if len(opening) != len(self.products) or (opening < 0).any():
            raise ValueError("the opening stock needs one count of zero or more per product")
        self.stock = np.asarray(opening, dtype=np.int64).copy()
        self.restock_pending = np.zeros(len(self.products), dtype=bool)
        self.sold_since_reorder = np.zeros(len(self.products), dtype=np.int64)
        self.counters = Counters(anomalies={k: 0 for k in behaviour.anomaly_kinds})
        self.anomaly_rate = behaviour.anomaly_rate if anomaly_rate is None else anomaly_rate
        self.warming_up = False
        price = self.products.price
        self._pools = {
            name: (members, np.cumsum(self.products.popularity[members]))
            for name, members in (
                ("cheap", np.flatnonzero(price <= CHEAP_PRICE)),
                ("premium", np.flatnonzero(price >= PREMIUM_PRICE)),
                ("mid", np.flatnonzero((price >= 350) & (price <= 2000))),
            )
        }
        n_countries = len(catalog.settings.countries)
        self._country_share = np.asarray(catalog.settings.country_weights, dtype=np.float64)
        self._country_share /= self._country_share.sum()
        self._utc_offsets = np.asarray(catalog.settings.country_utc_offsets[:n_countries])
        self._diurnal = np.asarray(behaviour.diurnal_curve, dtype=np.float64)
        self._normal_cap = thresholds.high_value_transaction * NORMAL_TOTAL_SHARE

    # ---- rates ---------------------------------------------------------------------------

    def _scenario_sizes(self) -> dict[str, float]:
        """Mean transactions per scenario of each kind."""
        t = self.thresholds
        return {
            "high_value": 1.0,
            "unusual_quantity": 1.0,
            "rapid_fire_count": t.rapid_transactions_per_minute + 1.5,
            "rapid_fire_amount": 3.0,
        }

    def _scenario_probability(self) -> float:
        """Chance that a paying session becomes an anomaly scenario, so that ``anomaly_rate`` of
        all transactions are anomalous: rapid-fire scenarios make several transactions, and some
        ordinary checkouts fail (out of stock), which the share of those that succeed corrects."""
        kinds = self.behaviour.anomaly_kinds
        if not kinds or self.anomaly_rate <= 0:
            return 0.0
        sizes = self._scenario_sizes()
        mean = float(np.mean([sizes[k] for k in kinds]))
        c = self.counters
        succeed = c.ordinary_purchases / c.ordinary_checkouts if c.ordinary_checkouts >= 100 else 1.0
        rate = self.anomaly_rate
        return rate * succeed / (mean * (1 - rate) + rate * succeed)

    def events_per_session(self) -> float:
        """Expected shopper events per session (views, cart events, the transaction)."""
        b = self.behaviour
        adds = 1 + b.mean_extra_cart_adds
        return b.mean_views_per_session + b.cart_rate * (adds + b.remove_rate + b.update_rate + b.checkout_rate * 2)

    def diurnal_factor(self, at_ms: int) -> float:
        """Relative session arrivals at this time: each country's curve at its local hour."""
        hour = (at_ms // 3_600_000) % 24
        local = (hour + self._utc_offsets) % 24
        return float(np.dot(self._country_share, self._diurnal[local]) / self._diurnal.mean())

    def sessions_per_second_for_daily_volume(self, daily_transactions: float) -> float:
        b = self.behaviour
        purchases_per_session = max(b.cart_rate * b.checkout_rate, 1e-9)
        return daily_transactions / purchases_per_session / 86_400

    # ---- time ----------------------------------------------------------------------------

    def advance(self, until_ms: int, sessions_per_second: float) -> Rows:
        """Spawn the sessions starting in [now, until), and return every event due before ``until``."""
        if until_ms <= self.now_ms:
            return Rows.empty()
        span = until_ms - self.now_ms
        expected = sessions_per_second * span / SECOND
        count = int(self.rng.poisson(expected)) if expected > 0 else 0
        if count:
            starts = np.sort(self.rng.integers(self.now_ms, until_ms, size=count))
            self.pending.add(self._spawn_sessions(starts))
        self.pending.add(self._random_restocks(self.now_ms, until_ms))
        self.pending.add(self._schedule_restocks(until_ms))
        self.now_ms = until_ms
        return self._pop_due(until_ms)

    def _pop_due(self, until_ms: int) -> Rows:
        due = self.pending.pop_before(until_ms)
        due = due.take(np.lexsort((due.serial, due.time)))
        restocks = due.kind == RESTOCK
        if restocks.any() and not self.warming_up:  # a warm-up holds them back (see ``warm_up``)
            np.add.at(self.stock, due.product[restocks], due.quantity[restocks])
            self.restock_pending[due.product[restocks]] = False
            self.counters.restocks += int(restocks.sum())
        return due

    def warm_up(self, seconds: float, sessions_per_second) -> None:
        """Start in steady state: simulate the ``seconds`` before now and drop their events.

        Without it a run starts with browsing only (carts and purchases come minutes into a
        session). Sessions already open at the start keep their remaining events, like a
        stream joined mid-session; no anomalies are injected while warming up, and an
        abandoned cart counts only if one of its adds falls after the start.

        Stock counts only what is sent: the dropped purchases go back on the shelf, and the
        restocks that arrived while warming up are held and sent at the start.
        """
        start = self.now_ms
        self.now_ms = start - int(seconds * SECOND)
        self.warming_up = True
        held = []
        while self.now_ms < start:
            dropped = self.advance(min(self.now_ms + 10 * SECOND, start), sessions_per_second(self.now_ms))
            self._cancel_purchases(dropped)
            held.append(dropped.take(dropped.kind == RESTOCK))
        self.warming_up = False
        restocks = Rows.concat(held)
        restocks.time[:] = start
        pending = self.pending.pop_before(None)
        # a cart's first add is now its first add still to be sent
        adds = (pending.kind == CART) & (pending.action == ADD)
        first_add: dict[int, int] = {}
        for session, at in zip(pending.session[adds].tolist(), pending.time[adds].tolist()):
            first_add[session] = min(at, first_add.get(session, at))
        keep = np.ones(len(pending), dtype=bool)
        for i in np.flatnonzero((pending.kind == TRUTH) | (pending.kind == TX)).tolist():
            record = pending.extra[i]
            if isinstance(record, Truth):
                if record.session in first_add:
                    record.first_time = first_add[record.session]
                else:
                    keep[i] = False  # its cart was never seen
            elif record.first_add_time is not None:
                record.first_add_time = first_add.get(int(pending.session[i]))
        self.pending.add(pending.take(keep))
        self.pending.add(restocks)
        self.counters = Counters(anomalies={k: 0 for k in self.behaviour.anomaly_kinds})

    def shift(self, delta_ms: int) -> None:
        """Move the clock and everything pending by ``delta_ms`` (a warm-up that took wall time)."""
        pending = self.pending.pop_before(None)
        pending.time += delta_ms
        for record in pending.extra[(pending.kind == TRUTH) | (pending.kind == TX)].tolist():
            if isinstance(record, Truth):
                record.first_time += delta_ms
                record.transaction_times = [at + delta_ms for at in record.transaction_times]
            elif record.first_add_time is not None:
                record.first_add_time += delta_ms
        self.pending.add(pending)
        self.now_ms += delta_ms

    def drain(self) -> Rows:
        """Every pending event, whatever its time: the open sessions of a finished backfill."""
        due = self._pop_due(None)
        if len(due):
            self.now_ms = max(self.now_ms, int(due.time[-1]) + 1)
        return due

    def stop(self) -> Rows:
        """End the run now: ground truth for what the events already sent make true.

        Carts whose adds were sent but whose purchase was not are abandoned; an unfinished
        rapid-fire scenario counts if the transactions already sent break the rule. The stock
        of the purchases never sent goes back on the shelf.
        """
        pending = self.pending.pop_before(None)
        self._cancel_purchases(pending)
        now, t = self.now_ms, self.thresholds
        # abandonments already decided, of carts whose first add was sent
        decided = [
            i
            for i in np.flatnonzero(pending.kind == TRUTH).tolist()
            if pending.extra[i].kind == "cart_abandoned" and pending.extra[i].first_time < now
        ]
        cut, cut_times, seen = [], [], set()
        for index in np.flatnonzero(pending.kind == TX).tolist():
            purchase: Purchase = pending.extra[index]
            scenario = purchase.scenario
            if scenario is None:
                if purchase.first_add_time is not None and purchase.first_add_time < now:
                    cut.append(
                        Truth(
                            "cart_abandoned", int(pending.user[index]), int(pending.session[index]),
                            purchase.first_add_time, amounts=[purchase.value],
                            detail="cart left unpaid: the generator stopped before checkout",
                        )
                    )
                    cut_times.append(now)
                continue
            if id(scenario) in seen:
                continue
            seen.add(id(scenario))
            sent = [i for i, at in enumerate(scenario.transaction_times) if at < now]
            times = [scenario.transaction_times[i] for i in sent]
            amounts = [scenario.amounts[i] for i in sent]
            breaks_rule = (
                scenario.kind == "rapid_fire_count"
                and len(sent) >= t.rapid_transactions_per_minute
                and times[-1] - times[0] < 60 * SECOND
            ) or (scenario.kind == "rapid_fire_amount" and sum(amounts) > t.rapid_spend_5min)
            if breaks_rule:
                cut.append(
                    Truth(
                        scenario.kind, scenario.user, scenario.session, times[0],
                        transactions=[scenario.transactions[i] for i in sent], transaction_times=times,
                        amounts=amounts, detail=scenario.detail + " (cut short when the generator stopped)",
                    )
                )
                cut_times.append(times[-1])
        rows = Rows.concat([pending.take(np.array(decided, dtype=np.int64)), self._truth_rows(cut, cut_times)])
        return rows.take(np.argsort(rows.time, kind="stable"))

    # ---- serials -------------------------------------------------------------------------

    def _serials(self, n: int) -> np.ndarray:
        start = self.next_serial
        self.next_serial += n
        return np.arange(start, start + n, dtype=np.int64)

    # ---- sessions ------------------------------------------------------------------------

    def _spawn_sessions(self, starts: np.ndarray) -> Rows:
        rng, b = self.rng, self.behaviour
        n = len(starts)
        self.counters.sessions += n
        session = np.arange(self.next_session, self.next_session + n, dtype=np.int64)
        self.next_session += n
        countries = self._session_countries(starts)
        user = self.users.sampler.sample(rng, countries)

        # browsing: views with their durations, one after another
        n_views = 1 + rng.poisson(b.mean_views_per_session - 1, size=n)
        view_session = np.repeat(np.arange(n), n_views)
        first_view = np.cumsum(n_views) - n_views
        nv = len(view_session)
        preferred = rng.random(nv) < b.preferred_category_share
        favourite = self.users.preferred_categories[user[view_session], rng.integers(0, 2, size=nv)]
        anywhere = rng.choice(len(self.products.categories), size=nv, p=self.products.category_weights)
        category = np.where(preferred, favourite, anywhere)
        view_product = self.products.sampler.sample(rng, category)
        view_action = rng.choice(len(VIEW_ACTIONS), size=nv, p=VIEW_ACTION_WEIGHTS).astype(np.int8)
        duration = np.clip(rng.lognormal(np.log(35), 0.8, size=nv), 5, 300).astype(np.int32)
        step_ms = (duration + rng.exponential(8.0, size=nv)) * SECOND
        before = np.cumsum(step_ms) - step_ms
        view_time = starts[view_session] + (before - before[first_view][view_session]).astype(np.int64)
        browse_end = view_time[first_view + n_views - 1] + duration[first_view + n_views - 1] * SECOND
        views = Rows.build(
            nv,
            time=view_time,
            kind=VIEW,
            serial=self._serials(nv),
            session=session[view_session],
            user=user[view_session],
            product=view_product,
            action=view_action,
            quantity=0,
            duration=duration,
        )

        # carts: the first viewed products go into the cart
        carting = rng.random(n) < b.cart_rate
        paying = carting & (rng.random(n) < b.checkout_rate)
        scenario = paying & (rng.random(n) < self._scenario_probability()) & (not self.warming_up)
        paying &= ~scenario
        normal_cart = carting & ~scenario
        n_adds = np.where(normal_cart, np.minimum(1 + rng.poisson(b.mean_extra_cart_adds, size=n), n_views), 0)
        line_session = np.repeat(np.arange(n), n_adds)
        nth = np.arange(len(line_session)) - np.repeat(np.cumsum(n_adds) - n_adds, n_adds)
        line_view = first_view[line_session] + nth
        line_product = view_product[line_view]
        # a product viewed twice goes into the cart once
        _, keep = np.unique(line_session.astype(np.int64) * len(self.products) + line_product, return_index=True)
        keep.sort()
        line_session, line_view, line_product = line_session[keep], line_view[keep], line_product[keep]
        line_qty = (1 + (rng.random(len(keep)) < 0.2) + (rng.random(len(keep)) < 0.05)).astype(np.int32)
        line_price = self.products.price[line_product]
        line_qty = np.minimum(line_qty, np.maximum(1, (self._normal_cap // line_price).astype(np.int32)))
        add_time = view_time[line_view] + (duration[line_view] * rng.uniform(0.3, 1.0, size=len(keep)) * SECOND).astype(
            np.int64
        )
        parts = [views]
        cart_parts, truth_rows = self._cart_events(
            n, session, user, line_session, line_product, line_qty, add_time, paying, normal_cart, browse_end
        )
        parts.extend(cart_parts)
        parts.append(truth_rows)
        for index in np.flatnonzero(scenario):
            parts.append(self._scenario(int(session[index]), int(user[index]), int(browse_end[index])))
        self.counters.carts += int(carting.sum())
        return Rows.concat(parts)

    def _session_countries(self, starts: np.ndarray) -> np.ndarray:
        """Countries of new sessions: each country's share, weighted by its local time of day."""
        hours = (starts // 3_600_000) % 24
        local = (hours[:, None] + self._utc_offsets[None, :]) % 24
        weights = self._diurnal[local] * self._country_share[None, :]
        cumulative = np.cumsum(weights, axis=1)
        draws = self.rng.random(len(starts)) * cumulative[:, -1]
        return (cumulative < draws[:, None]).sum(axis=1)

    def _cart_events(self, n, session, user, line_session, line_product, line_qty, add_time, paying, carting, browse_end):
        rng, b = self.rng, self.behaviour
        lines_per_session = np.bincount(line_session, minlength=n)
        last_line = np.cumsum(lines_per_session) - 1
        first_line = last_line - lines_per_session + 1
        last_add = np.full(n, np.iinfo(np.int64).min)
        np.maximum.at(last_add, line_session, add_time)

        # one remove (the newest line) in some carts of two or more lines
        removes = carting & (lines_per_session >= 2) & (rng.random(n) < b.remove_rate)
        removed_line = last_line[removes]
        remove_time = last_add[removes] + (rng.exponential(20.0, size=len(removed_line)) * SECOND).astype(np.int64) + 1
        in_cart = np.ones(len(line_session), dtype=bool)
        in_cart[removed_line] = False
        activity = last_add.copy()
        activity[removes] = remove_time

        # one update (the first line gets one more unit) in some carts
        updates = carting & (rng.random(n) < b.update_rate)
        updated_line = first_line[updates]
        new_qty = line_qty[updated_line] + 1
        fits = new_qty * self.products.price[line_product[updated_line]] <= self._normal_cap / 2
        updates[np.flatnonzero(updates)[~fits]] = False
        updated_line, new_qty = updated_line[fits], new_qty[fits]
        update_time = activity[updates] + (rng.exponential(15.0, size=len(updated_line)) * SECOND).astype(np.int64) + 1
        final_qty = line_qty.copy()
        final_qty[updated_line] = new_qty
        activity[updates] = update_time

        # ordinary carts stay under the high-value threshold: drop the newest lines over it
        value = np.where(in_cart, final_qty * self.products.price[line_product], 0.0)
        over = in_cart & (segment_cumsum(value, line_session) > self._normal_cap)
        in_cart &= ~over

        def cart_rows(action, time, owner, product, quantity):
            """Cart events of one action; ``owner`` indexes the sessions."""
            return Rows.build(
                len(time), time=time, kind=CART, serial=self._serials(len(time)), session=session[owner],
                user=user[owner], product=product, action=action, quantity=quantity,
            )

        adds = cart_rows(ADD, add_time, line_session, line_product, line_qty).take(~over)
        remove_rows = cart_rows(
            REMOVE, remove_time, np.flatnonzero(removes), line_product[removed_line], line_qty[removed_line]
        )
        update_rows = cart_rows(
            UPDATE, update_time, np.flatnonzero(updates), line_product[updated_line], new_qty
        ).take(~over[updated_line])

        # paying carts: checkout, then the transaction with the lines still in stock
        checkout_time = activity + (rng.exponential(30.0, size=n) * SECOND).astype(np.int64) + 1
        pay_time = checkout_time + rng.integers(1 * SECOND, 5 * SECOND, size=n)
        bought = self._reserve_stock(line_session, line_product, final_qty, in_cart & paying[line_session], pay_time)
        line_value = final_qty * self.products.price[line_product]
        cart_lines = np.bincount(line_session, weights=in_cart, minlength=n)
        cart_units = np.bincount(line_session, weights=final_qty * in_cart, minlength=n).astype(np.int64)
        cart_value = np.round(np.bincount(line_session, weights=line_value * in_cart, minlength=n), 2)
        bought_lines = np.bincount(line_session, weights=bought, minlength=n).astype(np.int64)
        bought_value = np.round(np.bincount(line_session, weights=line_value * bought, minlength=n), 2)
        has_cart = carting & (cart_lines > 0)
        checkout = has_cart & paying
        purchase = checkout & (bought_lines > 0)
        abandoned = has_cart & ~purchase
        first_add = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(first_add, line_session, add_time)

        rows = [adds, remove_rows, update_rows]
        rows.append(
            Rows.build(
                int(checkout.sum()),
                time=checkout_time[checkout],
                kind=CART,
                serial=self._serials(int(checkout.sum())),
                session=session[checkout],
                user=user[checkout],
                action=CHECKOUT,
                quantity=cart_units[checkout],
                extra=cart_value[checkout].tolist(),
            )
        )
        buyers = np.flatnonzero(purchase)
        payment = self._payment_methods(user[buyers])
        bought_index = np.flatnonzero(bought)  # grouped by session, like the lines
        per_buyer = np.split(bought_index, np.cumsum(bought_lines[buyers])[:-1]) if len(buyers) else []
        tx = Rows.build(
            len(buyers),
            time=pay_time[buyers],
            kind=TX,
            serial=self._serials(len(buyers)),
            session=session[buyers],
            user=user[buyers],
            duration=payment,
        )
        products, quantities = line_product.tolist(), final_qty.tolist()
        tx.extra[:] = [
            Purchase([(products[i], quantities[i]) for i in lines.tolist()], first, value)
            for lines, first, value in zip(per_buyer, first_add[buyers].tolist(), bought_value[buyers].tolist())
        ]
        rows.append(tx)
        self.counters.purchases += len(buyers)
        self.counters.ordinary_purchases += len(buyers)
        self.counters.ordinary_checkouts += int(checkout.sum())

        leavers = np.flatnonzero(abandoned)
        timeout = self.thresholds.cart_abandonment_minutes * 60 * SECOND
        truths = [
            Truth(
                "cart_abandoned", u, sess, first, amounts=[value],
                detail="items out of stock at checkout" if paid else "cart left unpaid",
            )
            for u, sess, first, value, paid in zip(
                user[leavers].tolist(), session[leavers].tolist(), first_add[leavers].tolist(),
                cart_value[leavers].tolist(), paying[leavers].tolist(),
            )
        ]
        truth_times = np.where(paying[leavers], checkout_time[leavers], activity[leavers]) + timeout
        self.counters.abandoned += len(leavers)
        return rows, self._truth_rows(truths, truth_times.tolist())

    def _reserve_stock(self, line_session, line_product, quantity, wanted, at) -> np.ndarray:
        """Which wanted lines are bought: in payment-time order, while the product has stock."""
        bought = np.zeros(len(line_session), dtype=bool)
        index = np.flatnonzero(wanted)
        if not len(index):
            return bought
        product = line_product[index]
        order = np.lexsort((at[line_session[index]], product))
        index, product = index[order], product[order]
        qty = quantity[index].astype(np.int64)
        ok = segment_cumsum(qty, product) <= self.stock[product]
        bought[index[ok]] = True
        self.counters.out_of_stock_lines += int((~ok).sum())
        np.subtract.at(self.stock, product[ok], qty[ok])
        np.add.at(self.sold_since_reorder, product[ok], qty[ok])
        return bought

    def _cancel_purchases(self, rows: Rows) -> None:
        """The units reserved for the purchases among ``rows``, which will not be sent, are back in stock."""
        for purchase in rows.extra[rows.kind == TX].tolist():
            for product, quantity in purchase.lines:
                self.stock[product] += quantity

    def _payment_methods(self, user: np.ndarray) -> np.ndarray:
        """Most users pay with their usual method; some pick another at random."""
        usual = self.users.preferred_payment[user]
        other = self.rng.integers(0, len(self.catalog.settings.payment_methods), size=len(user))
        return np.where(self.rng.random(len(user)) < 0.8, usual, other).astype(np.int32)

    # ---- anomaly scenarios ----------------------------------------------------------------

    def _take(self, pool: str, quantity: int, reserved: list[tuple[int, int]]) -> int:
        """A product of ``pool`` (by popularity) with ``quantity`` units in stock, reserved and
        noted in ``reserved``; the best-stocked product of all when the pool has none.
        Raises SoldOut when no product has that many."""
        members, cumulative = self._pools[pool]
        candidates = members[:0]
        if len(members):
            draws = np.searchsorted(cumulative, self.rng.random(16) * cumulative[-1])
            candidates = members[np.minimum(draws, len(members) - 1)]
        product = pick_in_stock(candidates, self.stock, quantity)
        if product < 0:
            raise SoldOut(f"no product has {quantity} units")
        self._move(product, quantity, reserved)
        return product

    def _give_back(self, product: int, quantity: int, reserved: list[tuple[int, int]]) -> None:
        self._move(product, -quantity, reserved)

    def _move(self, product: int, quantity: int, reserved: list[tuple[int, int]]) -> None:
        """Reserve ``quantity`` units (negative: return them), noted so a scenario can undo it."""
        self.stock[product] -= quantity
        self.sold_since_reorder[product] += quantity
        reserved.append((product, quantity))

    def _scenario(self, session: int, user: int, start: int) -> Rows:
        """An anomaly scenario's events; none when its units are sold out everywhere."""
        kind = self.behaviour.anomaly_kinds[int(self.rng.integers(len(self.behaviour.anomaly_kinds)))]
        reserved: list[tuple[int, int]] = []
        try:
            purchases, detail = self._scenario_purchases(kind, reserved)
        except SoldOut:
            for product, quantity in reserved:
                self._move(product, -quantity, [])
            self.counters.sold_out_scenarios += 1
            return Rows.empty()
        self.counters.anomalies[kind] = self.counters.anomalies.get(kind, 0) + 1
        return self._scenario_rows(kind, purchases, detail, session, user, start)

    def _scenario_purchases(self, kind: str, reserved: list[tuple[int, int]]) -> tuple[list[list[tuple[int, int]]], str]:
        """The transactions' lines (product, quantity) of a scenario, their stock reserved."""
        rng, t = self.rng, self.thresholds
        price = self.products.price
        if kind == "high_value":
            target = t.high_value_transaction * rng.uniform(1.05, 2.5)
            lines, total = [], 0.0
            while total <= t.high_value_transaction:
                product = self._take("premium", t.unusual_quantity, reserved)
                quantity = int(min(t.unusual_quantity, max(1, (target - total) // price[product])))
                self._give_back(product, t.unusual_quantity - quantity, reserved)
                lines.append((product, quantity))
                total += quantity * price[product]
            return [lines], f"one transaction over ${t.high_value_transaction:,.0f}"
        if kind == "unusual_quantity":
            quantity = int(rng.integers(t.unusual_quantity + 1, 4 * t.unusual_quantity + 1))
            return [[(self._take("cheap", quantity, reserved), quantity)]], (
                f"{quantity} units of one product (more than {t.unusual_quantity})"
            )
        if kind == "rapid_fire_count":
            count = int(t.rapid_transactions_per_minute + rng.integers(0, 4))
            purchases = []
            for _ in range(count):
                quantity = int(rng.integers(1, 3))
                purchases.append([(self._take("cheap", quantity, reserved), quantity)])
            return purchases, f"{count} transactions within a minute"
        # rapid_fire_amount: three transactions, each under the high-value threshold
        purchases, low, high = [], t.rapid_spend_5min / 3 * 1.02, t.high_value_transaction * 0.97
        for _ in range(3):
            for attempt in range(FITTING_ATTEMPTS):  # a product whose whole units land inside (low, high)
                product = self._take("mid", t.unusual_quantity, reserved)
                quantity = int(np.clip(round(rng.uniform(low, high) / price[product]), 1, t.unusual_quantity))
                self._give_back(product, t.unusual_quantity - quantity, reserved)
                if low < quantity * price[product] < high or attempt == FITTING_ATTEMPTS - 1:
                    break  # the last try is kept, fitting or not: its units stay reserved
                self._give_back(product, quantity, reserved)
            purchases.append([(product, quantity)])
        return purchases, f"more than ${t.rapid_spend_5min:,.0f} within five minutes"

    def _scenario_rows(
        self, kind: str, purchases: list[list[tuple[int, int]]], detail: str, session: int, user: int, start: int
    ) -> Rows:
        rng = self.rng
        price = self.products.price
        with_cart = kind in ("high_value", "unusual_quantity")
        span = 50 * SECOND if kind == "rapid_fire_count" else 240 * SECOND
        if with_cart:
            times = [start + int(rng.integers(20, 120)) * SECOND]
        else:
            times = sorted(int(x) for x in start + rng.integers(SECOND, span, size=len(purchases)))
        payment = int(self._payment_methods(np.array([user]))[0])
        truth = Truth(kind, user, session, times[0], detail=detail)
        rows = []
        for lines, at in zip(purchases, times):
            value = float(round(sum(q * price[p] for p, q in lines), 2))
            purchase = Purchase(lines, start if with_cart else None, value, scenario=truth)
            serial = self._serials(1)
            truth.transactions.append(int(serial[0]))
            truth.transaction_times.append(at)
            truth.amounts.append(value)
            tx = Rows.build(1, time=at, kind=TX, serial=serial, session=session, user=user, duration=payment)
            tx.extra[0] = purchase
            rows.append(tx)
        if with_cart:
            (lines,) = purchases
            add_times = start + np.sort(rng.integers(SECOND, times[0] - start - 2 * SECOND, size=len(lines)))
            for (product, quantity), at in zip(lines, add_times):
                rows.append(
                    Rows.build(
                        1, time=at, kind=CART, serial=self._serials(1), session=session, user=user,
                        product=product, action=ADD, quantity=quantity,
                    )
                )
            rows.append(
                Rows.build(
                    1, time=times[0] - SECOND, kind=CART, serial=self._serials(1), session=session, user=user,
                    action=CHECKOUT, quantity=sum(q for _, q in lines), extra=truth.amounts[0],
                )
            )
        self.counters.purchases += len(purchases)
        rows.append(self._truth_rows([truth], [times[-1]]))
        return Rows.concat(rows)

    def _truth_rows(self, truths: list[Truth], times: list[int]) -> Rows:
        rows = Rows.build(len(truths), time=np.array(times, dtype=np.int64), kind=TRUTH, serial=self._serials(len(truths)))
        rows.session[:] = [t.session for t in truths]
        rows.user[:] = [t.user for t in truths]
        rows.extra[:] = truths
        return rows

    # ---- stock ---------------------------------------------------------------------------

    def _schedule_restocks(self, now_ms: int) -> Rows:
        """Reorder products that fell under the reorder point; the stock arrives after a lead time.

        The order covers twice what sold since the last reorder, so fast sellers get larger
        deliveries instead of being out of stock most of the time.
        """
        b = self.behaviour
        due = np.flatnonzero((self.stock < b.restock_below) & ~self.restock_pending)
        if not len(due):
            return Rows.empty()
        self.restock_pending[due] = True
        low, high = b.restock_lead_minutes
        arrive = now_ms + self.rng.integers(low * 60 * SECOND, high * 60 * SECOND + 1, size=len(due))
        target = np.maximum(self.products.initial_stock[due], 2 * self.sold_since_reorder[due])
        target = np.maximum(target, 2 * b.restock_below + 30)
        quantity = np.maximum(target - self.stock[due], 1)
        self.sold_since_reorder[due] = 0
        return Rows.build(len(due), time=arrive, kind=RESTOCK, serial=self._serials(len(due)), product=due, quantity=quantity)

    def _random_restocks(self, start_ms: int, end_ms: int) -> Rows:
        expected = self.behaviour.random_restocks_per_hour * (end_ms - start_ms) / 3_600_000
        count = int(self.rng.poisson(expected)) if expected > 0 else 0
        if not count:
            return Rows.empty()
        product = self.rng.integers(0, len(self.products), size=count)
        return Rows.build(
            count,
            time=np.sort(self.rng.integers(start_ms, end_ms, size=count)),
            kind=RESTOCK,
            serial=self._serials(count),
            product=product,
            quantity=self.rng.integers(20, 201, size=count),
        )
