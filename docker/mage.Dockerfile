# Mage image: the same pinned environment as .venv/mage (requirements-mage.txt), so models
# pickled here load in the app image (both use constraints.txt).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OMP_WAIT_POLICY=PASSIVE
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* && useradd --create-home --uid 10001 mage
WORKDIR /opt/bankmarketing
COPY constraints.txt requirements-mage.txt pyproject.toml ./
COPY src ./src
RUN pip install -r requirements-mage.txt && pip install --no-deps .
COPY --chown=mage:mage mlops ./mlops
USER mage
EXPOSE 6789
HEALTHCHECK --interval=15s --timeout=5s --retries=20 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6789/api/status', timeout=4)"
CMD ["mage", "start", "mlops"]
