"""The one settings object: endpoints, topic names, thresholds, state directory.

Every value can be overridden by an environment variable named ``GLOBALMART_<FIELD>``
(nested fields use ``__``, e.g. ``GLOBALMART_KAFKA__PORT=19092``) or by a ``.env`` file in
the project root. Secrets have no defaults here: the local platform generates them once
into ``<state_dir>/secrets.env`` (see :mod:`globalmart.platform.secrets`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = "GLOBALMART_"


def default_state_dir() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}STATE_DIR", PROJECT_ROOT / ".state")).resolve()


class TopicSpec(BaseModel):
    name: str
    partitions: int = 3
    retention_ms: int = 7 * 24 * 3600 * 1000


class KafkaSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    # the brokers clients bootstrap from ("host:port,host:port"); unset: host:port, the one local broker
    bootstrap: str | None = None
    # copies of each partition of the platform's topics, and the in-sync copies a write needs
    # before it is acknowledged (producers ask acks=all); one local broker: 1 and 1
    replication_factor: int = Field(1, ge=1)
    min_insync_replicas: int = Field(1, ge=1)
    heap: str = "512m"
    # producer tuning of the generator: large lz4 batches keep the broker's work per event low
    producer_compression: str = "lz4"
    producer_linger_ms: int = 20
    producer_batch_bytes: int = 1_000_000
    transactions: TopicSpec = TopicSpec(name="transactions")
    product_views: TopicSpec = TopicSpec(name="product_views")
    cart_events: TopicSpec = TopicSpec(name="cart_events")
    inventory: TopicSpec = TopicSpec(name="inventory", partitions=1)
    ground_truth: TopicSpec = TopicSpec(name="ground_truth", partitions=1, retention_ms=30 * 24 * 3600 * 1000)
    alerts: TopicSpec = TopicSpec(name="alerts", partitions=1)
    dead_letters: TopicSpec = TopicSpec(name="dead_letters", partitions=1, retention_ms=30 * 24 * 3600 * 1000)
    system_metrics: TopicSpec = TopicSpec(name="system_metrics", partitions=1, retention_ms=24 * 3600 * 1000)
    platform_smoke: TopicSpec = TopicSpec(name="platform_smoke", partitions=1, retention_ms=24 * 3600 * 1000)

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap or f"{self.host}:{self.port}"

    @model_validator(mode="before")
    @classmethod
    def _merge_topic_overrides(cls, data):
        """An env override of one topic field (…__TRANSACTIONS__PARTITIONS) keeps its other defaults."""
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if isinstance(field.default, TopicSpec) and isinstance(data.get(name), dict):
                    data[name] = {**field.default.model_dump(), **data[name]}
        return data

    def topics(self) -> list[TopicSpec]:
        return [v for v in (getattr(self, name) for name in type(self).model_fields) if isinstance(v, TopicSpec)]


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 5433
    superuser: str = "postgres"
    user: str = "globalmart"
    password: SecretStr | None = None
    database: str = "globalmart"
    airflow_database: str = "airflow"
    ferretdb_database: str = "ferretdb"

    def dsn(self, database: str | None = None) -> str:
        """libpq URL for the application role."""
        secret = self.password.get_secret_value() if self.password else ""
        return f"postgresql://{self.user}:{secret}@{self.host}:{self.port}/{database or self.database}"

    def jdbc_url(self, database: str | None = None) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{database or self.database}"


class MongoSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 27017
    database: str = "globalmart"
    # MongoDB with authentication (cluster): a user of the ``admin`` database with read-write on
    # ``database``; unset for the local FerretDB, which PostgreSQL's own access rules guard
    user: str | None = None
    password: SecretStr | None = None

    @property
    def uri(self) -> str:
        if not self.user:
            return f"mongodb://{self.host}:{self.port}/"
        secret = quote(self.password.get_secret_value() if self.password else "", safe="")
        return f"mongodb://{quote(self.user, safe='')}:{secret}@{self.host}:{self.port}/"


class SmtpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 1025
    inbox_port: int = 1080
    sender: str = "GlobalMart Alerts <alerts@globalmart.local>"
    alert_recipients: list[str] = ["data-team@globalmart.local"]

    @property
    def inbox_url(self) -> str:
        return f"http://{self.host}:{self.inbox_port}"


class AlertingSettings(BaseModel):
    """Business alert emails (stock, anomalies, abandonment spikes) sent by the ``alerts`` DAG."""

    # who acts on business alerts; platform failure emails go to ``smtp.alert_recipients``
    recipients: list[str] = Field(["data-team@globalmart.local"], min_length=1)
    smtp_conn_id: str = "smtp_default"  # the Airflow connection of the SMTP server
    subject_prefix: str = "[GlobalMart]"
    # one email per alert kind and product (stock), user (anomaly) or hour (spike) in this period
    throttle_minutes: int = Field(60, ge=0)
    # more emails than this due in one poll are sent as one digest
    digest_threshold: int = Field(5, ge=1)
    digest_rows_per_kind: int = Field(50, ge=1)  # a longer group of a digest ends with "and N more"
    # the alerts DAG's own consumer of the alerts topic: it commits only after the emails are sent
    kafka_conn_id: str = "kafka_default"
    consumer_group: str = "globalmart-alerts-notifier"
    max_alerts_per_batch: int = Field(1000, ge=1)  # one notify() call; a run loops until the topic is drained
    # the AssetWatcher's connection: its own group, auto-commit off (the shared-stream trigger insists)
    watcher_conn_id: str = "kafka_alerts_watcher"
    watcher_group: str = "globalmart-alerts-watcher"
    # safety net: the DAG also runs this often, so an alert is emailed even if a wake-up never came
    catch_up_cron: str = "*/10 * * * *"
    # Airflow Variable (JSON object of the fields above) that overrides them at run time
    variable: str = "globalmart_alerting"


class DecisionSettings(BaseModel):
    """Human-in-the-loop decisions in Airflow's Required Actions: a restock on a critical-stock
    alert, a fraud review on a high-score anomaly (``globalmart.decisions``)."""

    enabled: bool = True  # the alerts DAG opens decisions; false: alert emails only
    restock_dag_id: str = "restock_decision"
    fraud_dag_id: str = "fraud_review"
    # anomalies scoring at least this open a fraud review (alert emails start at thresholds.anomaly_alert_score)
    fraud_review_score: float = Field(0.9, ge=0, le=1)
    # a decision still open this long is escalated by email and closed with its default outcome
    response_timeout_minutes: float = Field(240.0, gt=0)
    restock_default: Literal["reorder", "ignore"] = "ignore"  # the outcome of a restock nobody answered
    fraud_default: Literal["confirm_fraud", "legitimate", "hold_customer"] = "hold_customer"
    # a product or anomaly whose last decision closed less than this ago gets no new one
    throttle_minutes: int = Field(60, ge=0)
    max_open: int = Field(50, ge=1)  # decisions open at once; an alert beyond it opens none (logged)
    # suggested reorder: this many hours of the product's sales over the last sales_lookback_hours,
    # plus what brings the stock back to the low-stock threshold; at least min_restock_quantity
    sales_lookback_hours: float = Field(24.0, gt=0)
    cover_hours: float = Field(72.0, gt=0)
    min_restock_quantity: int = Field(10, ge=1)
    escalation_recipients: list[str] = Field(["data-team-leads@globalmart.local"], min_length=1)
    # the Airflow UI address people open from an email; the platform's own address unless set
    ui_base_url: str | None = None


class AirflowSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    scheduler_health_port: int = 8974
    # task and trigger logs served to the UI while a task runs or defers (Airflow's log server app,
    # bound to ``host``); the local platform serves both kinds from one process and one log folder
    log_server_port: int = 8793
    admin_user: str = "admin"
    admin_password: SecretStr | None = None
    fernet_key: SecretStr | None = None
    jwt_secret: SecretStr | None = None
    parallelism: int = 8

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class SparkSettings(BaseModel):
    master: str = "local[*]"
    # address the driver and executors bind to and advertise; empty: the host's own (containers)
    local_ip: str = "127.0.0.1"
    # a failed gate caches the whole day to collect examples of what failed (at 10x the seed's
    # volume: ~7M product views); the ETL caches the day's transactions
    driver_memory: str = "3g"
    shuffle_partitions: int = 4


class StreamingSettings(BaseModel):
    """The Spark Structured Streaming apps: triggers, watermarks, batch sizes, checkpoints."""

    # the apps share two Spark applications, the marts and the bulk work (streaming.launch.APPLICATIONS):
    # far cheaper on one machine than one each, and the marts' batches never queue behind the bulk
    # ones; false: one spark-submit per app, as on a cluster
    one_application: bool = True
    # the bulk applications (sessions, the lake) run this much nicer than the marts: on a small
    # machine the CPU goes to the half-second mart batches first (0: same priority)
    bulk_niceness: int = Field(10, ge=0, le=19)
    driver_memory: str = "2g"  # of each streaming spark-submit
    trigger_seconds: float = Field(0.5, gt=0)  # micro-batch interval of the mart apps
    # check records against their contracts in Spark SQL generated from the pydantic models
    # (streaming.native_contract) instead of pydantic in a pandas UDF: the same verdicts, no Python
    # worker, but today about 8 times the CPU per record
    native_contract_check: bool = False
    archive_trigger_seconds: float = Field(60.0, gt=0)  # the lake gets fewer, larger Parquet files
    # sessions close 30 and carts are abandoned 15 minutes after their last event: a short
    # trigger would buy no freshness, only per-batch cost taken from the half-second marts
    session_trigger_seconds: float = Field(30.0, gt=0)
    max_offsets_per_trigger: int = Field(500_000, ge=1)  # bounds a catch-up batch after downtime
    # a Kafka partition's share of a batch is split into Spark tasks of at most this many records:
    # the 30 s and 60 s apps' big batches then leave a core free every second or so for the 1 s
    # marts (the FAIR scheduler does not preempt a running task)
    max_records_per_task: int = Field(20_000, ge=1)
    shuffle_partitions: int = Field(2, ge=1)  # fixed into each checkpoint when it is created
    # a failing micro-batch is tried this often (with a doubling pause from batch_retry_seconds),
    # then its failing records are isolated into dead_letters in at most max_isolation_trials
    # trial writes and the rest is committed
    batch_attempts: int = Field(3, ge=1)
    batch_retry_seconds: float = Field(1.0, ge=0)
    max_isolation_trials: int = Field(64, ge=2)
    # a failed query is restarted in its application this often (doubling pause from the delay);
    # the others keep running meanwhile. Then it stays down and supervision tells a person
    query_restarts: int = Field(5, ge=0)
    query_restart_delay_seconds: float = Field(10.0, ge=0)
    # how late an event may arrive and still update its window / session / user state
    sales_watermark_seconds: int = Field(120, ge=0)
    # how late a purchase may arrive (behind the newest) and still join its rapid-fire burst
    rapid_fire_lateness_seconds: int = Field(60, ge=0)
    session_watermark_seconds: int = Field(120, ge=0)
    top_products: int = Field(10, ge=1)  # products ranked per sales window
    # the platform's clock (``globalmart clock``) ticks on every event topic's partitions this
    # often, so that watermarks, and the sessions and carts they close, move when traffic pauses
    clock_tick_seconds: float = Field(10.0, gt=0)
    # state of the session windows lives in RocksDB, not on the JVM heap
    rocksdb_state_store: bool = True


class SupervisionSettings(BaseModel):
    """How the streaming_pipeline DAG supervises the streaming apps: health thresholds, restarts."""

    check_interval_seconds: float = Field(10.0, gt=0)  # how often a supervising trigger polls
    # no heartbeat (stream_status) for this long: the app is down. An idle query reports every
    # 10 s, a busy one after each batch; an app whose trigger is slower gets 3 triggers
    heartbeat_timeout_seconds: float = Field(120.0, gt=0)
    # a starting app (JVM, session, first batch from its checkpoints) may be silent this long
    # before its first batch or idle report; at least the heartbeat timeout
    startup_grace_seconds: float = Field(600.0, gt=0)
    # input seen waiting and no batch completed for this long: stalled (at least 3 triggers)
    stall_seconds: float = Field(300.0, gt=0)
    max_lag_records: int = Field(100_000, ge=0)  # Kafka records behind the high-water marks: lagging
    # a dead app is restarted by its task's retries: exponential backoff from this delay
    restart_retries: int = Field(10, ge=2)
    restart_delay_seconds: float = Field(10.0, gt=0)
    max_restart_delay_seconds: float = Field(600.0, gt=0)
    # a stop (DAG run stopped, restart button) waits this long for the apps to stop before
    # killing them; Airflow kills the task 5 s after asking it to stop
    stop_timeout_seconds: float = Field(4.0, gt=0, lt=5)
    restart_wait_seconds: float = Field(300.0, gt=0)  # the restart button waits this long for fresh progress


class ContractSettings(BaseModel):
    """Bounds of the event contracts (``globalmart.events``): a record outside them is dead-lettered.

    Each bound keeps a value inside what every store and Spark type it reaches can hold (sums get
    ``bigint`` and ``numeric(18, 2)`` columns) and inside what is plausible for the business."""

    max_line_quantity: int = Field(1_000, ge=1)  # units of one product in one transaction line
    max_cart_units: int = Field(10_000, ge=1)  # units in one cart event (a checkout counts the cart)
    max_restock_quantity: int = Field(100_000, ge=1)  # units of one restock delivery
    max_unit_price: float = Field(100_000.0, gt=0)  # dollars
    max_order_value: float = Field(1_000_000.0, gt=0)  # dollars: a transaction's total, a cart's value
    max_lines: int = Field(100, ge=1)  # lines of one transaction
    max_text_length: int = Field(256, ge=1)  # categories, search queries (ids have 64)
    # an event's time must lie within this window around when the broker received it: not hours
    # ahead (clock skew is seconds), not older than the topics keep records (7 days) plus a day
    # of backfill. The window is also how long a business id is remembered to count it once
    max_event_age_hours: float = Field(8 * 24, gt=0)
    max_event_lead_seconds: float = Field(300.0, ge=0)


class Thresholds(BaseModel):
    """Business thresholds from the requirement notes."""

    high_value_transaction: float = 5000.0
    unusual_quantity: int = 10
    rapid_transactions_per_minute: int = 5
    rapid_spend_5min: float = 10000.0
    anomaly_alert_score: float = 0.8
    low_stock: int = 10
    critical_stock: int = 5
    session_timeout_minutes: int = 30
    cart_abandonment_minutes: int = 15
    abandonment_spike_per_hour: int = 20


class Catalog(BaseModel):
    """The simulated business: sizes from the requirement notes, deterministic for ``seed``."""

    seed: int = 42
    users: int = Field(10_000_000, ge=1, le=99_999_999)
    products: int = Field(250_000, ge=1, le=999_999)
    categories: int = Field(100, ge=1, le=100)
    countries: list[str] = ["USA", "UK", "Canada", "Germany", "France"]
    # share of users per country (same order as ``countries``) and each country's UTC offset,
    # so that every country's shoppers follow the diurnal curve in their own local time
    country_weights: list[float] = [0.45, 0.18, 0.12, 0.14, 0.11]
    country_utc_offsets: list[int] = [-5, 0, -5, 1, 1]
    payment_methods: list[str] = ["credit_card", "paypal", "debit_card", "apple_pay", "google_pay"]
    payment_weights: list[float] = [0.42, 0.22, 0.2, 0.1, 0.06]
    daily_transactions: int = 100_000

    @model_validator(mode="after")
    def _aligned(self):
        if not (len(self.countries) == len(self.country_weights) == len(self.country_utc_offsets)):
            raise ValueError("countries, country_weights and country_utc_offsets must have the same length")
        if len(self.payment_methods) != len(self.payment_weights):
            raise ValueError("payment_methods and payment_weights must have the same length")
        return self


class GeneratorSettings(BaseModel):
    """Shopper behaviour of the traffic generator (the funnel, anomalies, restocks)."""

    mean_views_per_session: float = Field(3.0, ge=1)
    preferred_category_share: float = Field(0.7, ge=0, le=1)  # views in the user's favourite categories
    product_popularity_zipf: float = Field(1.1, gt=0)  # Zipf exponent of product popularity
    cart_rate: float = Field(0.6, ge=0, le=1)  # sessions that add something to the cart
    mean_extra_cart_adds: float = Field(0.7, ge=0)  # adds beyond the first
    remove_rate: float = Field(0.2, ge=0, le=1)
    update_rate: float = Field(0.2, ge=0, le=1)
    checkout_rate: float = Field(0.7, ge=0, le=1)  # carts that are bought; the rest are abandoned
    anomaly_rate: float = Field(0.02, ge=0, le=0.5)  # share of transactions that are injected anomalies
    anomaly_kinds: list[str] = ["high_value", "unusual_quantity", "rapid_fire_count", "rapid_fire_amount"]
    restock_below: int = Field(20, ge=0)  # a product under this stock is reordered
    restock_lead_minutes: tuple[int, int] = (20, 120)
    random_restocks_per_hour: float = Field(30.0, ge=0)
    # relative session arrivals per hour of the shopper's local day (0..23)
    diurnal_curve: list[float] = Field(
        [0.35, 0.25, 0.18, 0.15, 0.15, 0.2, 0.35, 0.55, 0.75, 0.9, 1.0, 1.05,
         1.1, 1.05, 1.0, 1.0, 1.05, 1.15, 1.3, 1.45, 1.5, 1.35, 1.0, 0.6],
        min_length=24, max_length=24,
    )
    default_rate: int = Field(200, ge=1)  # events/s of the paced real-time mode
    progress_seconds: float = Field(10.0, gt=0)  # progress line period when not on a terminal


class PerformanceWeights(BaseModel):
    """Relative weights of a product's percentile ranks in its daily performance score."""

    revenue: float = Field(0.4, ge=0)
    units: float = Field(0.2, ge=0)
    conversion: float = Field(0.2, ge=0)
    views: float = Field(0.1, ge=0)
    cart_adds: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _some_weight(self):
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one performance weight must be positive")
        return self


