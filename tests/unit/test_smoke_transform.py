import json
from decimal import Decimal

from globalmart.smoke import smoke_events
from spark_jobs.batch.platform_smoke import parse_smoke_events


def kafka_records(spark, values):
    rows = [(json.dumps(v) if isinstance(v, dict) else v, 0, offset) for offset, v in enumerate(values)]
    return spark.createDataFrame(rows, "value string, partition int, offset long")


def test_keeps_one_row_per_event_of_the_run(spark):
    run = [json.loads(v) for _, v in smoke_events("run-a", 3)]
    other = [json.loads(v) for _, v in smoke_events("run-b", 2)]
    records = kafka_records(spark, run + other + [run[1]])  # run[1] re-sent by a retried producer

    rows = parse_smoke_events(records, "run-a").orderBy("seq").collect()

    assert [r.seq for r in rows] == [0, 1, 2]
    assert {r.run_id for r in rows} == {"run-a"}
    assert rows[1].amount == Decimal("11.25")
    assert rows[0].produced_at is not None


def test_event_ids_are_stable_across_producer_retries():
    assert [v for _, v in smoke_events("r", 2)][0] != [v for _, v in smoke_events("other", 2)][0]
    first = [json.loads(v)["event_id"] for _, v in smoke_events("r", 4)]
    again = [json.loads(v)["event_id"] for _, v in smoke_events("r", 4)]
    assert first == again and len(set(first)) == 4


def test_unparseable_records_are_not_loaded(spark):
    records = kafka_records(spark, ["not json", json.loads(next(smoke_events("run-a", 1))[1])])
    assert parse_smoke_events(records, "run-a").count() == 1
