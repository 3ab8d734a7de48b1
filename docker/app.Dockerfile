# App-side image: the MLflow tracking server (later also the alert receiver and Streamlit).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OMP_WAIT_POLICY=PASSIVE
RUN useradd --create-home --uid 10001 app
WORKDIR /opt/bankmarketing
COPY constraints.txt requirements.txt pyproject.toml ./
COPY src ./src
RUN pip install -r requirements.txt && pip install --no-deps .
USER app
WORKDIR /home/app
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --retries=10 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"
CMD ["bankmarketing", "mlflow-server", "--host", "0.0.0.0", "--port", "5000"]
