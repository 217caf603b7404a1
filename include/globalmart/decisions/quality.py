"""Detection quality judged by people: the fraud reviews per anomaly rule.

Each reviewed anomaly is a judgement of its rule: *confirmed* (fraud) is a true positive,
*legitimate* a false positive; *hold* and a timed-out review (closed with the default) are
not judgements and count apart. ``judged_precision`` = confirmed / (confirmed + legitimate):
the share of the rule's reviewed alarms people found real, to tune its threshold on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RuleReviews:
    rule: str
    anomalies: int
    reviewed: int
    confirmed: int
    legitimate: int
    held: int
    timed_out: int

    @property
    def judged_precision(self) -> float | None:
        judged = self.confirmed + self.legitimate
        return self.confirmed / judged if judged else None

    def as_dict(self) -> dict:
        return {**asdict(self), "judged_precision": self.judged_precision}


def review_quality(rows: Iterable[tuple[str, str | None, bool]]) -> list[RuleReviews]:
    """Per rule, from (rule, outcome of the anomaly's review or None, timed out) per anomaly."""
    counts: dict[str, list[int]] = {}
    for rule, outcome, timed_out in rows:
        c = counts.setdefault(rule, [0, 0, 0, 0, 0, 0])
        c[0] += 1
        if outcome is None:
            continue
        c[1] += 1
        if timed_out:
            c[5] += 1
        elif outcome == "confirm_fraud":
            c[2] += 1
        elif outcome == "legitimate":
            c[3] += 1
        elif outcome == "hold_customer":
            c[4] += 1
    return [RuleReviews(rule, *c) for rule, c in sorted(counts.items())]
