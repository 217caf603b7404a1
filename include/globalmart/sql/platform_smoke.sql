-- Rows the platform_smoke DAG's Spark job loads from Kafka (one per event, replay-safe).
CREATE TABLE IF NOT EXISTS platform_smoke_events (
    run_id          text        NOT NULL,
    event_id        text        NOT NULL,
    seq             integer     NOT NULL,
    amount          numeric(12, 2) NOT NULL,
    produced_at     timestamptz NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, event_id)
);
