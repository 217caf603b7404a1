"""The daily batch's pure parts: which days a run takes, trend history bounds, publish conversions
and merges, staging round trip, the gate emails."""

import time
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from globalmart.settings import WarehouseSettings
from globalmart.warehouse import publish, sources
from globalmart.warehouse.emails import render_blocked, render_published
from globalmart.warehouse.schedule import days_to_process, deadline_after_start
from globalmart.warehouse.steps import trend_history_start, trend_periods_end

NOW = datetime(2026, 11, 22, 2, 0, 5, tzinfo=UTC)


def test_a_scheduled_run_processes_the_previous_day_in_the_schedule_timezone():
    logical = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    assert days_to_process({}, logical, "UTC", NOW) == (date(2026, 11, 21), date(2026, 11, 21))
    # 02:00 in New York is 07:00 UTC; at 03:00 UTC it is still the 21st there
    assert days_to_process({}, datetime(2026, 11, 22, 3, 0, tzinfo=UTC), "America/New_York", NOW) == (
        date(2026, 11, 20), date(2026, 11, 20))


def test_a_triggered_run_takes_one_day_or_a_range_and_refuses_unfinished_days():
    assert days_to_process({"start_date": "2026-11-01"}, NOW, "UTC", NOW) == (date(2026, 11, 1), date(2026, 11, 1))
    assert days_to_process({"end_date": "2026-11-03"}, NOW, "UTC", NOW) == (date(2026, 11, 3), date(2026, 11, 3))
    assert days_to_process({"start_date": "2026-10-30", "end_date": "2026-11-02"}, NOW, "UTC", NOW) == (
        date(2026, 10, 30), date(2026, 11, 2))
    with pytest.raises(ValueError, match="before start_date"):
        days_to_process({"start_date": "2026-11-05", "end_date": "2026-11-01"}, NOW, "UTC", NOW)
    with pytest.raises(ValueError, match="not over yet"):
        days_to_process({"start_date": "2026-11-22"}, NOW, "UTC", NOW)


def test_the_deadline_follows_the_schedule_and_must_come_after_it():
    assert deadline_after_start(WarehouseSettings()).total_seconds() == 4 * 3600
    with pytest.raises(ValueError, match="must come after"):
        deadline_after_start(WarehouseSettings(schedule_hour=6, deadline_hour=6))


def test_days_between_is_inclusive_and_ordered():
    assert sources.days_between(date(2026, 12, 30), date(2027, 1, 2)) == [
        date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 2)]
    with pytest.raises(ValueError, match="ends"):
        sources.days_between(date(2026, 1, 2), date(2026, 1, 1))


def test_trends_read_enough_history_and_every_day_of_the_periods_containing_the_day():
    warehouse = WarehouseSettings()  # 7 days, 4 weeks, 3 months
    settings = type("S", (), {"warehouse": warehouse})()
    # Wednesday 2026-11-18: the month starts on the 1st, two months before it is 2026-09-01
    assert trend_history_start(date(2026, 11, 18), settings) == date(2026, 9, 1)
    assert trend_periods_end(date(2026, 11, 18)) == date(2026, 11, 30)
    # Thursday 2026-12-31: its ISO week ends on Sunday 2027-01-03
    assert trend_periods_end(date(2026, 12, 31)) == date(2027, 1, 3)


