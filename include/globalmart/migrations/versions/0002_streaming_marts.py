"""Real-time marts of the streaming apps, their exactly-once bookkeeping, dead letters, alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- one row per micro-batch written by a foreachBatch sink, committed in the same transaction
    -- as the batch's data: a replayed batch finds its row and changes nothing. checkpoint_id is
    -- the streaming query id, which lives in the checkpoint (a new checkpoint starts a new series).
    CREATE TABLE stream_commits (
        query_name    text NOT NULL,
        checkpoint_id uuid NOT NULL,
        batch_id      bigint NOT NULL,
        app           text NOT NULL,
        rows_written  integer NOT NULL DEFAULT 0,
        spark_ms      integer,  -- computing the batch's rows (Spark jobs, collected to the driver)
        write_ms      integer,  -- the PostgreSQL transaction
        committed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (query_name, checkpoint_id, batch_id)
    );

    -- every micro-batch's progress as Spark reports it (heartbeat, rates, lag, late rows)
    CREATE TABLE stream_progress (
        query_name        text NOT NULL,
        run_id            uuid NOT NULL,
        batch_id          bigint NOT NULL,
        app               text NOT NULL,
        checkpoint_id     uuid NOT NULL,
        trigger_at        timestamptz NOT NULL,
        duration_ms       integer NOT NULL,
        input_rows        bigint NOT NULL,
        input_rows_per_second     double precision,
        processed_rows_per_second double precision,
        watermark         timestamptz,
        state_rows        bigint,
        late_rows_dropped bigint NOT NULL DEFAULT 0,
        start_offsets     jsonb,
        end_offsets       jsonb,
        latest_offsets    jsonb,
        durations_ms      jsonb,
        PRIMARY KEY (query_name, run_id, batch_id)
    );
    CREATE INDEX stream_progress_recent ON stream_progress (app, trigger_at DESC);

    -- the current state of every streaming query: what a supervisor looks at
    CREATE TABLE stream_status (
        query_name     text PRIMARY KEY,
        app            text NOT NULL,
        run_id         uuid NOT NULL,
        checkpoint_id  uuid NOT NULL,
        status         text NOT NULL CHECK (status IN ('running', 'idle', 'stopped', 'failed')),
        last_batch_id  bigint,
        last_seen_at   timestamptz NOT NULL,
        error          text
    );

    -- records that broke their event contract, kept whole with the reason
    CREATE TABLE dead_letters (
        kafka_topic     text NOT NULL,
        kafka_partition integer NOT NULL,
        kafka_offset    bigint NOT NULL,
        source_topic    text NOT NULL,
        stage           text NOT NULL,
        reason          text NOT NULL,
        payload         text NOT NULL,
        kafka_timestamp timestamptz,
        detected_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
    );
    CREATE INDEX dead_letters_recent ON dead_letters (detected_at DESC);

    -- alert outbox: written with the data that raised it, then published to the alerts topic
    CREATE TABLE alerts (
        alert_id     text PRIMARY KEY,
        app          text NOT NULL,
        kind         text NOT NULL,
        severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        subject      text NOT NULL,
        detail       jsonb NOT NULL,
        event_time   timestamptz NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    );
    CREATE INDEX alerts_unpublished ON alerts (app, created_at) WHERE published_at IS NULL;
    CREATE INDEX alerts_recent ON alerts (kind, event_time DESC);

    -- sales metrics: tumbling event-time windows; category 'ALL' holds each country's totals
    CREATE TABLE sales_window_metrics (
        granularity      text NOT NULL CHECK (granularity IN ('1m', '1h')),
        window_start     timestamptz NOT NULL,
        window_end       timestamptz NOT NULL,
        category         text NOT NULL,
        country          text NOT NULL,
        revenue          numeric(14, 2) NOT NULL,
        transactions     integer NOT NULL,
        units            integer NOT NULL,
        avg_order_value  numeric(12, 2) NOT NULL,
        last_received_at timestamptz NOT NULL,
        updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (granularity, window_start, category, country)
    );
    CREATE INDEX sales_window_metrics_recent ON sales_window_metrics (granularity, window_start DESC);

    CREATE TABLE product_window_sales (
        granularity   text NOT NULL CHECK (granularity IN ('1m', '1h')),
        window_start  timestamptz NOT NULL,
        window_end    timestamptz NOT NULL,
        product_id    text NOT NULL,
        category      text NOT NULL,
        units         integer NOT NULL,
        revenue       numeric(14, 2) NOT NULL,
        transactions  integer NOT NULL,
        updated_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (granularity, window_start, product_id)
    );
    CREATE INDEX product_window_sales_rank ON product_window_sales (granularity, window_start DESC, revenue DESC);

    -- every product of a window with its revenue rank; the API keeps the top N
    CREATE VIEW product_window_ranking AS
    SELECT *, rank() OVER (PARTITION BY granularity, window_start ORDER BY revenue DESC, product_id) AS revenue_rank
    FROM product_window_sales;

    CREATE TABLE anomalies (
        anomaly_id        text PRIMARY KEY,
        kind              text NOT NULL,
        user_id           text NOT NULL,
        country           text NOT NULL,
        transaction_ids   text[] NOT NULL,
        first_event_time  timestamptz NOT NULL,
        last_event_time   timestamptz NOT NULL,
        amount            numeric(14, 2) NOT NULL,
        observed          double precision NOT NULL,
        threshold         double precision NOT NULL,
        score             double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
        description       text NOT NULL,
        last_received_at  timestamptz NOT NULL,  -- Kafka timestamp of the transaction that raised it
        -- amount and time of each transaction, in transaction_ids order: a burst that continues
        -- in a later micro-batch is recomputed from them
        purchase_amounts  double precision[] NOT NULL,
        purchase_times    timestamptz[] NOT NULL,
        detected_at       timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX anomalies_recent ON anomalies (kind, last_event_time DESC);
    CREATE INDEX anomalies_user ON anomalies (user_id);

    CREATE TABLE inventory_stock (
        product_id       text PRIMARY KEY,
        category         text,
        initial_stock    integer NOT NULL,
        units_sold       bigint NOT NULL DEFAULT 0,
        units_restocked  bigint NOT NULL DEFAULT 0,
        stock            integer NOT NULL,
        state            text NOT NULL CHECK (state IN ('ok', 'low', 'critical')),
        in_catalog       boolean NOT NULL,
        last_event_time  timestamptz,
        updated_at       timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX inventory_stock_short ON inventory_stock (state, stock) WHERE state <> 'ok';

    CREATE TABLE inventory_history (
        product_id       text NOT NULL,
        checkpoint_id    uuid NOT NULL,
        batch_id         bigint NOT NULL,
        stock_before     integer NOT NULL,
        units_sold       integer NOT NULL,
        units_restocked  integer NOT NULL,
        stock_after      integer NOT NULL,
        state_before     text NOT NULL,
        state_after      text NOT NULL,
        first_event_time timestamptz NOT NULL,
        last_event_time  timestamptz NOT NULL,
        recorded_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (product_id, checkpoint_id, batch_id)
    );
    CREATE INDEX inventory_history_product ON inventory_history (product_id, last_event_time DESC);

    -- shopper sessions: 30 minutes without activity closes one
    CREATE TABLE sessions (
        user_id              text NOT NULL,
        session_start        timestamptz NOT NULL,
        session_end          timestamptz NOT NULL,
        duration_seconds     double precision NOT NULL,
        country              text NOT NULL,
        events               integer NOT NULL,
        views                integer NOT NULL,
        cart_adds            integer NOT NULL,
        cart_removes         integer NOT NULL,
        cart_updates         integer NOT NULL,
        checkouts            integer NOT NULL,
        purchases            integer NOT NULL,
        purchase_value       numeric(14, 2) NOT NULL,
        categories_viewed    text[] NOT NULL,
        categories_carted    text[] NOT NULL,
        categories_purchased text[] NOT NULL,
        session_ids          text[] NOT NULL,
        recorded_at          timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, session_start)
    );
    CREATE INDEX sessions_start ON sessions (session_start DESC);

    -- carts with items and no purchase for the abandonment timeout
    CREATE TABLE cart_abandonments (
        user_id          text NOT NULL,
        cart_started_at  timestamptz NOT NULL,
        last_activity_at timestamptz NOT NULL,
        abandoned_at     timestamptz NOT NULL,
        country          text NOT NULL,
        items            integer NOT NULL,
        cart_value       numeric(14, 2) NOT NULL,
        categories       text[] NOT NULL,
        session_ids      text[] NOT NULL,
        recorded_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, cart_started_at)
    );
    CREATE INDEX cart_abandonments_time ON cart_abandonments (abandoned_at DESC);

    -- view → cart → purchase, by the hour a session started, country and category
    CREATE VIEW funnel_hourly AS
    WITH touched AS (
        SELECT date_trunc('hour', session_start) AS hour, country, category,
               bool_or(stage = 'view') AS viewed, bool_or(stage = 'cart') AS carted,
               bool_or(stage = 'purchase') AS purchased
        FROM (
            SELECT user_id, session_start, country, unnest(categories_viewed) AS category, 'view' AS stage FROM sessions
            UNION ALL
            SELECT user_id, session_start, country, unnest(categories_carted), 'cart' FROM sessions
            UNION ALL
            SELECT user_id, session_start, country, unnest(categories_purchased), 'purchase' FROM sessions
        ) stages
        GROUP BY user_id, session_start, hour, country, category
    )
    SELECT hour, country, category,
           count(*) FILTER (WHERE viewed) AS sessions_viewed,
           count(*) FILTER (WHERE carted) AS sessions_carted,
           count(*) FILTER (WHERE purchased) AS sessions_purchased,
           round(count(*) FILTER (WHERE carted)::numeric / nullif(count(*) FILTER (WHERE viewed), 0), 4) AS view_to_cart,
           round(count(*) FILTER (WHERE purchased)::numeric / nullif(count(*) FILTER (WHERE carted), 0), 4) AS cart_to_purchase
    FROM touched
    GROUP BY hour, country, category;

    CREATE VIEW abandonments_hourly AS
    SELECT date_trunc('hour', abandoned_at) AS hour, country, count(*) AS abandoned_carts,
           sum(cart_value) AS abandoned_value
    FROM cart_abandonments
    GROUP BY 1, 2;

    -- late events the watermark turned away, per query and hour
    CREATE VIEW late_events_hourly AS
    SELECT app, query_name, date_trunc('hour', trigger_at) AS hour, sum(late_rows_dropped) AS late_rows_dropped
    FROM stream_progress
    WHERE late_rows_dropped > 0
    GROUP BY 1, 2, 3;
    """)


def downgrade() -> None:
    op.execute("""
    DROP VIEW late_events_hourly, abandonments_hourly, funnel_hourly, product_window_ranking;
    DROP TABLE cart_abandonments, sessions, inventory_history, inventory_stock, anomalies,
               product_window_sales, sales_window_metrics, alerts, dead_letters, stream_status,
               stream_progress, stream_commits;
    """)
