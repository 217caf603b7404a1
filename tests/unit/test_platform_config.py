import configparser
import socket

import pytest

from globalmart.platform import launcher
from globalmart.platform.services import service_by_name, services
from globalmart.platform.supervisor import render_config


def test_supervisord_config_has_every_service_and_no_secrets(settings):
    text = render_config(settings, services(settings))
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    programs = {s.removeprefix("program:") for s in parser.sections() if s.startswith("program:")}
    assert programs == {
        "postgres", "kafka", "ferretdb", "maildev",
        "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-log-server",
        "streaming-clock", "api", "dashboards",
    }
    assert settings.postgres.password.get_secret_value() not in text
    assert parser.get("program:postgres", "stopsignal") == "INT"


def test_every_service_listens_on_loopback_only(settings):
    for service in services(settings):
        joined = " ".join(service.command)
        assert "0.0.0.0" not in joined, service.name
    # Airflow's own log servers bind every interface: the platform serves task logs itself, on its host
    assert all("--skip-serve-logs" in service_by_name(settings, name).command
               for name in ("airflow-scheduler", "airflow-triggerer"))
    log_server = service_by_name(settings, "airflow-log-server").command
    assert log_server[log_server.index("--host") + 1] == settings.airflow.host == "127.0.0.1"
    properties = launcher.kafka_server_properties(settings)
    listeners = next(line for line in properties.splitlines() if line.startswith("listeners="))
    k = settings.kafka
    assert k.host == "127.0.0.1"
    assert listeners == f"listeners=PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}"


def test_taken_port_is_reported_with_the_setting_to_change(settings):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        kafka = next(s for s in services(settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"port": port})})) if s.name == "kafka")
        with pytest.raises(launcher.PlatformError) as error:
            launcher.check_ports([kafka])
    message = str(error.value)
    assert f"port {port}" in message and "GLOBALMART_KAFKA__PORT" in message


def test_the_ui_reads_running_task_logs_from_the_platforms_log_server(settings):
    """Airflow builds a running task's log URL from the host the task recorded and the log server
    port: both must point at the airflow-log-server service."""
    from importlib import import_module

    from globalmart.platform.airflow_env import airflow_environment

    env = airflow_environment(settings)
    port = str(settings.airflow.log_server_port)
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == port
    log_server = service_by_name(settings, "airflow-log-server").command
    assert log_server[log_server.index("--port") + 1] == port
    module, _, function = env["AIRFLOW__CORE__HOSTNAME_CALLABLE"].rpartition(".")
    assert getattr(import_module(module), function)() == settings.airflow.host
