"""The Airflow Variable that overrides alerting settings at run time."""

import pytest

from globalmart.alerting.overrides import InvalidAlertingVariable, with_variable_overrides
from globalmart.settings import Settings

NAME = "globalmart_alerting"


def test_unset_or_empty_keeps_the_settings():
    settings = Settings()
    assert with_variable_overrides(settings, NAME, None) is settings
    assert with_variable_overrides(settings, NAME, "  ") is settings


def test_the_fields_it_sets_win_and_the_rest_keep_their_values():
    settings = Settings()
    overridden = with_variable_overrides(settings, NAME, '{"recipients": ["ops@example.com"], "throttle_minutes": 15}')
    assert overridden.alerting.recipients == ["ops@example.com"]
    assert overridden.alerting.throttle_minutes == 15
    assert overridden.alerting.digest_threshold == settings.alerting.digest_threshold
    assert settings.alerting.throttle_minutes == 60  # the original is untouched


@pytest.mark.parametrize(("raw", "message"), [
    ("{recipients", "is not JSON"),
    ('["ops@example.com"]', "must be a JSON object"),
    ('{"recipient": ["ops@example.com"]}', "unknown fields ['recipient']"),
    ('{"throttle_minutes": -5}', "throttle_minutes"),
    ('{"recipients": []}', "recipients"),
])
def test_a_variable_that_does_not_fit_names_the_problem(raw, message):
    with pytest.raises(InvalidAlertingVariable, match=f"'{NAME}'.*") as error:
        with_variable_overrides(Settings(), NAME, raw)
    assert message in str(error.value)
