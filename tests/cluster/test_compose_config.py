"""docker-compose.yaml, as the Compose CLI (v5, built by `make setup`) resolves it: pinned images,
settings that exist, and hosts and ports that agree with the cluster settings profile
(deploy/cluster.env). No Docker engine is needed: `docker compose config` only reads files."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import BaseModel

from globalmart.settings import ENV_PREFIX, PROJECT_ROOT, Settings

pytestmark = pytest.mark.cluster

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yaml"
CLUSTER_PROFILE = PROJECT_ROOT / "deploy" / "cluster.env"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
PROJECT_VERSION = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
# a one-shot service runs once and exits; every other one is long-running
ONE_SHOT = {"globalmart-init", "objectstore-init"}


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def compose_binary(settings: Settings) -> Path:
    binary = settings.state_dir / "bin" / "docker-compose"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make setup` (it builds the Compose CLI)")
    return binary


@pytest.fixture(scope="module")
def secrets_file(tmp_path_factory) -> Path:
    """Every secret .env.example names, each with a distinct stand-in value."""
    names = read_env_file(ENV_EXAMPLE)
    path = tmp_path_factory.mktemp("compose") / "secrets.env"
    path.write_text("".join(f"{name}=stand-in-{name.lower()}\n" for name in names))
    return path


@pytest.fixture(scope="module")
def compose(settings, secrets_file):
    """Runs the Compose CLI on the project's file: only the stand-in secrets, nothing of the
    caller's environment or a developer's own .env."""
    binary = compose_binary(settings)

    def run(*args: str) -> str:
        command = [str(binary), "--project-directory", str(PROJECT_ROOT), "--file", str(COMPOSE_FILE),
                   "--env-file", str(secrets_file), "--profile", "*", *args]
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{shlex.join(command)} failed:\n{done.stderr}"
        return done.stdout

    return run


@pytest.fixture(scope="module")
def config(compose) -> dict:
    return json.loads(compose("config", "--format", "json"))


@pytest.fixture(scope="module")
def services(config) -> dict[str, dict]:
    return config["services"]


@pytest.fixture(scope="module")
def cluster() -> Settings:
    """The cluster settings profile, alone (no local .env, no caller's GLOBALMART_* variables)."""
    return _settings_from(read_env_file(CLUSTER_PROFILE))


def _settings_from(env: dict[str, str]) -> Settings:
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    try:
        for name in saved:
            del os.environ[name]
        os.environ.update(env)
        return Settings(_env_file=None)
    finally:
        for name in env:
            os.environ.pop(name, None)
        os.environ.update(saved)


def setting_field(name: str):
    """The settings field a GLOBALMART_* variable sets, or None when no field has that name."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix(ENV_PREFIX).lower().split("__")
    field = None
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if depth < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return None
            model = annotation
    return field


def test_the_whole_stack_is_there(services, config, compose):
    """Three brokers, a Spark master and two workers, the stores, every Airflow component with
    Celery workers and their broker, the mail catcher, the object store, the API and dashboards."""
    expected = {
        "kafka-1", "kafka-2", "kafka-3", "spark-master", "spark-worker-1", "spark-worker-2",
        "postgres", "mongodb", "celery-broker", "maildev", "objectstore", "objectstore-init",
        "globalmart-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
        "airflow-triggerer", "airflow-worker", "flower", "streaming-clock", "api", "dashboards",
    }
    assert set(services) == expected
    assert services["airflow-worker"]["deploy"]["replicas"] >= 2
    assert set(config["volumes"]) == {
        "globalmart-state", "postgres-data", "mongo-data", "kafka-1-data", "kafka-2-data", "kafka-3-data",
        "celery-broker-data", "objectstore-data",
    }
    # the optional services sit in profiles: a plain `docker compose up` leaves them out
    optional = {name for name, service in services.items() if service.get("profiles")}
    assert optional == {"objectstore", "objectstore-init", "flower"}


def test_every_image_is_pinned_by_version(services):
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?", tag), f"{name}: {image} is not pinned"
        if "build" in service:
            assert image == f"globalmart:{PROJECT_VERSION}", f"{name}: the project's image carries the project's version"
    for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            image = line.split()[1]
            assert re.search(r":\d+\.\d+\.\d+", image), f"Dockerfile: {image} is not pinned"


def test_every_globalmart_variable_is_a_real_setting(services):
    """A misspelt variable would be ignored silently (extra settings are ignored): each must name a
    field, and together they must make valid settings."""
    seen = {}
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if variable.startswith(ENV_PREFIX):
                assert setting_field(variable) is not None, f"{name}: {variable} is no setting"
                seen[variable] = value or ""
    for variable in read_env_file(CLUSTER_PROFILE):
        assert setting_field(variable) is not None, f"deploy/cluster.env: {variable} is no setting"
    assert len(seen) > 30
    project = services["airflow-worker"]["environment"]
    settings = _settings_from({k: v or "" for k, v in project.items() if k.startswith(ENV_PREFIX)})
    assert settings.mongo.password.get_secret_value() == "stand-in-mongo_password"


def test_secrets_come_from_the_env_file_only(compose):
    """Every variable the compose file needs is in .env.example, and none is given a value in the
    repository (the compose file and the cluster profile name no secret)."""
    variables = compose("config", "--variables", "--format", "json")
    documented = set(read_env_file(ENV_EXAMPLE)) | {"KAFKA_CLUSTER_ID"}
    assert set(json.loads(variables)) <= documented
    assert not [name for name in read_env_file(CLUSTER_PROFILE) if re.search(r"PASSWORD|SECRET|_KEY$", name)]
    secret_lines = re.findall(r"^\s*(\w*(?:PASSWORD|SECRET|_KEY|_AUTH)\w*): *(.*)$", COMPOSE_FILE.read_text(), re.M)
    assert len(secret_lines) >= 10
    for name, value in secret_lines:
        assert value.startswith("${"), f"docker-compose.yaml: {name} is not taken from .env"


def _exposed(service: dict) -> set[int]:
    return {int(port) for port in service.get("expose", [])}


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_hosts_and_ports_match_the_cluster_profile(services, cluster):
    """Each address in the cluster profile is a service of the compose file listening on that port."""
    addresses = {
        "postgres": (cluster.postgres.host, cluster.postgres.port),
        "mongo": (cluster.mongo.host, cluster.mongo.port),
        "smtp": (cluster.smtp.host, cluster.smtp.port),
        "inbox": (cluster.smtp.host, cluster.smtp.inbox_port),
        "airflow": (cluster.airflow.host, cluster.airflow.port),
        "api": (cluster.api.host, cluster.api.port),
        "dashboards": (cluster.dashboards.host, cluster.dashboards.port),
    }
    spark_master = urlsplit(cluster.spark.master)
    assert spark_master.scheme == "spark"
    addresses["spark"] = (spark_master.hostname, spark_master.port)
    for broker in cluster.kafka.bootstrap_servers.split(","):
        host, _, port = broker.partition(":")
        addresses[f"kafka {host}"] = (host, int(port))
        addresses[f"kafka controller {host}"] = (host, cluster.kafka.controller_port)
    for what, (host, port) in addresses.items():
        assert host in services, f"{what}: no service {host}"
        assert port in _exposed(services[host]), f"{what}: {host} does not expose {port}"

    # the commands and images' own settings listen where the profile says
    assert _option(services["api"]["command"], "--port") == str(cluster.api.port)
    assert _option(services["dashboards"]["command"], "--server.port") == str(cluster.dashboards.port)
    master = services["spark-master"]["command"]
    assert (_option(master, "--host"), _option(master, "--port")) == (spark_master.hostname, str(spark_master.port))
    for worker in ("spark-worker-1", "spark-worker-2"):
        assert cluster.spark.master in services[worker]["command"]
    maildev = services["maildev"]["environment"]
    assert (maildev["MAILDEV_SMTP_PORT"], maildev["MAILDEV_WEB_PORT"]) == (str(cluster.smtp.port), str(cluster.smtp.inbox_port))
    assert f"localhost:{cluster.airflow.port}/" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    scheduler = services["airflow-scheduler"]
    assert cluster.airflow.scheduler_health_port in _exposed(scheduler)
    assert f"localhost:{cluster.airflow.scheduler_health_port}/" in " ".join(scheduler["healthcheck"]["test"])
    for broker in ("kafka-1", "kafka-2", "kafka-3"):
        env = services[broker]["environment"]
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{broker}:{cluster.kafka.port}"
        assert f"CONTROLLER://:{cluster.kafka.controller_port}" in env["KAFKA_LISTENERS"]
        assert f"{broker}:{cluster.kafka.controller_port}" in env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert cluster.kafka.bootstrap_servers.startswith(f"{cluster.kafka.host}:{cluster.kafka.port}")

    # Celery's result backend is the settings' Airflow database
    backend = urlsplit(services["airflow-worker"]["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert (backend.hostname, backend.port, backend.username, backend.path) == (
        cluster.postgres.host, cluster.postgres.port, cluster.postgres.user, f"/{cluster.postgres.airflow_database}")

    # published ports listen on the host's loopback only
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port['target']} beyond loopback"


def test_kafka_replication_comes_from_the_settings(services, cluster):
    """The brokers' command turns the profile's replication settings into Kafka's: run it with
    the broker's environment, the image's start script replaced by `env`."""
    assert cluster.kafka.replication_factor == 3 and cluster.kafka.min_insync_replicas == 2
    brokers = [name for name in services if name.startswith("kafka-")]
    assert len(brokers) >= cluster.kafka.replication_factor > cluster.kafka.min_insync_replicas >= 1
    for broker in brokers:
        service = services[broker]
        shell, flag, script = service["command"]
        script = script.replace("$$", "$").replace("exec /etc/kafka/docker/run", "env")
        env = {"PATH": os.environ["PATH"], **service["environment"]}
        out = subprocess.run([shell, flag, script], env=env, capture_output=True, text=True, check=True).stdout
        kafka = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("KAFKA_"))
        rf, isr = str(cluster.kafka.replication_factor), str(cluster.kafka.min_insync_replicas)
        assert kafka["KAFKA_DEFAULT_REPLICATION_FACTOR"] == kafka["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == rf
        assert kafka["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == rf
        assert kafka["KAFKA_MIN_INSYNC_REPLICAS"] == kafka["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == isr
        assert kafka["KAFKA_HEAP_OPTS"] == f"-Xmx{cluster.kafka.heap} -Xms{cluster.kafka.heap}"


def test_health_checks_conditions_and_limits(services):
    for name, service in services.items():
        assert service.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory") or name in ONE_SHOT - {
            "globalmart-init"}, f"{name} has no memory limit"
        if name not in ONE_SHOT | {"streaming-clock"}:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, how in (service.get("depends_on") or {}).items():
            wanted = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert how["condition"] == wanted, f"{name} → {dependency}: {how['condition']}"
    # every Airflow component starts after the one-shot migration, on the Celery executor
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert "globalmart-init" in services[name]["depends_on"]
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_a_container_gets_airflow_configured_for_the_cluster(services):
    """The image's entry point (globalmart.platform.container), given a Celery worker's environment
    from the compose file: Airflow's configuration and connections point at the services."""
    env = {k: v or "" for k, v in services["airflow-worker"]["environment"].items()}
    probe = (
        "import json, os; from globalmart.platform.container import container_environment;"
        "print(json.dumps(container_environment(dict(os.environ))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert result["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert "@postgres:5432/airflow" in result["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert "SPARK_LOCAL_IP" not in result  # each container binds and advertises its own address
    kafka = json.loads(result["AIRFLOW_CONN_KAFKA_DEFAULT"])
    assert kafka["extra"]["bootstrap.servers"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert json.loads(result["AIRFLOW_CONN_SPARK_DEFAULT"])["host"] == "spark://spark-master:7077"
    mongo = json.loads(result["AIRFLOW_CONN_MONGO_DEFAULT"])
    assert (mongo["host"], mongo["login"], mongo["password"], mongo["extra"]["authSource"]) == (
        "mongodb", "globalmart", "stand-in-mongo_password", "admin")


def test_the_cluster_lock_agrees_with_the_project_lock():
    """The image installs requirements.lock plus the Celery additions: a package both name has
    one version, the locked one."""
    def pins(path: Path) -> dict[str, str]:
        return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", path.read_text(), re.M))

    project, cluster_lock = pins(PROJECT_ROOT / "requirements.lock"), pins(PROJECT_ROOT / "deploy" / "requirements-cluster.lock")
    assert {"apache-airflow-providers-celery", "celery", "redis"} <= set(cluster_lock)
    assert {name: version for name, version in cluster_lock.items() if project.get(name, version) != version} == {}