class WarehouseSettings(BaseModel):
    """The daily batch: RFM look-back, moving-average windows, product score weights, quality gates."""

    rfm_lookback_days: int = Field(365, ge=1)
    daily_moving_average_days: int = Field(7, ge=1)
    weekly_moving_average_weeks: int = Field(4, ge=1)
    monthly_moving_average_months: int = Field(3, ge=1)
    performance_weights: PerformanceWeights = PerformanceWeights()
    # raw gate: a day's transactions must number within these multiples of the daily average
    # of the preceding ``volume_trailing_days`` days that have data
    volume_trailing_days: int = Field(7, ge=1)
    volume_min_ratio: float = Field(0.5, ge=0)
    volume_max_ratio: float = Field(2.0, gt=0)
    # raw gate, hourly coverage: every hour (UTC) of the day holds at least this share of the
    # day's hourly average, rounded down (so on a day too sparse for that to be one transaction,
    # an empty hour is plausible and passes); 0 turns the check off
    hourly_min_share: float = Field(0.1, ge=0, le=1)
    # before the raw gate the run waits until the raw archiver has committed past the events
    # the broker received up to this long after the last day's end (producers buffering, a
    # generator catching up); later ones reach the lake afterwards and a re-run picks them up
    completeness_grace_seconds: float = Field(600.0, ge=0)
    # how long it waits, checking this often, before it emails and fails the run: 02:00 + 2 h
    # leaves the batch its time before the 06:00 deadline
    completeness_timeout_seconds: float = Field(7200.0, gt=0)
    completeness_poll_seconds: float = Field(30.0, gt=0)
    # validation runs listed on the Data Docs index page (each build re-reads every listed one)
    data_docs_index_runs: int = Field(100, ge=1)
    # the daily_batch DAG runs at this local time of ``schedule_timezone`` for the previous
    # day, and emails when a run is not done by ``deadline_hour`` (same timezone)
    schedule_timezone: str = "UTC"
    schedule_hour: int = Field(2, ge=0, le=23)
    deadline_hour: int = Field(6, ge=1, le=24)
    # documents per MongoDB write of the publish step, and writes in flight at once (the
    # server stores one batch while the next is converted)
    publish_batch_size: int = Field(10_000, ge=1)
    publish_writers: int = Field(3, ge=1)

    @property
    def moving_average_periods(self) -> dict[str, int]:
        """Periods in each sales-trend granularity's moving average."""
        return {"daily": self.daily_moving_average_days, "weekly": self.weekly_moving_average_weeks,
                "monthly": self.monthly_moving_average_months}


