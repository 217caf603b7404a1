import configparser
import socket

import pytest

from globalmart.platform import launcher
from globalmart.platform.services import services
from globalmart.platform.supervisor import render_config


def test_supervisord_config_has_every_service_and_no_secrets(settings):
    text = render_config(settings, services(settings))
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    programs = {s.removeprefix("program:") for s in parser.sections() if s.startswith("program:")}
    assert programs == {
        "postgres", "kafka", "ferretdb", "maildev",
        "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "streaming-clock",
        "api", "dashboards",
    }
    assert settings.postgres.password.get_secret_value() not in text
    assert parser.get("program:postgres", "stopsignal") == "INT"


def test_every_service_listens_on_loopback_only(settings):
    for service in services(settings):
        joined = " ".join(service.command)
        assert "0.0.0.0" not in joined, service.name
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
