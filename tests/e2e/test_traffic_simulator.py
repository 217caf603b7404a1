"""traffic_simulator end to end with dag.test(): the trigger form drives the generator."""

from confluent_kafka import Consumer, TopicPartition

from globalmart.dag_parsing import parse_dag_files


def end_offsets(settings, keys):
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "e2e-offsets"})
    try:
        totals = {}
        for key in keys:
            name = getattr(settings.kafka, key).name
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            totals[key] = sum(consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions)
        return totals
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

    grown = {k: v - before[k] for k, v in end_offsets(platform, keys).items()}
    for key in ("product_views", "cart_events", "transactions", "ground_truth"):
        assert grown[key] == report["sent"].get(key, 0), key
    assert grown["dead_letters"] == sum(report["dead_letters"].values()) > 0
