"""Users and products of the simulated shop, deterministic for a seed.

Everything is columnar numpy (10M users take about 2 s and 150 MB). Faker is called only to
fill small name pools (per country's locale, and product brands); names are composed from
the pools by index, never by a Faker call per user or per event.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from faker import Faker

from globalmart.generator.categories import CATEGORIES, CategorySpec
from globalmart.settings import Catalog as CatalogSettings
from globalmart.settings import GeneratorSettings

LOCALES = {"USA": "en_US", "UK": "en_GB", "Canada": "en_CA", "Germany": "de_DE", "France": "fr_FR"}
NAME_POOL = 400  # first and last names per country: 160,000 combinations each
BRAND_POOL = 1500
MODEL_WORDS = [
    "Pro", "Max", "Lite", "Air", "Classic", "Nova", "Prime", "Eco", "Ultra", "Plus", "Mini", "Edge", "Core",
    "Flex", "Sport", "Studio", "Essential", "Signature", "Select", "Active", "Vista", "Zen", "Pulse", "Terra",
]
REGISTRATION_EPOCH = date(2026, 1, 1)  # registration dates lie up to 8 years before it


class SegmentedSampler:
    """Draw items by weight, restricted to a segment given per draw (a category, a country).

    Items are ordered by segment and each segment's cumulative weights are normalised into
    (segment, segment + 1]; drawing ``segment + u`` with ``u`` uniform in [0, 1) and a binary
    search then lands inside that segment, weighted: one vectorised ``searchsorted`` for any
    mix of segments. Every segment must hold at least one item.
    """

    def __init__(self, segment_of_item: np.ndarray, weights: np.ndarray, segments: int):
        self.order = np.argsort(segment_of_item, kind="stable").astype(np.int32)
        sorted_segments = segment_of_item[self.order]
        counts = np.bincount(sorted_segments, minlength=segments)
        if (counts == 0).any():
            raise ValueError(f"segments without items: {np.flatnonzero(counts == 0).tolist()}")
        cumulative = np.cumsum(weights[self.order], dtype=np.float64)
        ends = np.cumsum(counts) - 1
        totals = np.diff(np.concatenate([[0.0], cumulative[ends]]))
        before = cumulative[ends] - totals
        within = (cumulative - before[sorted_segments]) / totals[sorted_segments]
        within[ends] = 1.0  # exact segment ends, whatever the rounding
        self.keys = sorted_segments + within

    def sample(self, rng: np.random.Generator, segments: np.ndarray) -> np.ndarray:
        draws = segments + rng.random(len(segments))
        return self.order[np.searchsorted(self.keys, draws, side="left")]


@dataclass
class Products:
    categories: list[CategorySpec]
    category: np.ndarray  # int16, index into categories
    price: np.ndarray  # float64, dollars with cents
    initial_stock: np.ndarray  # int32
    rating: np.ndarray  # float64, 1.0..5.0 in tenths
    popularity: np.ndarray  # float64 Zipf weight
    brand: np.ndarray  # int16 into brands
    model_word: np.ndarray  # int8 into MODEL_WORDS
    brands: list[str]
    ids: list[str]  # "P000001"
    sampler: SegmentedSampler  # by category, weighted by popularity
    category_weights: np.ndarray  # share of demand per category

    def __len__(self) -> int:
        return len(self.price)

    def names(self) -> pa.Array:
        brands = pc.take(pa.array(self.brands), pa.array(self.brand))
        words = pc.take(pa.array(MODEL_WORDS), pa.array(self.model_word))
        nouns = pc.take(pa.array([c.name for c in self.categories]), pa.array(self.category))
        return pc.binary_join_element_wise(brands, words, nouns, " ")

    def to_arrow(self) -> pa.Table:
        return pa.table(
            {
                "product_id": pa.array(self.ids),
                "name": self.names(),
                "category": pc.take(pa.array([c.full_name for c in self.categories]), pa.array(self.category)),
                "department": pc.take(pa.array([c.department for c in self.categories]), pa.array(self.category)),
                "price": pa.array(self.price),
                "initial_stock": pa.array(self.initial_stock),
                "rating": pa.array(self.rating),
            }
        )


@dataclass
class Users:
    countries: list[str]
    country: np.ndarray  # int8 into countries
    preferred_categories: np.ndarray  # int16 (n, 2)
    preferred_payment: np.ndarray  # int8 into payment methods
    age: np.ndarray  # int8
    registered: np.ndarray  # datetime64[D]
    first_name: np.ndarray  # int16 into first_names[country]
    last_name: np.ndarray  # int16 into last_names[country]
    first_names: list[list[str]]
    last_names: list[list[str]]
    sampler: SegmentedSampler  # by country, weighted by shopping activity

    def __len__(self) -> int:
        return len(self.country)

    @staticmethod
    def user_id(index: int) -> str:
        """User ids are numbered from U00000001 in catalog order."""
        return f"U{index + 1:08d}"

    def to_arrow(self) -> pa.Table:
        size = len(self)
        pool = NAME_POOL
        flat_first = pa.array([name for names in self.first_names for name in names])
        flat_last = pa.array([name for names in self.last_names for name in names])
        first = pc.take(flat_first, pa.array(self.country.astype(np.int32) * pool + self.first_name))
        last = pc.take(flat_last, pa.array(self.country.astype(np.int32) * pool + self.last_name))
        numbers = pc.cast(pa.array(np.arange(1, size + 1)), pa.string())
        ids = pc.binary_join_element_wise("U", pc.utf8_lpad(numbers, 8, "0"), "")
        local = pc.utf8_lower(pc.binary_join_element_wise(first, last, "."))
        local = pc.replace_substring_regex(local, r"[^a-z.]", "")
        emails = pc.binary_join_element_wise(local, numbers, "")
        return pa.table(
            {
                "user_id": ids,
                "name": pc.binary_join_element_wise(first, last, " "),
                "email": pc.binary_join_element_wise(emails, "example.com", "@"),
                "country": pc.take(pa.array(self.countries), pa.array(self.country)),
                "age": pa.array(self.age),
                "registration_date": pa.array(self.registered),
                "preferred_category_1": pa.array(self.preferred_categories[:, 0]),
                "preferred_category_2": pa.array(self.preferred_categories[:, 1]),
                "preferred_payment": pa.array(self.preferred_payment),
            }
        )


@dataclass
class ShopCatalog:
    settings: CatalogSettings
    users: Users
    products: Products

    @property
    def fingerprint(self) -> str:
        """Identifies the catalog: the same sizes and seed give the same catalog."""
        s = self.settings
        key = f"v1|{s.seed}|{s.users}|{s.products}|{s.categories}|{','.join(s.countries)}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def _faker(locale: str, seed: int) -> Faker:
    fake = Faker(locale)
    fake.seed_instance(seed)
    return fake


def build_products(settings: CatalogSettings, behaviour: GeneratorSettings, rng: np.random.Generator) -> Products:
    n, n_cat = settings.products, settings.categories
    categories = CATEGORIES[:n_cat]
    # uneven category sizes; every category gets at least one product
    category_share = rng.dirichlet(np.full(n_cat, 2.0))
    category = np.concatenate(
        [np.arange(min(n, n_cat)), rng.choice(n_cat, size=max(0, n - n_cat), p=category_share)]
    ).astype(np.int16)
    low = np.array([c.min_price for c in categories])[category]
    high = np.array([c.max_price for c in categories])[category]
    raw_price = np.exp(rng.uniform(np.log(low), np.log(high)))
    price = np.maximum(np.floor(raw_price) + 0.99, low)  # shop prices end in .99
    price = np.round(np.minimum(price, high), 2)
    initial_stock = np.clip(rng.negative_binomial(3, 3 / (3 + 150), size=n), 0, 1000).astype(np.int32)
    rating = np.round(1.0 + 4.0 * rng.beta(5, 1.8, size=n), 1)
    rank = rng.permutation(n)
    popularity = 1.0 / np.power(rank + 1.0, behaviour.product_popularity_zipf)
    category_weights = np.bincount(category, weights=popularity, minlength=n_cat)
    brands_fake = _faker("en_US", settings.seed)
    brands = sorted({brands_fake.last_name() for _ in range(BRAND_POOL)})
    return Products(
        categories=categories,
        category=category,
        price=price,
        initial_stock=initial_stock,
        rating=rating,
        popularity=popularity,
        brand=rng.integers(0, len(brands), size=n).astype(np.int16),
        model_word=rng.integers(0, len(MODEL_WORDS), size=n).astype(np.int8),
        brands=brands,
        ids=[f"P{i + 1:06d}" for i in range(n)],
        sampler=SegmentedSampler(category, popularity, n_cat),
        category_weights=category_weights / category_weights.sum(),
    )


def build_users(settings: CatalogSettings, products: Products, rng: np.random.Generator) -> Users:
    n, n_countries = settings.users, len(settings.countries)
    weights = np.asarray(settings.country_weights, dtype=np.float64)
    country = np.concatenate(
        [np.arange(min(n, n_countries)), rng.choice(n_countries, size=max(0, n - n_countries), p=weights / weights.sum())]
    ).astype(np.int8)
    n_cat = len(products.categories)
    preferred = rng.choice(n_cat, size=(n, 2), p=products.category_weights).astype(np.int16)
    pay = np.asarray(settings.payment_weights, dtype=np.float64)
    first_names, last_names = [], []
    for index, name in enumerate(settings.countries):
        fake = _faker(LOCALES.get(name, "en_US"), settings.seed + index)
        first_names.append([fake.first_name() for _ in range(NAME_POOL)])
        last_names.append([fake.last_name() for _ in range(NAME_POOL)])
    # a few users shop far more than most: lognormal activity
    activity = rng.lognormal(0.0, 1.0, size=n)
    return Users(
        countries=list(settings.countries),
        country=country,
        preferred_categories=preferred,
        preferred_payment=rng.choice(len(pay), size=n, p=pay / pay.sum()).astype(np.int8),
        age=np.clip(rng.normal(38, 13, size=n), 18, 80).astype(np.int8),
        registered=np.datetime64(REGISTRATION_EPOCH) - rng.integers(0, 8 * 365, size=n).astype("timedelta64[D]"),
        first_name=rng.integers(0, NAME_POOL, size=n).astype(np.int16),
        last_name=rng.integers(0, NAME_POOL, size=n).astype(np.int16),
        first_names=first_names,
        last_names=last_names,
        sampler=SegmentedSampler(country, activity, n_countries),
    )


def build_catalog(settings: CatalogSettings, behaviour: GeneratorSettings | None = None) -> ShopCatalog:
    rng = np.random.default_rng(settings.seed)
    products = build_products(settings, behaviour or GeneratorSettings(), rng)
    users = build_users(settings, products, rng)
    return ShopCatalog(settings=settings, users=users, products=products)


@lru_cache(maxsize=2)
def _cached(settings_json: str, behaviour_json: str) -> ShopCatalog:
    return build_catalog(CatalogSettings.model_validate_json(settings_json), GeneratorSettings.model_validate_json(behaviour_json))


def get_catalog(settings: CatalogSettings, behaviour: GeneratorSettings) -> ShopCatalog:
    """The catalog for these settings, built once per process."""
    return _cached(settings.model_dump_json(), behaviour.model_dump_json())


def _catalog_indexes(ids: pa.Array, prefix: str, digits: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions in catalog order of ids numbered like ``U00000001`` (``prefix`` + ``digits``
    digits, from 1), and a mask of the ids that are such a number within the catalog's size."""
    text = pc.cast(ids, pa.string())
    valid = pc.fill_null(pc.match_substring_regex(text, f"^{prefix}[0-9]{{{digits}}}$"), False)
    digits_only = pc.if_else(valid, pc.utf8_slice_codeunits(text, len(prefix)), "0")
    numbers = pc.cast(digits_only, pa.int64()).to_numpy(zero_copy_only=False)
    known = valid.to_numpy(zero_copy_only=False) & (numbers >= 1) & (numbers <= size)
    return np.where(known, numbers - 1, 0), known


