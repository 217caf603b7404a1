"""Entry point of the project's image (``Dockerfile``): ``python -m globalmart.platform.container CMD…``.

It runs CMD with the environment the settings give Airflow and spark-submit, the same one the
local platform's supervisor gives its processes (:mod:`globalmart.platform.airflow_env`,
:func:`globalmart.spark.submit_environment`): connections, metadata database, DAG folder,
secrets. Variables already in the container's environment win, so a deployment sets what the
settings do not cover as plain Airflow variables (``docker-compose.yaml``: the CeleryExecutor and
its broker, bind addresses of a container).
"""

from __future__ import annotations

import os
import sys

from globalmart.platform.airflow_env import airflow_environment, write_passwords_file
from globalmart.settings import load_settings
from globalmart.spark import submit_environment


def container_environment(base: dict[str, str]) -> dict[str, str]:
    settings = load_settings()
    env = {**airflow_environment(settings), **submit_environment(settings), **base}
    if not env.get("SPARK_LOCAL_IP"):  # empty setting: Spark binds and advertises the container's address
        env.pop("SPARK_LOCAL_IP", None)
    return env


def main(argv: list[str] | None = None) -> None:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        raise SystemExit("usage: python -m globalmart.platform.container COMMAND [ARG…]")
    env = container_environment(dict(os.environ))
    if os.path.basename(command[0]) == "airflow" and "api-server" in command[1:2]:
        write_passwords_file(load_settings())  # the UI login of SimpleAuthManager, from the secrets
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
