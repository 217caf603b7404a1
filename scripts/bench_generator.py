"""Generator benchmark (run by hand; prints figures): throughput into the local broker on one
core with acks=all, CPU per 10k events, where the time goes, and pacing accuracy.

    .venv/bin/python scripts/bench_generator.py [--seconds 60] [--cpu 0] [--rates 500,20000]

Needs the platform (`make run`). Writes to its own `bench_*` topics and deletes them after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from globalmart.events import TOPIC_CONTRACTS
from globalmart.generator.catalog import get_catalog
from globalmart.generator.publisher import KafkaPublisher, Progress, RunReport, run
from globalmart.generator.traffic import TrafficConfig, TrafficStream
from globalmart.kafka_admin import delete_topics, ensure_topics, with_topic_prefix
from globalmart.platform.secrets import ensure_secrets
from globalmart.settings import load_settings


def watch(settings, config, seconds, sample):
    """Run in a thread, call ``sample(report, traffic)`` once a second for ``seconds``, then stop."""
    stop, holder, result = threading.Event(), {}, {}
    thread = threading.Thread(target=lambda: result.update(report=run(
        settings, config, stop=stop, progress=Progress(10, enabled=False),
        on_start=lambda t, r: holder.update(traffic=t, report=r),
    )))
    thread.start()
    while "report" not in holder:
        time.sleep(0.01)
    start = time.monotonic()
    for second in range(1, int(seconds) + 1):
        time.sleep(max(0.0, start + second - time.monotonic()))
        sample(holder["report"], holder["traffic"])
    stop.set()
    thread.join()
    return result["report"]


def sustained(settings, seconds: float) -> None:
    """Steady state only: the first 10 s (ramp-up) and the stop (flush, cut ground truth) excluded."""
    samples = []
    report = watch(settings, TrafficConfig(mode="fast", seed=11), seconds,
                   lambda r, t: samples.append((time.monotonic(), r.events, time.process_time())))
    (t0, e0, c0), (t1, e1, c1) = samples[9], samples[-1]
    rate = (e1 - e0) / (t1 - t0)
    per_10k = (c1 - c0) / (e1 - e0) * 10_000
    print(f"\nsustained (fast mode, seconds 10..{seconds:.0f}): {rate:,.0f} events/s; "
          f"{per_10k * 1000:.0f} CPU ms per 10k events (process incl. librdkafka threads); "
          f"{report.events:,} events in all, delivery failures {sum(report.delivery_failures.values())}, "
          f"undelivered {report.undelivered}")


def stages(settings, events: int = 300_000) -> None:
    """Time each stage alone on the same events: simulate+render, validate, produce (+flush)."""
    catalog = get_catalog(settings.catalog, settings.generator)
    traffic = TrafficStream(settings, TrafficConfig(mode="fast", seed=12), catalog)
    traffic.rate_hint = 50_000
    messages, started = [], time.process_time()
    while len(messages) < events:
        messages.extend(traffic.next_batch().events)
    simulate = time.process_time() - started
    validators = {k: m.__pydantic_validator__.validate_json for k, m in TOPIC_CONTRACTS.items()}
    started = time.process_time()
    for topic, _key, value in messages:
        validators[topic](value)
    validate = time.process_time() - started
    publisher = KafkaPublisher(settings, RunReport(seed=12, tag="bench", mode="fast", started_at=""))
    produce, names = publisher.producer.produce, publisher.names
    started, wall = time.process_time(), time.monotonic()
    for topic, key, value in messages:
        try:
            produce(names[topic], value, key)
        except BufferError:
            publisher.producer.poll(0.05)
            produce(names[topic], value, key)
    publisher.producer.poll(0)
    produce_cpu = time.process_time() - started
    publisher.flush()
    flush_wall = time.monotonic() - wall
    n = len(messages)
    print(f"\nper event, {n:,} events (CPU µs): simulate+render {simulate / n * 1e6:.2f}, "
          f"validate {validate / n * 1e6:.2f}, produce() {produce_cpu / n * 1e6:.2f} "
          f"(+ librdkafka threads; produce+flush wall {flush_wall / n * 1e6:.2f})")


def paced(settings, rate: float, seconds: float) -> None:
    counts, clocks, last = [], [], [0]

    def sample(report, traffic):
        sent = report.events + sum(report.dead_letters.values())
        counts.append(sent - last[0])
        last[0] = sent
        clocks.append((traffic.sim_ms - traffic.wall_ms()) / 1000)

    report = watch(settings, TrafficConfig(mode="realtime", rate=rate, seed=13), seconds, sample)
    total = sum(counts)
    error = (total - rate * seconds) / (rate * seconds)
    print(f"\npaced at {rate:,.0f} ev/s for {seconds:.0f} s: sent {total:,} (error {error:+.3%}); "
          f"per-second counts min {min(counts):,} / median {statistics.median(counts):,.0f} / max {max(counts):,}; "
          f"event clock minus wall clock: min {min(clocks):+.2f} s, max {max(clocks):+.2f} s; "
          f"CPU {report.cpu_seconds / report.elapsed_seconds:.0%} of a core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--cpu", type=int, default=0, help="pin this process (and librdkafka's threads) to one core")
    parser.add_argument("--rates", default="500,20000")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: stages,sustained")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    settings = with_topic_prefix(ensure_secrets(load_settings()), "bench_")
    print(f"pinned to core {args.cpu}; broker {settings.kafka.bootstrap_servers}; acks=all, idempotent, "
          f"{settings.kafka.producer_compression}, linger {settings.kafka.producer_linger_ms} ms")
    ensure_topics(settings)
    try:
        if "stages" not in args.skip:
            stages(settings)
        if "sustained" not in args.skip:
            sustained(settings, args.seconds)
        for rate in (float(r) for r in args.rates.split(",") if r):
            paced(settings, rate, args.seconds)
    finally:
        delete_topics(settings, [t.name for t in settings.kafka.topics()])


if __name__ == "__main__":
    main()
