#!/bin/bash
# Run once by the postgres image on a new data volume (/docker-entrypoint-initdb.d), as the
# superuser: GlobalMart's role and its two databases (the marts, Airflow's metadata). Names and
# password come from the settings' variables docker-compose.yaml gives this container.
set -euo pipefail
user="${GLOBALMART_POSTGRES__USER:-globalmart}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=user="$user" --set=password="$GLOBALMART_POSTGRES__PASSWORD" \
  --set=db="${GLOBALMART_POSTGRES__DATABASE:-globalmart}" \
  --set=airflow_db="${GLOBALMART_POSTGRES__AIRFLOW_DATABASE:-airflow}" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
CREATE DATABASE :"airflow_db" OWNER :"user";
SQL
