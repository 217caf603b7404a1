"""Great Expectations gates of the daily batch (write-audit-publish).

``validate_raw_day`` checks one day of the lake before the warehouse is built from it;
``validate_outputs`` checks the staged warehouse before it is published. Each returns a
``GateResult``: success, the failed expectations with what was observed, and the Data Docs
pages. The suites are in ``suites``, the audit columns they validate in ``frames``.
"""

from globalmart.quality_gates.frames import trailing_daily_average
from globalmart.quality_gates.gates import FailedExpectation, GateResult, validate_outputs, validate_raw_day

__all__ = ["FailedExpectation", "GateResult", "trailing_daily_average", "validate_outputs", "validate_raw_day"]
