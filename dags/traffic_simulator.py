"""Shopper traffic on demand: the trigger form drives the generator (manual trigger)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from globalmart.dag_defaults import default_args
from globalmart.settings import get_settings

settings = get_settings()
generator = settings.generator

with DAG(
    dag_id="traffic_simulator",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    tags=["generator", "kafka"],
    params={
        "mode": Param(
            "realtime",
            type="string",
            enum=["realtime", "fast", "backfill"],
            description="realtime: paced at `rate` events/s with current times; fast: as fast as possible with "
            "current times; backfill: `days` whole past days at the catalog's daily volume.",
        ),
        "rate": Param(generator.default_rate, type="integer", minimum=1, maximum=100_000,
                      description="Events per second (realtime mode)."),
        "minutes": Param(5, type="number", minimum=0.05, maximum=24 * 60,
                         description="How long to run (realtime and fast modes)."),
        "anomaly_rate": Param(generator.anomaly_rate, type="number", minimum=0, maximum=0.5,
                              description="Share of transactions that are injected anomalies (recorded as ground truth)."),
        "seed": Param(None, type=["null", "integer"], minimum=0,
                      description="Same seed, same events. Empty: a random seed, shown in the run's result."),
        "days": Param(1, type="integer", minimum=1, maximum=400, description="Backfill: how many past days."),
        "end_date": Param(None, type=["null", "string"], format="date",
                          description="Backfill: the day after the last generated day (empty: today, UTC)."),
        "malformed_rate": Param(0.0, type="number", minimum=0, maximum=0.5,
                                description="Share of events broken on purpose; they must land in the dead-letter topic."),
    },
    doc_md="""
### Traffic simulator

Press **Trigger** and fill the form to publish realistic shopper traffic to Kafka
(`transactions`, `product_views`, `cart_events`, `inventory`):
sessions browse, fill carts, pay or abandon them; products sell out and are restocked;
a share of transactions are anomalies (high value, unusual quantity, rapid-fire count or amount).

1. **load_catalog** — makes sure PostgreSQL's `product_catalog` holds the simulated shop's
   products with their initial stock (skipped when already loaded).
2. **publish_traffic** — runs the generator; the log shows a progress line every few seconds
   (rate, events per topic, dead letters, delivery failures). Its result (XCom) holds the seed
   to repeat the run, the counts, and the event-time window.

Every injected anomaly and abandoned cart is also written to the `ground_truth` topic, so that
detection quality can be measured. Invalid events never reach the event topics: they go to
`dead_letters` with the reason.
""",
) as dag:

    @task
    def load_catalog() -> str:
        from globalmart.generator.service import load_catalog as load

        written, fingerprint = load(settings)
        print(f"catalog {fingerprint}: {written:,} products written" if written else f"catalog {fingerprint}: already loaded")
        return fingerprint

    @task(execution_timeout=timedelta(hours=25))
    def publish_traffic(params: dict | None = None) -> dict:
        from globalmart.generator.service import generate_from_params

        return generate_from_params(settings, params)

    load_catalog() >> publish_traffic()
