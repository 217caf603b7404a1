"""Simulator rows → JSON messages that follow the event contracts (``globalmart.events``)."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from globalmart.events import SCHEMA_VERSION
from globalmart.generator.catalog import ShopCatalog, Users
from globalmart.generator.simulator import (
    CART,
    CART_ACTIONS,
    CHECKOUT,
    KIND_TOPICS,
    RESTOCK,
    TRUTH,
    TX,
    VIEW,
    VIEW_ACTIONS,
    Purchase,
    Rows,
    Truth,
)

SEARCH_TERMS = ["best", "cheap", "new", "sale", "top rated", "gift", "premium", "deal"]


# (topic settings key, partition key, JSON value): the key is the user (per-user ordering),
# or the product for inventory. Plain tuples: a NamedTuple costs a microsecond per event.
Message = tuple[str, str, bytes]


def utc_strings(times_ms: np.ndarray) -> list[str]:
    """Epoch milliseconds → ``2026-11-22T10:00:00.123Z``, vectorised."""
    return np.datetime_as_string(times_ms.astype("datetime64[ms]"), unit="ms", timezone="UTC").tolist()


def _text(values) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _json_lines(*pieces) -> list[bytes]:
    """Concatenate constant and per-row pieces into one JSON document per row, in Arrow's C++.

    Every piece must already be JSON (numbers, or text known to need no escaping: the
    renderer checks its names once). A tenth of the cost of building dicts for orjson.
    """
    return pc.cast(pc.binary_join_element_wise(*pieces, ""), pa.binary()).to_pylist()


def _json_safe(names) -> list[str]:
    names = list(names)
    bad = [n for n in names if '"' in n or "\\" in n or any(ord(c) < 32 for c in n)]
    if bad:
        raise ValueError(f"names must not need JSON escaping: {bad[:3]}")
    return names


class Renderer:
    def __init__(self, catalog: ShopCatalog, tag: str):
        products, users = catalog.products, catalog.users
        self.tag = tag
        self.product_ids = products.ids
        names = _json_safe(c.full_name for c in products.categories)
        self.product_category = [names[c] for c in products.category.tolist()]
        self.price = products.price.tolist()
        self.user_country = users.country
        self.countries = _json_safe(users.countries)
        self.payments = _json_safe(catalog.settings.payment_methods)
        self.search_terms = _json_safe(f"{term} {c.name.lower()}" for c in products.categories for term in SEARCH_TERMS)
        # Arrow copies for vectorised rendering
        self.a_product_ids = pa.array(self.product_ids)
        self.a_product_category = pa.array(self.product_category)
        self.a_price = _text(products.price)
        self.a_countries = pa.array(self.countries)
        self.a_view_actions = pa.array(VIEW_ACTIONS)
        self.a_cart_actions = pa.array(CART_ACTIONS)
        self.a_search_terms = pa.array(self.search_terms)

    def render(self, rows: Rows) -> list[Message]:
        messages: list[Message] = []
        for kind, render in (
            (VIEW, self._views),
            (CART, self._carts),
            (TX, self._transactions),
            (RESTOCK, self._restocks),
            (TRUTH, self._truths),
        ):
            index = np.flatnonzero(rows.kind == kind)
            if len(index):
                messages.extend(render(rows.take(index), KIND_TOPICS[kind]))
        return messages

    def _user_pieces(self, rows: Rows):
        """Columns every shopper event starts with, and the partition keys (user ids)."""
        user_ids = pc.binary_join_element_wise("U", pc.utf8_lpad(_text(rows.user + 1), 8, "0"), "")
        pieces = (
            '","event_time":"', pa.array(utc_strings(rows.time)),
            '","user_id":"', user_ids,
            f'","session_id":"S-{self.tag}-', _text(rows.session),
            '","country":"', pc.take(self.a_countries, pa.array(self.user_country[rows.user])),
        )
        return pieces, user_ids.to_pylist()

    def _views(self, rows: Rows, topic: str) -> list[Message]:
        common, keys = self._user_pieces(rows)
        product = pa.array(rows.product)
        search = rows.action == VIEW_ACTIONS.index("search")
        query = pc.take(self.a_search_terms, pa.array((rows.serial + rows.product) % len(self.search_terms)))
        query_piece = pc.if_else(
            pa.array(search), pc.binary_join_element_wise(',"search_query":"', query, '"', ""), ""
        )
        values = _json_lines(
            f'{{"schema_version":{SCHEMA_VERSION},"event_id":"E-{self.tag}-', _text(rows.serial),
            *common,
            '","product_id":"', pc.take(self.a_product_ids, product),
            '","category":"', pc.take(self.a_product_category, product),
            '","action":"', pc.take(self.a_view_actions, pa.array(rows.action)),
            '","duration_seconds":', _text(rows.duration),
            query_piece, "}",
        )
        return list(zip([topic] * len(values), keys, values))

    def _carts(self, rows: Rows, topic: str) -> list[Message]:
        common, keys = self._user_pieces(rows)
        checkout = rows.action == CHECKOUT
        product = pa.array(np.where(checkout, 0, rows.product))
        line = pc.binary_join_element_wise(
            ',"product_id":"', pc.take(self.a_product_ids, product),
            '","category":"', pc.take(self.a_product_category, product),
            '","unit_price":', pc.take(self.a_price, product), "",
        )
        value = _text([v if v is not None else 0.0 for v in rows.extra.tolist()])
        cart = pc.binary_join_element_wise(',"cart_value":', value, "")
        values = _json_lines(
            f'{{"schema_version":{SCHEMA_VERSION},"event_id":"E-{self.tag}-', _text(rows.serial),
            *common,
            '","action":"', pc.take(self.a_cart_actions, pa.array(rows.action)),
            '","quantity":', _text(rows.quantity),
            pc.if_else(pa.array(checkout), cart, line), "}",
        )
        return list(zip([topic] * len(values), keys, values))

    def _transactions(self, rows: Rows, topic: str) -> list[Message]:
        times, serials, sessions, users = (
            utc_strings(rows.time), rows.serial.tolist(), rows.session.tolist(), rows.user.tolist()
        )
        countries = [self.countries[c] for c in self.user_country[rows.user].tolist()]
        tag, pid, pcat, price, payments = self.tag, self.product_ids, self.product_category, self.price, self.payments
        out = []
        purchase: Purchase
        for t, serial, session, user, country, payment, purchase in zip(
            times, serials, sessions, users, countries, rows.duration.tolist(), rows.extra.tolist()
        ):
            user_id = Users.user_id(user)
            items = [
                {"product_id": pid[p], "category": pcat[p], "quantity": q, "unit_price": price[p]}
                for p, q in purchase.lines
            ]
            event = {
                "schema_version": SCHEMA_VERSION,
                "transaction_id": f"T-{tag}-{serial}",
                "event_time": t,
                "user_id": user_id,
                "session_id": f"S-{tag}-{session}",
                "country": country,
                "payment_method": payments[payment],
                "items": items,
                "total_amount": purchase.value,
            }
            out.append((topic, user_id, orjson.dumps(event)))
        return out

    def _restocks(self, rows: Rows, topic: str) -> list[Message]:
        out = []
        for t, serial, product, quantity in zip(
            utc_strings(rows.time), rows.serial.tolist(), rows.product.tolist(), rows.quantity.tolist()
        ):
            event = {
                "schema_version": SCHEMA_VERSION,
                "event_id": f"E-{self.tag}-{serial}",
                "event_time": t,
                "product_id": self.product_ids[product],
                "action": "restock",
                "quantity": quantity,
            }
            out.append((topic, self.product_ids[product], orjson.dumps(event)))
        return out

    def _truths(self, rows: Rows, topic: str) -> list[Message]:
        out = []
        truth: Truth
        firsts = utc_strings(np.array([truth.first_time for truth in rows.extra], dtype=np.int64))
        for t, first, serial, truth in zip(utc_strings(rows.time), firsts, rows.serial.tolist(), rows.extra.tolist()):
            user_id = Users.user_id(truth.user)
            event = {
                "schema_version": SCHEMA_VERSION,
                "record_id": f"G-{self.tag}-{serial}",
                "event_time": t,
                "kind": truth.kind,
                "user_id": user_id,
                "session_id": f"S-{self.tag}-{truth.session}",
                "transaction_ids": [f"T-{self.tag}-{s}" for s in truth.transactions],
                "first_event_time": first,
                "amount": round(sum(truth.amounts), 2) if truth.amounts else None,
                "detail": truth.detail,
            }
            out.append((topic, user_id, orjson.dumps(event)))
        return out
