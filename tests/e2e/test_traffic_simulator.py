"""traffic_simulator end to end with dag.test(): the trigger form drives the generator."""

from confluent_kafka import Consumer, TopicPartition

from globalmart.dag_parsing import parse_dag_files


def end_offsets(settings, keys) -> dict[str, dict[int, int]]:
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "e2e-offsets"})
    try:
        ends = {}
        for key in keys:
            name = getattr(settings.kafka, key).name
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            ends[key] = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions}
        return ends
    finally:
        consumer.close()


def events_between(settings, key, before: dict[int, int], after: dict[int, int]) -> int:
    """Records written to the topic between the two sets of end offsets, the platform's clock ticks left out."""
    name = getattr(settings.kafka, key).name
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "e2e-count",
                         "enable.auto.commit": False})
    try:
        counted = 0
        for partition, end in after.items():
            start = before.get(partition, 0)
            if end <= start:
                continue
            consumer.assign([TopicPartition(name, partition, start)])
            for _ in range(end - start):
                message = consumer.poll(10)
                assert message is not None and message.error() is None, f"{name} [{partition}] not readable"
                counted += b'"tick_id"' not in (message.value() or b"")
        return counted
    finally:
        consumer.close()


def test_short_burst_from_the_trigger_form(platform):
    keys = ("product_views", "cart_events", "transactions", "ground_truth", "dead_letters")
    before = end_offsets(platform, keys)
    dag = parse_dag_files().dags["traffic_simulator"]
    run = dag.test(run_conf={"mode": "realtime", "rate": 300, "minutes": 0.2, "seed": 99, "malformed_rate": 0.01})

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    report = next(ti for ti in run.get_task_instances() if ti.task_id == "publish_traffic").xcom_pull(
        task_ids="publish_traffic"
    )
    assert report["seed"] == 99 and report["mode"] == "realtime"
    assert 0.9 * 300 * 12 <= report["events"] <= 1.1 * 300 * 12
    assert report["delivery_failures"] == {} and report["undelivered"] == 0

    after = end_offsets(platform, keys)
    grown = {key: events_between(platform, key, before[key], after[key]) for key in keys}
    for key in ("product_views", "cart_events", "transactions", "ground_truth"):
        assert grown[key] == report["sent"].get(key, 0), key
    assert grown["dead_letters"] == sum(report["dead_letters"].values()) > 0
