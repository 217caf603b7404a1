"""Would Spark's real-time mode bring the streaming marts under a second? A probe of its sinks.

Spark 4.1+ has a real-time trigger (``trigger(realTime=...)``): long-running tasks that pass
each Kafka record on as it arrives, instead of micro-batches. Its allowlist admits
projections, filters and unions, and the Kafka and ``foreach`` sinks; not ``foreachBatch``
nor Python UDFs (our contract check is a pandas UDF). The question is what a Python sink
gains from it, so this probe runs the same query (Kafka → each record's value → sink, no work)
four ways and prints the latency from an event's sending to its arrival in the sink:

- ``micro-batch``: a 1-second processing-time trigger into a Python ``foreach`` writer;
- ``real-time 5 s`` and ``real-time 1 s``: the real-time trigger (batches of that length) into
  the same Python writer;
- ``real-time, Kafka sink``: the real-time trigger into a Kafka topic, no Python in the path
  (a consumer takes the arrival time).

A Python writer gets its rows through PySpark's pickler, which sends them in batches that
double in size (1, 2, 4, ... rows) until they reach 1 MB: within a real-time batch, rows wait
for their pickled batch to fill, at the latest until the batch ends.

Needs Kafka (`make run`). Topics and checkpoints are private to the run and removed after.

    .venv/bin/python scripts/probe_realtime_mode.py [--rate 500] [--seconds 45]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

# (name, trigger, sink): the Spark side is this file under spark-submit with these arguments
VARIANTS = (
    ("micro-batch, Python foreach", "micro-batch", "foreach"),
    ("real-time 5 s, Python foreach", "5 seconds", "foreach"),
    ("real-time 1 s, Python foreach", "1 second", "foreach"),
    ("real-time 5 s, Kafka sink", "5 seconds", "kafka"),
)
PARTITIONS = 2


def spark_side(bootstrap: str, topic: str, trigger: str, sink: str, work_dir: Path, seconds: float) -> None:
    """Runs under spark-submit: the query, until ``seconds`` have passed."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    records = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", bootstrap)
               .option("subscribe", topic).option("startingOffsets", "earliest").load())
    latencies_file = str(work_dir / "latencies.txt")

    class ArrivalWriter:
        def open(self, partition_id, epoch_id):
            self.out = open(latencies_file, "a")  # noqa: SIM115 (closed in close())
            return True

        def process(self, row):
            self.out.write(f"{time.time() - json.loads(row.value)['sent']}\n")

        def close(self, error):
            self.out.close()

    if sink == "kafka":
        writer = (records.select("key", "value").writeStream.format("kafka")
                  .option("kafka.bootstrap.servers", bootstrap).option("topic", f"{topic}.out"))
    else:
        writer = records.select(F.col("value").cast("string")).writeStream.foreach(ArrivalWriter())
    writer = writer.outputMode("update").option("checkpointLocation", str(work_dir / "checkpoint"))
    if trigger == "micro-batch":
        writer = writer.trigger(processingTime="1 second")
    else:
        writer = writer.trigger(realTime=trigger)
    query = writer.start()
    (work_dir / "started").touch()
    query.awaitTermination(seconds)
    query.stop()


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {"events": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


def produce(bootstrap: str, topic: str, rate: int, seconds: float) -> int:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    start, sent = time.time(), 0
    while (elapsed := time.time() - start) < seconds:
        while sent < int(elapsed * rate):
            producer.produce(topic, json.dumps({"n": sent, "sent": time.time()}).encode(), key=str(sent % 97).encode())
            sent += 1
        producer.poll(0)
        time.sleep(0.005)
    producer.flush()
    return sent


def consume_arrivals(bootstrap: str, topic: str, expected: int, deadline: float, latencies: list[float]) -> None:
    """The Kafka-sink variant: arrival time of each output record minus its send time."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        while len(latencies) < expected and time.time() < deadline:
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                latencies.append(time.time() - json.loads(message.value())["sent"])
    finally:
        consumer.close()


def run_variant(settings, trigger: str, sink: str, rate: int, seconds: float) -> dict[str, float]:
    from confluent_kafka.admin import AdminClient, NewTopic

    from globalmart.spark import submit_environment, submit_options

    bootstrap = settings.kafka.bootstrap_servers
    topic = f"probe-realtime-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in (topic, f"{topic}.out")]).values():
        future.result()
    work_dir = Path(tempfile.mkdtemp(prefix="probe-realtime-"))
    options = submit_options(settings, streaming=True)
    command = [str(Path(sys.executable).parent / "spark-submit"), "--master", f"local[{PARTITIONS + 2}]",
               "--jars", options["jars"], "--conf", "spark.ui.enabled=false",
               # Spark's floor on the real-time batch length (5 s by default), lowered for the 1-second variant
               "--conf", "spark.sql.streaming.realTimeMode.minBatchDuration=1s",
               __file__, "--spark-side", bootstrap, topic, trigger, sink, str(work_dir), str(seconds + 60)]
    spark_log = work_dir / "spark.log"
    with spark_log.open("w") as log:
        spark = subprocess.Popen(command, env=os.environ | submit_environment(settings), stdout=subprocess.DEVNULL,
                                 stderr=log)
    try:
        while not (work_dir / "started").exists():
            if spark.poll() is not None:  # its work dir goes in the finally below: show the log's end now
                raise SystemExit(f"the probe's spark-submit exited with {spark.returncode}:\n"
                                 f"{spark_log.read_text()[-3000:]}")
            time.sleep(0.5)
        time.sleep(10)  # the first batches plan and compile the query
        consumed: list[float] = []
        consumer = None
        if sink == "kafka":
            consumer = threading.Thread(target=consume_arrivals, args=(bootstrap, f"{topic}.out", rate * seconds,
                                                                        time.time() + seconds + 30, consumed))
            consumer.start()
        sent = produce(bootstrap, topic, rate, seconds)
        if consumer is not None:
            consumer.join()
            latencies = consumed
        else:
            time.sleep(8)  # the last batch reaches the writer
            latencies = [float(line) for line in (work_dir / "latencies.txt").read_text().split()]
        return percentiles(latencies) | {"sent": sent}
    finally:
        spark.terminate()
        spark.wait(60)
        admin.delete_topics([topic, f"{topic}.out"])
        shutil.rmtree(work_dir, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--spark-side":
        bootstrap, topic, trigger, sink, work_dir, seconds = sys.argv[2:8]
        spark_side(bootstrap, topic, trigger, sink, Path(work_dir), float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=500, help="events/s")
    parser.add_argument("--seconds", type=float, default=45, help="of input per variant")
    args = parser.parse_args()

    from globalmart.settings import get_settings

    settings = get_settings()
    print(f"{args.rate} events/s for {args.seconds:.0f} s into a {PARTITIONS}-partition topic; "
          "latency from sending to the sink, seconds")
    for name, trigger, sink in VARIANTS:
        figures = run_variant(settings, trigger, sink, args.rate, args.seconds)
        print(f"  {name:32} p50 {figures['p50']:.3f}  p95 {figures['p95']:.3f}  p99 {figures['p99']:.3f}  "
              f"max {figures['max']:.3f}  ({figures['events']:,} of {figures['sent']:,} events)", flush=True)


if __name__ == "__main__":
    main()
