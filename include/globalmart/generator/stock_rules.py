"""Which stock a generator run may sell from, and which stock it leaves behind (pure rules).

Stock is real once the inventory tracker counts it: the catalog's initial stock, minus every
unit sold, plus every unit restocked, as published on the ``transactions`` and ``inventory``
topics. A run must never believe it has more than that, or it sells units that do not exist
and the tracker's stock goes below zero. Two sources bound the real stock from above:

- the generator's own ledger, the stock its last run left behind (what it published): right
  when the tracker is behind, since the tracker has not counted those sales yet;
- the tracker's ``inventory_stock``: right when someone else sold meanwhile, or when the
  tracker counted more than the generator knows of.

The opening stock is the lower of the two per product (the catalog's initial stock when
neither knows the product), never below zero. Restocks published by someone else show only in
the tracker, so the lower bound ignores them: the generator under-counts such a product until
its own reorder refills it, which sells less than exists but never more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
import orjson

MISSING = np.iinfo(np.int64).max  # a product the source does not know


def opening_stock(initial: np.ndarray, own: np.ndarray, tracker: np.ndarray) -> np.ndarray:
    """Per product: min(own ledger, tracker), the catalog's ``initial`` stock when both are
    MISSING, and 0 for a negative count (a tracker that already oversold)."""
    known = np.minimum(own.astype(np.int64), tracker.astype(np.int64))
    return np.maximum(np.where(known == MISSING, initial.astype(np.int64), known), 0)


def opening_sources(own: np.ndarray, tracker: np.ndarray) -> dict[str, int]:
    """How many products each source decided (a tie counts for the ledger): for the run report."""
    has_own, has_tracker = own != MISSING, tracker != MISSING
    own_wins = has_own & (~has_tracker | (own <= tracker))
    tracker_wins = has_tracker & ~own_wins
    return {
        "ledger": int(own_wins.sum()),
        "tracker": int(tracker_wins.sum()),
        "catalog": int((~has_own & ~has_tracker).sum()),
    }


def restocked_units(messages: Iterable[tuple[str, str, bytes]]) -> Counter:
    """Units per product id in the ``inventory`` messages among ``messages`` (key: the product)."""
    units: Counter = Counter()
    for topic, product_id, value in messages:
        if topic == "inventory":
            units[product_id] += orjson.loads(value)["quantity"]
    return units


def published_stock(stock: np.ndarray, unpublished_restocks: Mapping[str, int], index: Mapping[str, int]) -> np.ndarray:
    """The simulator's stock without the restocks it applied but did not publish (still queued,
    or dead-lettered): the tracker never counts those. Not below zero: units sold from an
    unpublished restock are already beyond repair."""
    published = stock.astype(np.int64).copy()
    for product_id, units in unpublished_restocks.items():
        published[index[product_id]] -= units
    return np.maximum(published, 0)
