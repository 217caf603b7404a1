import pytest
from pydantic import ValidationError

from globalmart.settings import PerformanceWeights, Settings, load_settings


def test_warehouse_defaults():
    warehouse = Settings().warehouse
    assert warehouse.rfm_lookback_days == 365
    assert warehouse.moving_average_periods == {"daily": 7, "weekly": 4, "monthly": 3}
    assert warehouse.performance_weights.model_dump() == {
        "revenue": 0.4, "units": 0.2, "conversion": 0.2, "views": 0.1, "cart_adds": 0.1}


def test_warehouse_env_overrides_keep_the_other_defaults(monkeypatch):
    monkeypatch.setenv("GLOBALMART_WAREHOUSE__RFM_LOOKBACK_DAYS", "90")
    monkeypatch.setenv("GLOBALMART_WAREHOUSE__WEEKLY_MOVING_AVERAGE_WEEKS", "8")
    monkeypatch.setenv("GLOBALMART_WAREHOUSE__PERFORMANCE_WEIGHTS__REVENUE", "1.5")
    warehouse = load_settings().warehouse
    assert warehouse.rfm_lookback_days == 90
    assert warehouse.moving_average_periods == {"daily": 7, "weekly": 8, "monthly": 3}
    assert (warehouse.performance_weights.revenue, warehouse.performance_weights.units) == (1.5, 0.2)


def test_performance_weights_need_one_positive_weight():
    with pytest.raises(ValidationError, match="at least one performance weight"):
        PerformanceWeights(revenue=0, units=0, conversion=0, views=0, cart_adds=0)
    with pytest.raises(ValidationError):
        PerformanceWeights(revenue=-1)
