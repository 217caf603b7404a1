"""Alerting settings an operator changes without a deploy: one Airflow Variable.

The Variable named ``alerting.variable`` (``globalmart_alerting``) holds a JSON object with
any fields of :class:`globalmart.settings.AlertingSettings`, e.g.
``{"recipients": ["ops@example.com"], "throttle_minutes": 30, "digest_threshold": 10}``.
It is read when the task runs (never at parse time); what it leaves out keeps the settings'
value. A Variable that does not fit fails the task with a message naming the problem.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from globalmart.settings import AlertingSettings, Settings


class InvalidAlertingVariable(ValueError):
    pass


def with_variable_overrides(settings: Settings, variable_name: str, raw: str | None) -> Settings:
    """``settings`` with the alerting fields that the Variable's JSON ``raw`` sets (None: unset)."""
    if raw is None or not raw.strip():
        return settings
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidAlertingVariable(f"Airflow Variable {variable_name!r} is not JSON: {error}") from error
    if not isinstance(overrides, dict):
        raise InvalidAlertingVariable(
            f"Airflow Variable {variable_name!r} must be a JSON object of alerting settings, got {type(overrides).__name__}")
    unknown = sorted(set(overrides) - set(AlertingSettings.model_fields))
    if unknown:
        raise InvalidAlertingVariable(
            f"Airflow Variable {variable_name!r} sets unknown fields {unknown}; "
            f"known: {', '.join(AlertingSettings.model_fields)}")
    try:
        alerting = AlertingSettings.model_validate({**settings.alerting.model_dump(), **overrides})
    except ValidationError as error:
        raise InvalidAlertingVariable(f"Airflow Variable {variable_name!r} is invalid: {error}") from error
    return settings.model_copy(update={"alerting": alerting})