class ApiSettings(BaseModel):
    """The read API (FastAPI under uvicorn) over the marts and the warehouse."""

    host: str = "127.0.0.1"
    port: int = 8000
    key: SecretStr | None = None  # sent as the ``X-API-Key`` header; generated into the secrets file
    default_page_size: int = Field(100, ge=1)
    max_page_size: int = Field(1000, ge=1)
    postgres_connections: int = Field(8, ge=1)  # pooled per worker process; each read holds one in a thread
    # uvicorn worker processes (one core each at most: Python's GIL). Each holds its own pool and
    # answer cache, and /metrics counts the requests of the worker that answers it
    workers: int = Field(1, ge=1)
    # the summary and sales answers are kept this long (the marts change once a second); 0: no cache
    cache_seconds: float = Field(1.0, ge=0)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class DashboardSettings(BaseModel):
    """The analysts' dashboards (Streamlit)."""

    host: str = "127.0.0.1"
    port: int = 8501
    user: str = "analyst"
    password: SecretStr | None = None  # generated into the secrets file
    refresh_seconds: float = Field(5.0, gt=0)  # live pages re-read their marts this often
    live_minutes: int = Field(15, ge=1)  # "the last minutes" of the live sales page
    airflow_runs_per_dag: int = Field(5, ge=1)  # the platform page's last runs of each DAG

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
    )

    state_dir: Path = Field(default_factory=default_state_dir)
    # the data lake (raw events as Parquet); <state_dir>/lake unless set
    lake_dir: Path = Field(default_factory=lambda data: data["state_dir"] / "lake")
    # the daily batch's staging area (write-audit-publish): <warehouse_dir>/staging/<day>/<table>
    warehouse_dir: Path = Field(default_factory=lambda data: data["state_dir"] / "warehouse")
    # validation results and Data Docs of the daily batch's quality gates
    great_expectations_dir: Path = Field(default_factory=lambda data: data["state_dir"] / "great_expectations")
    # JVM jars fetched from Maven Central (kafka/, spark/); <state_dir>/jars unless set (an image
    # carries them outside its data volume)
    jars_dir: Path = Field(default_factory=lambda data: data["state_dir"] / "jars")
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    mongo: MongoSettings = MongoSettings()
    smtp: SmtpSettings = SmtpSettings()
    alerting: AlertingSettings = AlertingSettings()
    decisions: DecisionSettings = DecisionSettings()
    airflow: AirflowSettings = AirflowSettings()
    spark: SparkSettings = SparkSettings()
    thresholds: Thresholds = Thresholds()
    contracts: ContractSettings = ContractSettings()
    catalog: Catalog = Catalog()
    generator: GeneratorSettings = GeneratorSettings()
    streaming: StreamingSettings = StreamingSettings()
    supervision: SupervisionSettings = SupervisionSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    api: ApiSettings = ApiSettings()
    dashboards: DashboardSettings = DashboardSettings()

    @property
    def spark_jars(self) -> list[Path]:
        """Connector jars for spark.jars: Kafka source/sink, PostgreSQL JDBC, Mongo connector."""
        return sorted((self.jars_dir / "spark").glob("*.jar"))

    @property
    def checkpoints_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.env"