def customer_attributes(catalog: ShopCatalog, user_ids: pa.Array) -> pa.Table:
    """What the shop's registry knows of each user id (in order): name, registration_date,
    home_country; nulls for an id the catalog does not hold (a copy's suffixed id, a test's)."""
    users = catalog.users
    index, known = _catalog_indexes(user_ids, "U", 8, len(users))
    missing = pa.array(~known)
    country = users.country[index].astype(np.int32)
    first = np.asarray([name for names in users.first_names for name in names], dtype=object)
    last = np.asarray([name for names in users.last_names for name in names], dtype=object)
    names = first[country * NAME_POOL + users.first_name[index]] + " " + last[country * NAME_POOL + users.last_name[index]]
    return pa.table({
        "name": pc.if_else(missing, pa.scalar(None, pa.string()), pa.array(names, pa.string())),
        "registration_date": pc.if_else(missing, pa.scalar(None, pa.date32()),
                                        pa.array(users.registered[index], pa.date32())),
        "home_country": pc.if_else(missing, pa.scalar(None, pa.string()),
                                   pc.take(pa.array(users.countries), pa.array(country))),
    })


def product_brands(catalog: ShopCatalog, product_ids: pa.Array) -> pa.Array:
    """The brand of each product id (in order); null for an id the catalog does not hold."""
    products = catalog.products
    index, known = _catalog_indexes(product_ids, "P", 6, len(products))
    brands = pc.take(pa.array(products.brands), pa.array(products.brand[index].astype(np.int32)))
    return pc.if_else(pa.array(~known), pa.scalar(None, pa.string()), brands)
