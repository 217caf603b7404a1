"""Main national public holidays of the shop's countries, for ``dim_date``'s holiday flag.

A small rule table instead of a holidays library (the project has none): fixed dates, "first
<weekday> on or after <date>" (e.g. Thanksgiving: the first Thursday on or after 22 November),
and days relative to Western Easter. Only nationwide holidays are listed; regional ones
(German Länder, Canadian provinces, UK nations other than England) and substitute days for
holidays falling on a weekend are left out.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import NamedTuple

from dateutil.easter import easter

MONDAY, THURSDAY = 0, 3


class Fixed(NamedTuple):
    month: int
    day: int

    def on(self, year: int) -> date:
        return date(year, self.month, self.day)


class WeekdayOnOrAfter(NamedTuple):
    month: int
    day: int
    weekday: int  # Monday = 0

    def on(self, year: int) -> date:
        start = date(year, self.month, self.day)
        return start + timedelta(days=(self.weekday - start.weekday()) % 7)


class EasterOffset(NamedTuple):
    days: int

    def on(self, year: int) -> date:
        return easter(year) + timedelta(days=self.days)


NEW_YEAR, CHRISTMAS = ("New Year's Day", Fixed(1, 1)), ("Christmas Day", Fixed(12, 25))
GOOD_FRIDAY, EASTER_MONDAY = ("Good Friday", EasterOffset(-2)), ("Easter Monday", EasterOffset(1))

HOLIDAYS: dict[str, list[tuple[str, Fixed | WeekdayOnOrAfter | EasterOffset]]] = {
    "USA": [
        NEW_YEAR,
        ("Martin Luther King Jr. Day", WeekdayOnOrAfter(1, 15, MONDAY)),
        ("Presidents' Day", WeekdayOnOrAfter(2, 15, MONDAY)),
        ("Memorial Day", WeekdayOnOrAfter(5, 25, MONDAY)),
        ("Juneteenth", Fixed(6, 19)),
        ("Independence Day", Fixed(7, 4)),
        ("Labor Day", WeekdayOnOrAfter(9, 1, MONDAY)),
        ("Columbus Day", WeekdayOnOrAfter(10, 8, MONDAY)),
        ("Veterans Day", Fixed(11, 11)),
        ("Thanksgiving Day", WeekdayOnOrAfter(11, 22, THURSDAY)),
        CHRISTMAS,
    ],
    "UK": [
        NEW_YEAR,
        GOOD_FRIDAY,
        EASTER_MONDAY,
        ("Early May Bank Holiday", WeekdayOnOrAfter(5, 1, MONDAY)),
        ("Spring Bank Holiday", WeekdayOnOrAfter(5, 25, MONDAY)),
        ("Summer Bank Holiday", WeekdayOnOrAfter(8, 25, MONDAY)),
        CHRISTMAS,
        ("Boxing Day", Fixed(12, 26)),
    ],
    "Canada": [
        NEW_YEAR,
        GOOD_FRIDAY,
        ("Victoria Day", WeekdayOnOrAfter(5, 18, MONDAY)),
        ("Canada Day", Fixed(7, 1)),
        ("Labour Day", WeekdayOnOrAfter(9, 1, MONDAY)),
        ("Thanksgiving", WeekdayOnOrAfter(10, 8, MONDAY)),
        CHRISTMAS,
        ("Boxing Day", Fixed(12, 26)),
    ],
    "Germany": [
        NEW_YEAR,
        GOOD_FRIDAY,
        EASTER_MONDAY,
        ("Labour Day", Fixed(5, 1)),
        ("Ascension Day", EasterOffset(39)),
        ("Whit Monday", EasterOffset(50)),
        ("German Unity Day", Fixed(10, 3)),
        CHRISTMAS,
        ("Second Day of Christmas", Fixed(12, 26)),
    ],
    "France": [
        NEW_YEAR,
        EASTER_MONDAY,
        ("Labour Day", Fixed(5, 1)),
        ("Victory in Europe Day", Fixed(5, 8)),
        ("Ascension Day", EasterOffset(39)),
        ("Whit Monday", EasterOffset(50)),
        ("Bastille Day", Fixed(7, 14)),
        ("Assumption Day", Fixed(8, 15)),
        ("All Saints' Day", Fixed(11, 1)),
        ("Armistice Day", Fixed(11, 11)),
        CHRISTMAS,
    ],
}


def public_holidays(countries: list[str], first_year: int, last_year: int) -> list[tuple[date, str, str]]:
    """(date, country, holiday name) of ``countries`` in the years ``first_year..last_year``;
    a country without an entry in ``HOLIDAYS`` has none."""
    return [
        (rule.on(year), country, name)
        for country in countries
        for name, rule in HOLIDAYS.get(country, [])
        for year in range(first_year, last_year + 1)
    ]