def env_overrides(settings: Settings) -> dict[str, str]:
    """Environment that gives a child process these settings' topics, database and lake
    (the parts a test or benchmark changes to run beside the live platform)."""
    env = {f"{ENV_PREFIX}KAFKA__{key.upper()}__NAME": getattr(settings.kafka, key).name
           for key, field in KafkaSettings.model_fields.items() if field.annotation is TopicSpec}
    env[f"{ENV_PREFIX}POSTGRES__DATABASE"] = settings.postgres.database
    env[f"{ENV_PREFIX}LAKE_DIR"] = str(settings.lake_dir)
    env[f"{ENV_PREFIX}WAREHOUSE_DIR"] = str(settings.warehouse_dir)
    env[f"{ENV_PREFIX}GREAT_EXPECTATIONS_DIR"] = str(settings.great_expectations_dir)
    env[f"{ENV_PREFIX}MONGO__DATABASE"] = settings.mongo.database
    return env


def load_settings() -> Settings:
    """Read settings from env, the project's ``.env`` and the generated secrets file."""
    state_dir = default_state_dir()
    env_files = [PROJECT_ROOT / ".env", state_dir / "secrets.env"]
    # a service running as another OS user (PostgreSQL) cannot read the secrets; it needs none
    return Settings(_env_file=[f for f in env_files if os.access(f, os.R_OK)] or None)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
