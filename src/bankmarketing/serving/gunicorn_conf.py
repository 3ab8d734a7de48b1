"""gunicorn settings of the predictor, everywhere: `gunicorn -c python:bankmarketing.serving.gunicorn_conf`.

Read by gunicorn only; workers and port come from PREDICTOR_WORKERS and PREDICTOR_PORT.
"""

import os
import shutil

bind = f"{os.environ.get('PREDICTOR_HOST', '0.0.0.0')}:{os.environ.get('PREDICTOR_PORT', '9696')}"
workers = int(os.environ.get("PREDICTOR_WORKERS", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None

# One native thread per worker (BLAS, OpenMP: XGBoost, scikit-learn): the workers are the
# parallelism, and nested thread pools on the same cores only queue (an RBF SVC's p99 at half
# load was 16 ms with them, see docs/serving.md). Set before the workers import numpy; a value
# already in the environment wins.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


def on_starting(server):
    """Fresh Prometheus multiprocess files for this server (metrics summed over workers)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
