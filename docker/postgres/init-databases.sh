#!/bin/sh
# First start of the compose stack's Postgres (an empty data volume): the postgres image runs
# every script in /docker-entrypoint-initdb.d once, as POSTGRES_USER, against a server that
# listens on its socket only. Later starts skip it (the data volume is initialised).
#
# One database per component, all owned by POSTGRES_USER (the services connect as it):
#   mlflow      MLflow's backend store            (mlflow service: DATABASE_URL)
#   mage        Mage's own state                  (mage: MAGE_DATABASE_CONNECTION_URL)
#   monitoring  the platform tables: monitoring_*, prediction_log, model_evaluation,
#               deployment_audit, alert_event, retraining (DATABASE_URL of mage, predictor, alerts)
# and the read-only role GRAFANA_READER_USER (Grafana's datasources): CONNECT and SELECT on
# monitoring and mage only, also on tables created later (default privileges of the owner).
set -eu

: "${POSTGRES_USER:?}"
: "${GRAFANA_READER_USER:?set GRAFANA_MONITORING_DB_USER in .env}"
: "${GRAFANA_READER_PASSWORD:?set GRAFANA_MONITORING_DB_PASSWORD in .env}"

DATABASES="mlflow mage monitoring"
READABLE="monitoring mage"

run_sql() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname "$1" \
        -v owner="$POSTGRES_USER" -v reader="$GRAFANA_READER_USER" \
        -v reader_password="$GRAFANA_READER_PASSWORD"
}

for db in $DATABASES; do
    echo "init-databases: database $db"
    run_sql postgres <<SQL
CREATE DATABASE $db OWNER :"owner";
REVOKE ALL ON DATABASE $db FROM PUBLIC;
SQL
done

echo "init-databases: read-only role $GRAFANA_READER_USER"
run_sql postgres <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION;
SQL

for db in $READABLE; do
    run_sql "$db" <<'SQL'
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
ALTER ROLE :"reader" IN DATABASE :"DBNAME" SET default_transaction_read_only = on;
SQL
done
echo "init-databases: done"