def test_documents_get_the_types_mongodb_stores():
    table = pa.table({
        "revenue": pa.array([Decimal("12.35"), None], pa.decimal128(18, 2)),
        "date": pa.array([date(2026, 11, 20), date(2026, 11, 21)], pa.date32()),
        "event_time": pa.array([datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
        "quantity": pa.array([3, 4], pa.int32()),
    })
    rows = publish._mongo_ready(table).to_pylist()
    assert rows[0] == {"revenue": 12.35, "date": datetime(2026, 11, 20), "quantity": 3,
                       "event_time": datetime(2026, 11, 20, 10, 0, 0, 123000)}  # MongoDB keeps milliseconds
    assert rows[1]["revenue"] is None


def test_day_slices_select_the_day_and_the_periods_containing_it():
    _make_id, slices = publish.SLICED["sales_trends"]
    assert slices(date(2026, 11, 18)) == [
        {"granularity": "daily", "period_start": datetime(2026, 11, 18)},
        {"granularity": "weekly", "period_start": datetime(2026, 11, 16)},
        {"granularity": "monthly", "period_start": datetime(2026, 11, 1)},
    ]
    make_id, slices = publish.SLICED["fact_sales"]
    assert slices(date(2026, 11, 18)) == [{"date_key": 20261118}]
    assert make_id({"transaction_id": "T1", "line_number": 2}) == "T1:2"


def _stage_marker(settings, day, table):
    """What Spark leaves when a staged table is complete."""
    path = sources.staged_path(settings, day, table)
    path.mkdir(parents=True, exist_ok=True)
    (path / "_SUCCESS").touch()


def test_publishing_refuses_a_day_the_output_gate_has_not_passed(settings, tmp_path):
    private = settings.model_copy(update={"warehouse_dir": tmp_path})
    day = date(2026, 11, 20)
    with pytest.raises(publish.NotAudited, match="has not passed"):
        publish.check_audited(private, day)
    for table in sources.TABLES:
        _stage_marker(private, day, table)
    result = type("R", (), {"gate": "outputs", "day": day, "success": True, "evaluated": 3, "failures": [],
                            "docs_index": tmp_path / "index.html", "pages": {}})()
    sources.save_gate_result(private, result)
    publish.check_audited(private, day)
    time.sleep(0.01)
    _stage_marker(private, day, "fact_sales")  # staged again after the audit
    with pytest.raises(publish.NotAudited, match="staged again"):
        publish.check_audited(private, day)


def test_the_blocked_email_lists_every_failure_and_the_data_docs(settings):
    results = [{"gate": "raw_day", "day": "2026-11-20", "evaluated": 30, "docs_index": "/state/gx/index.html",
                "failures": ["raw_transactions.transaction_id: expect_column_values_to_be_unique — 2 unexpected <T1>"]}]
    email = render_blocked(results, settings)
    assert email.subject == ("[GlobalMart] Daily batch blocked: raw-day gate failed for 2026-11-20 "
                             "(1 failed expectations)")
    assert "expect_column_values_to_be_unique — 2 unexpected <T1>" in email.text
    assert "&lt;T1&gt;" in email.html and "/state/gx/index.html" in email.html


def test_the_published_email_says_what_each_table_did_and_which_gates_passed(settings):
    docs = "/state/gx/data_docs/index.html"
    rerun = {"2026-11-20": {
        "tables": {"dim_customer": {"inserted": 0, "updated": 0, "unchanged": 9733},
                   "dim_product": {"inserted": 2, "updated": 1, "unchanged": 1500},
                   "fact_sales": {"inserted": 1234, "replaced": 1234}, "customer_rfm": {"inserted": 5, "replaced": 0},
                   "sales_trends": {"inserted": 0, "replaced": 0, "unchanged": 42}},
        "gates": [{"gate": "raw_day", "evaluated": 31, "docs_index": docs},
                  {"gate": "outputs", "evaluated": 27, "docs_index": docs}]}}
    email = render_published(rerun, settings)
    assert "Daily batch published 2026-11-20" in email.subject
    for line in ("- dim_customer: 0 inserted, 0 updated, 9,733 unchanged",
                 "- dim_product: 2 inserted, 1 updated, 1,500 unchanged",
                 "- fact_sales: 1,234 inserted, replacing the day's 1,234 previous documents",
                 "- customer_rfm: 5 inserted", "- sales_trends: 0 inserted, 42 unchanged", f"Data Docs: {docs}",
                 f"- Customers (RFM segments): {settings.dashboards.url}/customers",
                 f"- Products and trends: {settings.dashboards.url}/products"):
        assert line in email.text.splitlines()
    assert "raw-day (31 expectations)," in email.text and "output (27 expectations)" in email.text
    assert "<td>dim_customer</td>" in email.html and ">9,733</td>" in email.html and f'href="file://{docs}"' in email.html
    assert f'<a href="{settings.dashboards.url}/customers">Customers (RFM segments)</a>' in email.html
