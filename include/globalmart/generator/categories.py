"""The 100 named product categories: 10 departments (from the requirement notes) × 10 each.

Each category has a price range in dollars; product prices are drawn log-uniformly inside it.
A category's name is ``"<Department> > <Category>"``.
"""

from __future__ import annotations

from typing import NamedTuple


class CategorySpec(NamedTuple):
    department: str
    name: str
    min_price: float
    max_price: float

    @property
    def full_name(self) -> str:
        return f"{self.department} > {self.name}"


_DEPARTMENTS: dict[str, list[tuple[str, float, float]]] = {
    "Electronics": [
        ("Laptops", 400, 2000), ("Smartphones", 150, 1500), ("Televisions", 250, 2000), ("Headphones", 20, 450),
        ("Cameras", 150, 2000), ("Tablets", 120, 1200), ("Smartwatches", 80, 800), ("Gaming Consoles", 250, 600),
        ("Computer Accessories", 10, 150), ("Home Audio", 50, 1200),
    ],
    "Clothing": [
        ("Men's Shirts", 15, 90), ("Women's Dresses", 25, 200), ("Jeans", 30, 150), ("Outerwear", 50, 200),
        ("Activewear", 20, 120), ("Shoes", 35, 200), ("Kids' Clothing", 10, 60), ("Underwear & Socks", 10, 50),
        ("Accessories", 10, 120), ("Swimwear", 15, 90),
    ],
    "Home & Garden": [
        ("Furniture", 80, 500), ("Bedding", 25, 250), ("Kitchen Appliances", 30, 500), ("Cookware", 20, 300),
        ("Lighting", 15, 250), ("Garden Tools", 15, 200), ("Outdoor Furniture", 100, 500), ("Home Decor", 15, 150),
        ("Storage & Organization", 15, 120), ("Cleaning Supplies", 10, 60),
    ],
    "Books": [
        ("Fiction", 10, 30), ("Non-Fiction", 12, 40), ("Children's Books", 10, 25), ("Textbooks", 25, 50),
        ("Comics & Graphic Novels", 10, 35), ("Cookbooks", 15, 45), ("Science & Technology", 20, 50),
        ("Biographies", 12, 35), ("Travel Guides", 12, 30), ("Self-Help", 10, 30),
    ],
    "Sports": [
        ("Fitness Equipment", 30, 300), ("Cycling", 40, 300), ("Camping & Hiking", 25, 300), ("Team Sports", 20, 150),
        ("Water Sports", 30, 300), ("Golf", 30, 300), ("Running", 25, 180), ("Winter Sports", 50, 300),
        ("Yoga", 20, 100), ("Fishing", 20, 250),
    ],
    "Toys": [
        ("Building Sets", 15, 200), ("Dolls & Action Figures", 10, 80), ("Board Games", 15, 70), ("Puzzles", 10, 40),
        ("Educational Toys", 15, 90), ("Outdoor Play", 25, 200), ("Remote Control Toys", 30, 200),
        ("Baby Toys", 10, 50), ("Plush Toys", 10, 45), ("Arts & Crafts", 10, 60),
    ],
    "Food & Beverages": [
        ("Coffee & Tea", 10, 45), ("Snacks", 10, 30), ("Beverages", 10, 40), ("Pantry Staples", 10, 35),
        ("Organic Foods", 10, 50), ("Confectionery", 10, 30), ("Wine & Spirits", 15, 150), ("Baby Food", 10, 35),
        ("Health Foods", 12, 60), ("Gourmet Gifts", 25, 150),
    ],
    "Beauty": [
        ("Skincare", 10, 150), ("Makeup", 10, 80), ("Hair Care", 10, 60), ("Fragrances", 25, 200),
        ("Nail Care", 10, 30), ("Men's Grooming", 10, 120), ("Bath & Body", 10, 50), ("Beauty Tools", 15, 200),
        ("Sun Care", 10, 40), ("Oral Care", 10, 150),
    ],
    "Automotive": [
        ("Car Electronics", 30, 500), ("Tires & Wheels", 60, 400), ("Car Care", 10, 60), ("Tools & Equipment", 20, 300),
        ("Interior Accessories", 15, 150), ("Exterior Accessories", 20, 300), ("Motor Oil & Fluids", 10, 60),
        ("Replacement Parts", 20, 400), ("Motorcycle Gear", 40, 500), ("Batteries", 50, 250),
    ],
    "Health": [
        ("Vitamins & Supplements", 10, 60), ("Personal Care Devices", 20, 200), ("First Aid", 10, 50),
        ("Medical Supplies", 10, 150), ("Allergy & Sinus", 10, 60), ("Sleep & Relaxation", 15, 200),
        ("Mobility Aids", 30, 400), ("Weight Management", 15, 80), ("Eye Care", 10, 90), ("Hearing Aids", 100, 1500),
    ],
}

# interleaved by department so that the first N categories (a smaller catalog) still span them
CATEGORIES: list[CategorySpec] = [
    CategorySpec(department, *_DEPARTMENTS[department][position])
    for position in range(10)
    for department in _DEPARTMENTS
]
assert len(CATEGORIES) == 100 and len({c.full_name for c in CATEGORIES}) == 100
