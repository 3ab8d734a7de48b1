# App image: the MLflow tracking server (default command), the alert receiver and the
# Streamlit tester — docker-compose.yml's services mlflow, alerts and streamlit. The same
# pinned versions as .venv/app: requirements.txt (which includes constraints.txt) is used as
# the constraints of the install, so only what the services import is installed (no test,
# notebook or Spark tools) and every version is the one the tests ran with.
# Build context: the repository root (docker/app.Dockerfile.dockerignore keeps it small).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 OMP_WAIT_POLICY=PASSIVE \
    MLFLOW_HOST=0.0.0.0 MLFLOW_PORT=5000 MLFLOW_DIR=/home/app/mlruns

# A fixed unprivileged uid; the MLflow state folder exists (owned by it) so that a named
# volume mounted there starts with the right owner.
RUN groupadd --gid 10001 app \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /home/app/mlruns && chown app:app /home/app/mlruns

# Root-owned and read-only for the services; streamlit runs src/bankmarketing/ui/app.py
# from here, as the Procfile does from the repository root.
WORKDIR /opt/bankmarketing
COPY constraints.txt requirements.txt pyproject.toml ./
COPY src ./src
RUN pip install -c requirements.txt . \
        Flask Flask-WTF gunicorn prometheus-client requests streamlit psycopg2-binary \
    && rm -rf build src/*.egg-info

# pg_dump / pg_restore / psql for `bankmarketing backup` / `restore` (docs/runbook.md); a
# client newer than the server dumps it fine.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

USER 10001:10001
EXPOSE 5000 6790 8501
# For the default command (MLflow); compose gives alerts and streamlit their own checks.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=10 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MLFLOW_PORT', '5000'), timeout=4)"
CMD ["bankmarketing", "mlflow-server"]
