# Mage image: the official Mage image plus the project's package and the pinned pipeline
# requirements (requirements-mage.txt + constraints.txt) — docker-compose.yml's service mage.
#
# mageai/mageai:0.9.80 is Debian bookworm with Python 3.10 and mage-ai[all] under
# /usr/local, running as root, project folder /home/src. The pipelines cannot use that
# interpreter: the package needs Python 3.11 (pyproject: >=3.11,<3.12) and a model pickled by
# `train` must be loaded by the predictor with the same numpy/pandas/scikit-learn/xgboost/
# scipy as .venv/app (constraints.txt; scipy 1.17 has no Python 3.10 build). So the image
# adds Debian's Python 3.11 and a virtual environment with exactly .venv/mage's pins —
# mage-ai 0.9.80 included — first on PATH. The base keeps Mage's system tools (git,
# postgresql-client, ODBC, graphviz) and its layout.
FROM mageai/mageai:0.9.80

USER root
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/mage-venv \
    && groupadd --gid 10001 mage \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin mage

ENV VIRTUAL_ENV=/opt/mage-venv PATH=/opt/mage-venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 OMP_WAIT_POLICY=PASSIVE \
    PYTHONPATH=/home/src MAGE_DATA_DIR=/home/src/mage_data BANK_DATA_DIR=/home/src/data \
    MAGE_HOST=0.0.0.0 MAGE_PORT=6789

# /home/src is laid out like the repository (pyproject, requirements, src/, mlops/) and the
# package is installed editable: `deploy` writes the predictor's build context from here
# (build_context.py reads constraints.txt and requirements.txt at the repository root and
# builds the package wheel from it) into /home/src/build/predictor.
WORKDIR /home/src
COPY constraints.txt requirements.txt requirements-mage.txt pyproject.toml ./
RUN pip install --upgrade pip \
    && pip install -r requirements-mage.txt
COPY src ./src
RUN pip install --no-deps -e . && pip check
COPY mlops ./mlops
# Mage writes its state, the data and build output here; named volumes mounted on
# mage_data and data start with this owner.
RUN mkdir -p mage_data data build && chown -R mage:mage /home/src

USER 10001:10001
EXPOSE 6789
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=20 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6789/api/status', timeout=4)"
CMD ["nice", "-n", "10", "mage", "start", "mlops", "--host", "0.0.0.0", "--port", "6789"]
