# syntax=docker/dockerfile:1
# The project's image, one for every GlobalMart container of docker-compose.yaml: Airflow 3 (all
# components and the CeleryExecutor's workers), spark-submit and the Spark standalone master and
# workers (from the pyspark wheel, so driver and executors run the same Spark and Python), the
# streaming clock, the read API and the dashboards. Python packages come from requirements.lock
# (plus the Celery additions of deploy/requirements-cluster.lock, resolved against it), the
# connector jars from jvm/pom.xml: the versions local mode runs.

# --- connector jars (Kafka source/sink, PostgreSQL JDBC, Mongo) from Maven Central -----------
FROM maven:3.9.9-eclipse-temurin-17 AS jars
WORKDIR /build
COPY jvm/pom.xml .
RUN mvn -B -q -P spark-connectors dependency:copy-dependencies -DoutputDirectory=/jars/spark

# --- the image ---------------------------------------------------------------------------------
FROM python:3.11.7-slim-bookworm
ARG UV_VERSION=0.13.8
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/globalmart/.venv \
    PATH=/opt/globalmart/.venv/bin:$PATH
# Java for Spark; curl for health checks; tini reaps the JVMs' and Airflow's children
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl procps tini \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/globalmart globalmart
WORKDIR /opt/globalmart
COPY requirements.lock ./
COPY deploy/requirements-cluster.lock deploy/
RUN python -m venv .venv \
 && .venv/bin/pip install --no-cache-dir --disable-pip-version-check uv==${UV_VERSION} \
 && .venv/bin/uv pip install --no-cache --compile-bytecode --python .venv/bin/python \
      -r requirements.lock -r deploy/requirements-cluster.lock
COPY --from=jars /jars /opt/globalmart/jars
COPY . .
RUN .venv/bin/uv pip install --no-cache --no-deps --python .venv/bin/python -e . \
 && mkdir -p state && chown -R 50000:0 state
USER 50000
# every command runs with the environment the settings give Airflow and spark-submit
ENTRYPOINT ["tini", "--", "python", "-m", "globalmart.platform.container"]
CMD ["airflow", "version"]
