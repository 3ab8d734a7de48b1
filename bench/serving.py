"""Serving benchmark, per model kind: the gunicorn predictor against `mlflow models serve` and a Flask floor.

Sets up everything in a temporary folder (removed at the end): a real MLflow server on a free
port and the `prepare` stage on the real data. Then, for each model kind asked for, one after
the other in the same run and against the same MLflow server:

* `--candidate KIND` (default xgboost: the kind `make demo` promotes on default settings, by
  cross-validated selection; the others are within noise of it, so measure with `--all`) or
  `--all` (every kind of bankmarketing.training.candidates.CANDIDATES:
  logistic_regression, random_forest, xgboost, svc, mlp, hist_gradient_boosting);
* the `train` stage trains that kind alone with its default search (TrainOptions defaults:
  --trials 25, --train-timeout 60 s per kind, centered isotonic calibration, threshold on F1: the kind
  as `make demo` produces it) and registers it; `deploy` gives it the alias `production`.
  Every kind is version 1 of its own registered model `bench-serving-KIND`: with one model for
  all kinds, deploy's gate would keep the better kind in production and the next kind would
  never be served;
* `--candidate xgboost-reference` registers the earlier anchor instead (not part of --all): a
  fixed 300-tree XGBoost (REFERENCE_XGBOOST_PARAMS), trained by the `train` stage with its
  search space pinned to that one point, the model the anchors below were measured with.

Then, one server at a time on this machine, against that kind's registered version:

1. the predictor: `gunicorn -c python:bankmarketing.serving.gunicorn_conf
   'bankmarketing.serving.app:create_app()'`, 2 workers, prediction logging on (its default,
   DATABASE_URL a temporary SQLite file), Prometheus multiprocess metrics on (as `make serve`
   and the image run it): POST /predict with one real customer; p99 when driven
   open-loop at half its max req/s; POST /predict with {"customer": ..., "explain": true}
   (explain's extra cost, measured right after the first); then POST /predict/batch with
   1,000 customers (rows/s);
1b. the prediction log at max rate (not with --quick; alone with --log-only), on the local
   stack's SQLite file, then on a throwaway Postgres (/usr/lib/postgresql/15/bin, PG_BIN): wrk on
   /predict, then /predict/batch; the predictor stops (its workers write or spill their queues)
   and starts again (it writes the spilled rows); then `log STORE: answered=N written=W
   dropped=D`, answered from the predictor's own count, written from the database;
2. the predictor again with PREDICTOR_LOG_PREDICTIONS=false (comparison; not with --skip-nolog
   or --quick);
3. the anchor: `mlflow models serve -m models:/bench-serving-KIND@production --env-manager local
   -w 2`, POST /invocations with {"dataframe_records": [customer]}, with keep-alive connections
   (not with --quick) and with a new connection per request (as the gunicorn servers work); the
   ratio takes the faster (requirements.txt pins Starlette < 1: mlflow 3.2's scoring server
   calls `FastAPI.route`);
4. the floor, once per run after every kind: bench/hello_app.py (POST / returns a small JSON)
   under the same gunicorn config; its open loop runs at the highest of the kinds' half rates.

Max throughput and latency come from wrk (closed loop: --connections connections, one
thread; `apt-get install -y wrk`), the same settings for every server. Latency at half rate
comes from a constant-rate Python load generator here: requests are scheduled at fixed
intervals and each latency counts from its scheduled send time, so a slow server cannot hide
queueing (no coordinated omission); the same open loop at the same rate also runs against the
logging-off predictor and the hello app (the method's floor). Client and servers share the
machine's cores, so every run also reports the cores that other processes used meanwhile.

explain_ratio is a req/s ratio: POST /predict without explain over POST /predict with
"explain": true, both wrk closed loop on the same predictor, one after the other. At
saturation a closed loop's req/s is the workers' inverse time per request, so the ratio is how
many times longer a request takes with explain, HTTP included (the p50 ratio is printed beside
it). A kind the predictor does not explain (a 4xx answer to explain) gets explain_ratio=nan and
the predictor's reason.

The report: a detailed one per kind, the goals each kind misses, then, at the very end, one
line per kind:

    serving KIND: ratio_mlflow=X.X ratio_hello=Y.YY p99_half_ms=Z.Z explain_ratio=W.W

ratio_mlflow = predictor req/s / mlflow serve req/s, ratio_hello = predictor req/s / hello
req/s (this run's hello), p99_half_ms = the predictor's p99 at half its max rate (open loop).
Goals for every kind: ratio_mlflow >= 8, ratio_hello >= 0.40, p99_half_ms <= 10, and for the
tree kinds (random_forest, xgboost, hist_gradient_boosting) explain_ratio <= 2; batch >= 50,000
rows/s. A kind whose set-up or measurement fails is reported as such (nan in its line) and the
run goes on with the next; the exit status is then 1.

Anchors measured on this machine before, with the reference XGBoost: mlflow models serve 281
req/s, p50 24 ms, p99 126 ms; Flask hello 5,292 req/s, p50 1.4 ms.

Time per kind: its training (the search up to --train-timeout, then the calibrated fit, the
permutation importance and deploy), two server starts and 4 wrk/open-loop runs of --warmup +
--duration each (6 without --quick, 9 with the logging-off comparison too), plus hello's 2
once per run. On 2 busy cores with --quick --duration 10, hist_gradient_boosting took 84 s to
train (14 trials in the 60 s budget) and deploy, and 80 s to measure: `--all --quick
--duration 10` takes about 17 minutes, half of it training (a smaller --train-timeout
shortens it, but then the models are not the ones users get).

With --challenger, each kind gets a second version (a second training run of the same kind,
deploy --role challenger) and the predictor is measured again in shadow mode (every request
scored by both versions, both scores logged); the report gives its ratio to the
production-only predictor of the same run.

    .venv/app/bin/python bench/serving.py [--candidate KIND | --all] [--duration 15]
        [--connections 8] [--trials 25] [--train-timeout 60] [--quick] [--challenger]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import requests
import sqlalchemy as sa

from bankmarketing.registry import client_for
from bankmarketing.training.candidates import CANDIDATES, REFERENCE_XGBOOST_PARAMS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.postgres: the throwaway server
from tests.postgres import Postgres  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DEFAULT_DATA = REPO.parent / "shared/data/bank-marketing/bank-marketing.csv"
WRK_SCRIPT = BENCH / "wrk_post.lua"
GUNICORN_CONF = "python:bankmarketing.serving.gunicorn_conf"
MODEL_NAME = "bench-serving"  # each kind registers as bench-serving-KIND
#: The kind `make demo` promotes on default settings (hist. gradient boosting; XGBoost led in
#: some earlier runs, the leader moves with the split): `--candidate xgboost` pins that one.
DEFAULT_KIND = "hist_gradient_boosting"
#: The earlier anchor: a fixed 300-tree XGBoost (the train stage, its search space pinned).
REFERENCE_KIND = "xgboost-reference"
KINDS = [*CANDIDATES, REFERENCE_KIND]
#: Kinds with an explain_ratio goal (tree ensembles: contributions are not a matrix product).
TREE_KINDS = {"random_forest", "xgboost", "hist_gradient_boosting", REFERENCE_KIND}
BATCH_ROWS = 1_000
#: The anchor's model: XGBoost with 300 trees (the same parameters as bench/scoring.py).
ANCHOR_MLFLOW = {"rps": 281.0, "p50": 24.0, "p99": 126.0}
ANCHOR_HELLO = {"rps": 5292.0, "p50": 1.4}
TARGETS = {
    "vs_mlflow": 8.0,
    "vs_hello": 0.40,
    "batch_rows_s": 50_000.0,
    "half_rate_p99_ms": 10.0,
    "explain_ratio": 2.0,  # tree kinds
}
NAN = float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- CPU shares

_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds all processes have used (user, nice, system; not interrupts, which loopback
    traffic of this benchmark causes but no process is charged for)."""
    user, nice, system = map(int, Path("/proc/stat").read_text().split()[1:4])
    return (user + nice + system) / _TICK


def _group_s(pgid: int) -> float:
    """CPU seconds of the live processes of a process group (a server: master and workers)."""
    total = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _client_s() -> float:
    """CPU seconds of this process and its finished children (wrk)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CpuShare:
    """Cores used on average during a run: the server, the load generator, everything else."""

    def __init__(self, pgid: int):
        self.pgid = pgid

    def _now(self) -> tuple[float, ...]:
        return time.perf_counter(), _machine_busy_s(), _group_s(self.pgid), _client_s()

    def __enter__(self) -> CpuShare:
        self.start = self._now()
        return self

    def __exit__(self, *exc) -> None:
        wall, busy, server, client = (b - a for a, b in zip(self.start, self._now(), strict=True))
        self.server, self.client = server / wall, client / wall
        self.others = max(0.0, busy - server - client) / wall


# --------------------------------------------------------------------------- processes


class Server:
    """A process group started in its own session; stopped by signalling the whole group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, port: int, cwd: Path):
        self.name, self.port, self.log_path = name, port, log_path
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, check: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if check():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


@contextlib.contextmanager
def running(
    name: str,
    argv: list[str],
    env: dict[str, str],
    log_path: Path,
    port: int,
    check: Callable[[], bool],
    timeout_s: float = 180.0,
    cwd: Path = REPO,
) -> Iterator[Server]:
    log(f"starting {name}")
    server = Server(name, argv, env, log_path, port, cwd)
    try:
        server.wait_ready(check, timeout_s)
        yield server
    finally:
        server.stop()
        log(f"stopped {name}")


def server_env(**extra: str) -> dict[str, str]:
    """This environment without settings that would point a server elsewhere, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREDICTOR_", "MLFLOW_"))}
    for name in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "MODEL_NAME", "BANK_DATA_PATH"):
        env.pop(name, None)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the Makefile and the images set it
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow models serve runs `uvicorn`
    return env | extra


# --------------------------------------------------------------------------- model


def mlflow_server(root: Path) -> tuple[Server, str]:
    """`bankmarketing mlflow-server` on a free port, SQLite and artifacts in `root`."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    root.mkdir(parents=True)
    argv = [sys.executable, "-m", "bankmarketing.cli", "mlflow-server", "--port", str(port)]
    server = Server("mlflow server", argv, server_env(MLFLOW_DIR=str(root)), root / "server.log", port, REPO)
    try:
        server.wait_ready(lambda: requests.get(f"{uri}/health", timeout=2).ok, 120)
    except BaseException:
        server.stop()
        raise
    return server, uri


def bench_settings(root: Path, data_path: Path, tracking_uri: str, model_name: str):
    """Settings writing under `root`, reading the real data, for one benchmark's model."""
    from bankmarketing.config import Settings

    return Settings(
        data_path=data_path,
        data_dir=root / "data",
        data_url="http://127.0.0.1:9/unused",
        tracking_uri=tracking_uri,
        model_name=model_name,
        experiment=model_name,
        database_url=None,
        mlflow_dir=root / "mlruns",
    )


def model_name(kind: str) -> str:
    """Each kind's own registered model: deploy's gate would keep a better kind in production."""
    return f"{MODEL_NAME}-{kind}"


def prepare_data(root: Path, data_path: Path, tracking_uri: str) -> tuple[dict, list[dict]]:
    """The `prepare` stage on the real data (once per run): its manifest and the test customers."""
    from bankmarketing.data.prepare import PrepareOptions, prepare, read_split
    from bankmarketing.data.schema import FEATURES

    manifest = prepare(bench_settings(root, data_path, tracking_uri, MODEL_NAME), PrepareOptions())
    test = read_split(manifest, "test")
    customers = [
        {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
        for row in test[list(FEATURES)].to_dict("records")
    ]
    return manifest, customers


@contextlib.contextmanager
def pinned_reference() -> Iterator[None]:
    """Meanwhile, the xgboost search space is one point: a fixed 300-tree XGBoost like the anchor's."""
    searched = CANDIDATES["xgboost"]
    CANDIDATES["xgboost"] = replace(searched, suggest=lambda trial, ratio: dict(REFERENCE_XGBOOST_PARAMS))
    try:
        yield
    finally:
        CANDIDATES["xgboost"] = searched


def register_model(root: Path, data_path: Path, tracking_uri: str, manifest: dict, kind: str, args) -> dict:
    """train (that kind alone, its default search) -> deploy, as bench-serving-KIND; a summary.

    The train stage's own procedure (search, calibration, threshold, signature, registration)
    and deploy's (gate, test metrics, model card, explanation). xgboost-reference: the train
    stage with the xgboost search space pinned to REFERENCE_XGBOOST_PARAMS. With
    args.challenger, a second training run of the same kind becomes the `challenger` (deploy
    --role challenger): a second version to score beside production.
    """

    from bankmarketing.deployment import DeployOptions, deploy
    from bankmarketing.training.train import TrainOptions, train

    name = model_name(kind)
    settings = bench_settings(root, data_path, tracking_uri, name)
    started = time.perf_counter()
    if kind == REFERENCE_KIND:
        options = TrainOptions(
            candidates=["xgboost"], trials=1, timeout_s=30, cv_folds=2, importance_rows=300
        )
        pinned = pinned_reference()
    else:
        options = TrainOptions(candidates=[kind], trials=args.trials, timeout_s=args.train_timeout)
        pinned = contextlib.nullcontext()
    with pinned:
        trained = train(settings, options, manifest)
        trained_s = time.perf_counter() - started
        deployed = deploy(settings, DeployOptions(build_image=False))
        deployed_s = time.perf_counter() - started - trained_s
        if deployed["action"] != "promote":
            raise RuntimeError(f"deploy did not promote the model: {deployed}")
        challenger = None
        if args.challenger:
            train(settings, options, manifest)
            challenged = deploy(settings, DeployOptions(build_image=False, role="challenger"))
            if challenged["action"] != "challenge":
                raise RuntimeError(f"deploy did not set a challenger: {challenged}")
            challenger = challenged["challenger"]
    candidate = trained["candidates"][0]
    logged = client_for(tracking_uri).get_run(candidate["run_id"]).data.params
    return {
        "kind": kind,
        "model_name": name,
        "version": deployed["production"],
        "challenger": challenger,
        "params": {k.removeprefix("model__"): v for k, v in logged.items() if k.startswith("model__")},
        "calibration": options.calibration,
        "search_trials": int(candidate["metrics"]["search_trials"]),
        "val_pr_auc": candidate["metrics"]["pr_auc"],
        "test_pr_auc": deployed["test_metrics"]["pr_auc"],
        "train_seconds": trained_s,
        "deploy_seconds": deployed_s,
        "seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- load: wrk

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


@dataclass(frozen=True)
class Load:
    rps: float
    p50: float  # ms
    p99: float  # ms
    requests: int
    errors: int
    detail: str = ""
    server_cpu: float = 0.0  # cores, on average over the run
    others_cpu: float = 0.0  # cores used by processes other than the server and the client


def parse_wrk(text: str) -> Load:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    percentiles = {
        int(p): float(v) * _UNITS_MS[u]
        for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    }
    if not (rate and total and 50 in percentiles and 99 in percentiles):
        raise RuntimeError(f"cannot read wrk's output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(r"Socket errors:\s+connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    detail = f"non-2xx {errors}" if non_2xx else ""
    if sockets:
        counts = [int(n) for n in sockets.groups()]
        errors += counts[0] + counts[2] + counts[3]  # wrk counts peer closes as "read"
        detail += f" socket errors connect/read/write/timeout {'/'.join(map(str, counts))}"
    return Load(
        float(rate.group(1)), percentiles[50], percentiles[99], int(total.group(1)), errors, detail.strip()
    )


def wrk(url: str, body: Path, duration_s: float, connections: int, close: bool = False) -> Load:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s"]
    argv += ["--latency", "-s", str(WRK_SCRIPT), url]
    env = {**os.environ, "WRK_BODY_FILE": str(body), "WRK_CONNECTION_CLOSE": "1" if close else "0"}
    return parse_wrk(subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout)


def measure(name: str, server: Server, path: str, body: Path, args, close: bool = False) -> Load:
    """wrk: a warm-up run, then the measured run with the CPU shares during it."""
    url = f"http://127.0.0.1:{server.port}{path}"
    log(f"{name}: warm-up {args.warmup:.0f} s, then {args.duration:.0f} s, wrk -c{args.connections}")
    wrk(url, body, args.warmup, args.connections, close)
    with CpuShare(server.process.pid) as cpu:
        result = wrk(url, body, args.duration, args.connections, close)
    result = replace(result, server_cpu=cpu.server, others_cpu=cpu.others)
    log(
        f"{name}: {result.rps:,.0f} req/s, p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms; cores: "
        f"server {cpu.server:.2f}, wrk {cpu.client:.2f}, other processes {cpu.others:.2f}"
    )
    if result.errors:
        log(f"{name}: ERRORS {result.detail}")
    return result


# --------------------------------------------------------------------------- load: open loop


class _Connection:
    """A minimal HTTP/1.1 client connection: reused unless the server closes it."""

    def __init__(self, address: tuple[str, int]):
        self.address = address
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the end of the response")
        return chunk

    def exchange(self, payload: bytes) -> int:
        return self.exchange_body(payload)[0]

    def exchange_body(self, payload: bytes) -> tuple[int, bytes]:
        """Send one request; the response's status and body."""
        if self.sock is None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(10)
            self.sock.connect(self.address)  # an IP address: no name lookup per request
        try:
            self.sock.sendall(payload)
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                buffer += self._recv()
            head, _, rest = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip().lower() for k, _, v in (h.partition(":") for h in lines[1:])
            }
            length = int(headers.get("content-length", "0"))
            while len(rest) < length:
                rest += self._recv()
            if headers.get("connection") == "close":  # gunicorn's sync workers close every time
                self.close()
            return int(lines[0].split()[1]), rest[:length]
        except OSError:
            self.close()
            raise


def open_loop(
    port: int, path: str, body: bytes | list[bytes], rate: float, duration_s: float, concurrency: int
) -> dict:
    """Requests scheduled every 1/rate s; latency from the scheduled time to the full response.
    With a list of bodies, request i sends body i (cycled)."""
    payloads = [
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(one)}\r\n\r\n"
        ).encode()
        + one
        for one in (body if isinstance(body, list) else [body])
    ]
    total = max(1, int(rate * duration_s))
    counter = itertools.count()
    latencies: list[float] = []
    lags: list[float] = []  # how late requests were sent (client delay, or all clients busy)
    failures: list[str] = []
    start = time.perf_counter() + 0.2

    def client() -> None:
        connection = _Connection(("127.0.0.1", port))
        while (i := next(counter)) < total:
            scheduled = start + i / rate
            wait = scheduled - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            lags.append(time.perf_counter() - scheduled)
            try:
                status = connection.exchange(payloads[i % len(payloads)])
            except OSError as exc:
                failures.append(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - scheduled)
            if status != 200:
                failures.append(str(status))
        connection.close()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # hand the GIL over promptly to a client whose send is due
    try:
        threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1e3
    return {
        "rate": rate,
        "achieved_rps": len(latencies) / elapsed,
        "requests": total,
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "p999": float(np.percentile(ms, 99.9)),
        "max": float(ms.max()),
        "send_lag_p99": float(np.percentile(np.array(lags) * 1e3, 99)),
        "failures": len(failures),
        "failure_kinds": sorted(set(failures)),
    }


def half_rate(name: str, server: Server, path: str, body: bytes, rate: float, args) -> dict:
    """Open loop at `rate`: a warm-up, then the measured run with the CPU shares during it."""
    log(f"{name}: open loop at {rate:,.0f} req/s for {args.duration:.0f} s")
    open_loop(server.port, path, body, rate, args.warmup, args.open_loop_threads)
    with CpuShare(server.process.pid) as cpu:
        result = open_loop(server.port, path, body, rate, args.duration, args.open_loop_threads)
    result |= {"server_cpu": cpu.server, "client_cpu": cpu.client, "others_cpu": cpu.others}
    log(
        f"{name}: p50 {result['p50']:.2f} ms, p99 {result['p99']:.2f} ms at {rate:,.0f} req/s; cores: "
        f"server {cpu.server:.2f}, client {cpu.client:.2f}, other processes {cpu.others:.2f}"
    )
    return result


# --------------------------------------------------------------------------- the runs


def scored_rows(base: str) -> int:
    """The predictor's own count of scored customers (Prometheus, summed over workers)."""
    text = requests.get(f"{base}/metrics", timeout=10).text
    found = re.search(r"^predictor_scored_rows_total\s+([\d.e+]+)$", text, re.MULTILINE)
    return int(float(found.group(1))) if found else -1


def spilled_rows(folder: Path) -> int:
    """Rows left in prediction-log spill files (written to the database at the next start)."""
    return sum(len(path.read_bytes().splitlines()) for path in folder.glob("*/*.jsonl"))


def logged_rows(database_url: str) -> int:
    """Rows in the platform database's prediction log."""
    from bankmarketing.database import engine_for, prediction_log

    with engine_for(database_url).connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(prediction_log)).scalar()


def log_gauges(base: str) -> dict[str, float]:
    """The predictor's prediction-log gauges (summed over workers): written, spilled, dropped..."""
    text = requests.get(f"{base}/metrics", timeout=10).text
    found = re.findall(r"^predictor_prediction_log_(\w+)\s+([\d.e+-]+)$", text, re.MULTILINE)
    return {name: float(value) for name, value in found}


JSON_HEADERS = {"Content-Type": "application/json"}


def write_bodies(root: Path, customers: list[dict]) -> dict[str, Path]:
    """The request bodies, one JSON file each (wrk reads them): the same customer everywhere."""
    customer = customers[0]
    bodies = {
        "predict": {"customer": customer},
        "explain": {"customer": customer, "explain": True},
        "batch": {"customers": [customers[i % len(customers)] for i in range(BATCH_ROWS)]},
        "invocations": {"dataframe_records": [customer]},
    }
    files = {name: root / f"{name}.json" for name in bodies}
    for name, body in bodies.items():
        files[name].write_text(json.dumps(body))
    return files


def predictor_server(
    folder: Path,
    uri: str,
    name: str,
    label: str,
    tag: str,
    log_predictions: bool,
    database: str | None = None,
    app: str = "bankmarketing.serving.app:create_app()",
    **extra,
):
    """The predictor under gunicorn (2 workers) serving `name`@production; files in `folder`;
    its platform database `database` (default: a new SQLite file, the local stack's default);
    `app` another WSGI app of the predictor (found on bench/ too)."""
    from bankmarketing.database import migrate_database

    port = free_port()
    database = database or f"sqlite:///{folder / f'platform-{tag}.db'}"
    migrate_database(database)  # the tables first, as `make up` and compose do
    env = server_env(
        MLFLOW_TRACKING_URI=uri,
        MODEL_NAME=name,
        DATABASE_URL=database,
        BANK_DATA_DIR=str(folder / f"data-{tag}"),
        PREDICTOR_HOST="127.0.0.1",
        PREDICTOR_PORT=str(port),
        PREDICTOR_WORKERS="2",
        PREDICTOR_CACHE_DIR=str(folder / f"cache-{tag}"),
        PREDICTOR_LOG_PREDICTIONS=str(log_predictions).lower(),
        PROMETHEUS_MULTIPROC_DIR=str(folder / f"prometheus-{tag}"),
        **extra,
    )
    return running(
        f"{label} (logging {tag})",
        [str(BIN / "gunicorn"), "-c", GUNICORN_CONF, "--pythonpath", str(BENCH), app],
        env,
        folder / f"predictor-{tag}.log",
        port,
        lambda: requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200,
    )


def explain_check(base: str, body: bytes) -> str:
    """Why the predictor does not explain this model ("" if it does); a 5xx is an error."""
    answer = requests.post(f"{base}/predict", data=body, headers=JSON_HEADERS, timeout=30)
    if 400 <= answer.status_code < 500:
        try:
            message = answer.json().get("error") or answer.text
        except ValueError:
            message = answer.text
        return f"POST /predict with explain answers {answer.status_code}: {message.strip()[:300]}"
    answer.raise_for_status()
    if not answer.json().get("contributions"):
        return "POST /predict with explain answers 200 without contributions"
    return ""


def log_at_full_rate(
    folder: Path, uri: str, name: str, files: dict[str, Path], store: str, database: str, args
) -> dict:
    """The prediction log at the predictor's max rate (single, then batch requests) on `database`.

    Answered rows are the predictor's own count; then the predictor stops (each worker writes
    its queue, or spills it when the database is unreachable) and starts again (it writes what
    was spilled), and the log is counted: written + replayed should equal answered.
    """
    label, tag = f"prediction log on {store}", f"log-{store}"
    with predictor_server(folder, uri, name, label, tag, True, database) as server:
        base = f"http://127.0.0.1:{server.port}"
        single = measure(f"{label}: /predict", server, "/predict", files["predict"], args)
        batch = measure(f"{label}: /predict/batch", server, "/predict/batch", files["batch"], args)
        time.sleep(1.0)  # the requests wrk left in flight are answered (and counted)
        answered = scored_rows(base)
        during = log_gauges(base)
    stopped_at = time.perf_counter()
    at_stop, in_files = logged_rows(database), spilled_rows(folder / f"cache-{tag}/prediction-log-spill")
    with predictor_server(folder, uri, name, f"{label} (restarted)", tag, True, database):
        deadline = time.monotonic() + 300
        while spilled_rows(folder / f"cache-{tag}/prediction-log-spill") and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.0)
    written = logged_rows(database)
    return {
        "store": store,
        "single": single,
        "batch": batch,
        "answered": answered,
        "written_at_stop": at_stop,
        "spilled_at_stop": in_files,
        "spilled_during": int(during.get("spilled", 0)),
        "waited_s": during.get("waited_seconds", 0.0),
        "written": written,
        "dropped": answered - written,
        "settled_s": time.perf_counter() - stopped_at,
    }


def log_stores(folder: Path, uri: str, name: str, kind: str, files: dict[str, Path], args) -> list[dict]:
    """The prediction log at max rate on the local stack's SQLite file, then on Postgres; the
    anchor: the same requests to the predictor without the log, in the same run."""
    sqlite = f"sqlite:///{folder / 'log-sqlite.db'}"
    postgres = args.postgres.create_database(f"log_{kind}".replace("-", "_"))
    with predictor_server(folder, uri, name, "prediction log off", "log-off", False) as server:
        anchor = {
            key: measure(f"prediction log off: {path}", server, path, files[key], args)
            for key, path in (("predict", "/predict"), ("batch", "/predict/batch"))
        }
    stores = [
        log_at_full_rate(folder, uri, name, files, "sqlite", sqlite, args),
        log_at_full_rate(folder, uri, name, files, "postgres", postgres, args),
    ]
    return [store | {"anchor": anchor} for store in stores]


def run_kind(folder: Path, uri: str, setup: dict, files: dict[str, Path], args) -> dict:
    """Every measurement of one kind's registered version; one server at a time."""
    kind, name = setup["kind"], setup["model_name"]
    folder.mkdir(parents=True, exist_ok=True)
    predict_body = files["predict"].read_bytes()
    label = f"{kind} predictor"
    results: dict = {}

    if args.log_only:
        return {"log_stores": log_stores(folder, uri, name, kind, files, args)}

    # 1. the predictor, normal configuration: single, explain, half rate, then batch.
    with predictor_server(folder, uri, name, label, "on", True) as server:
        base = f"http://127.0.0.1:{server.port}"
        answer = requests.post(f"{base}/predict", data=predict_body, headers=JSON_HEADERS, timeout=10)
        answer.raise_for_status()
        results["p_predictor"] = answer.json()["probability"]
        results["fast_path"] = requests.get(f"{base}/model", timeout=10).json().get("fast_path")
        check = requests.post(
            f"{base}/predict/batch", data=files["batch"].read_bytes(), headers=JSON_HEADERS, timeout=60
        )
        check.raise_for_status()
        if len(check.json()["predictions"]) != BATCH_ROWS:
            raise RuntimeError("the batch answer does not have one prediction per customer")
        results["predictor"] = measure(label, server, "/predict", files["predict"], args)
        # explain right after (the ratio's two runs adjacent, so other load drifts least)
        time.sleep(2)  # the prediction log's writer catches up (it batches every 0.5 s)
        results["explain_reason"] = explain_check(base, files["explain"].read_bytes())
        if results["explain_reason"]:
            log(f"{label}: explain not measured: {results['explain_reason']}")
        else:
            results["explain"] = measure(f"{label}, explain", server, "/predict", files["explain"], args)
            time.sleep(2)
        rate = results["predictor"].rps / 2
        results["half"] = half_rate(label, server, "/predict", predict_body, rate, args)
        if not args.quick:
            time.sleep(2)
            results["batch"] = measure(f"{label} batch", server, "/predict/batch", files["batch"], args)

    # 1b. the prediction log at max rate, on each store: nothing may be lost.
    if not args.quick:
        results["log_stores"] = log_stores(folder, uri, name, kind, files, args)

    # 2. the predictor without the prediction log (comparison), the same open-loop rate.
    if not (args.skip_nolog or args.quick):
        with predictor_server(folder, uri, name, label, "off", False) as server:
            results["predictor_nolog"] = measure(
                f"{label}, no log", server, "/predict", files["predict"], args
            )
            results["half_nolog"] = half_rate(
                f"{label}, no log", server, "/predict", predict_body, rate, args
            )
            results["batch_nolog"] = measure(
                f"{label} batch, no log", server, "/predict/batch", files["batch"], args
            )

    # 2b. the predictor with a shadow challenger: every request scored by two versions.
    if args.challenger:
        with predictor_server(
            folder, uri, name, label, "shadow", True, PREDICTOR_CHALLENGER_MODE="shadow"
        ) as server:
            info = requests.get(f"http://127.0.0.1:{server.port}/challenger", timeout=10).json()
            if not (info["challenger"] or {}).get("scoring"):
                raise RuntimeError(f"the shadow predictor is not scoring a challenger: {info}")
            results["shadow"] = measure(
                f"{label}, shadow challenger", server, "/predict", files["predict"], args
            )
            if not args.quick:
                time.sleep(2)
                results["batch_shadow"] = measure(
                    f"{label} batch, shadow challenger", server, "/predict/batch", files["batch"], args
                )

    # 3. the anchor: mlflow models serve on the same registered version.
    port = free_port()
    model_uri = f"models:/{name}@production"
    argv = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    argv += ["-w", "2", "-p", str(port), "-h", "127.0.0.1"]
    results["mlflow_how"] = f"mlflow models serve -m {model_uri} --env-manager local -w 2"
    mlflow_label = f"{kind} mlflow scoring server"
    with running(
        mlflow_label,
        argv,
        server_env(MLFLOW_TRACKING_URI=uri),
        folder / "mlflow-serve.log",
        port,
        lambda: requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200,
        timeout_s=120,
    ) as server:
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            data=files["invocations"].read_bytes(),
            headers=JSON_HEADERS,
            timeout=30,
        )
        answer.raise_for_status()
        predictions = answer.json()["predictions"]
        results["p_mlflow"] = float(np.ravel(predictions)[-1])  # predict_proba: [[p(no), p(yes)]]
        # uvicorn keeps connections open, and here a request on a reused connection waits
        # ~45 ms more (wrk with one connection: ~50 ms a request with keep-alive, ~6 ms with a
        # new connection each), while gunicorn's sync workers close after every response
        # anyway. So both ways (--quick: a new connection each only), and the ratios use the faster.
        runs = [] if args.quick else [("mlflow_keepalive", "keep-alive", False)]
        runs += [("mlflow_close", "Connection: close", True)]
        for key, how, close in runs:
            results[key] = measure(
                f"{mlflow_label}, {how}", server, "/invocations", files["invocations"], args, close
            )
        results["mlflow"] = max((results[key] for key, _, _ in runs), key=lambda load: load.rps)
    return results


def run_hello(root: Path, files: dict[str, Path], rate: float, args) -> dict:
    """The floor: hello under the same gunicorn config, then the open loop at `rate`."""
    port = free_port()
    with running(
        "flask hello",
        [str(BIN / "gunicorn"), "-c", GUNICORN_CONF, "--chdir", str(BENCH), "hello_app:create_app()"],
        server_env(PREDICTOR_HOST="127.0.0.1", PREDICTOR_PORT=str(port), PREDICTOR_WORKERS="2"),
        root / "hello.log",
        port,
        lambda: requests.post(f"http://127.0.0.1:{port}/", data=files["predict"].read_bytes(), timeout=2).ok,
        cwd=BENCH,
    ) as server:
        return {
            "hello": measure("flask hello", server, "/", files["predict"], args),
            "half_hello": half_rate("flask hello", server, "/", files["predict"].read_bytes(), rate, args),
        }


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def summary(results: dict | None, hello: dict | None) -> dict[str, float]:
    """The figures of a kind's summary line (nan: not measured)."""
    if not results:
        return dict.fromkeys(("ratio_mlflow", "ratio_hello", "p99_half_ms", "explain_ratio"), NAN)
    rps = results["predictor"].rps
    return {
        "ratio_mlflow": rps / results["mlflow"].rps,
        "ratio_hello": rps / hello["hello"].rps if hello else NAN,
        "p99_half_ms": results["half"]["p99"],
        "explain_ratio": rps / results["explain"].rps if "explain" in results else NAN,
    }


def misses(kind: str, figures: dict[str, float], results: dict | None) -> list[str]:
    """The goals a kind misses, with the reason of a nan."""
    if not results:
        return ["not measured"]
    found = []
    for key, target, ok in [
        ("ratio_mlflow", TARGETS["vs_mlflow"], lambda v: v >= TARGETS["vs_mlflow"]),
        ("ratio_hello", TARGETS["vs_hello"], lambda v: v >= TARGETS["vs_hello"]),
        ("p99_half_ms", TARGETS["half_rate_p99_ms"], lambda v: v <= TARGETS["half_rate_p99_ms"]),
    ]:
        if not ok(figures[key]):  # nan misses
            sign = "<=" if key == "p99_half_ms" else ">="
            found.append(f"{key} {figures[key]:.2f} (goal {sign} {target:g})")
    if kind in TREE_KINDS:
        explain = figures["explain_ratio"]
        if math.isnan(explain):
            found.append(
                f"explain_ratio nan (goal <= {TARGETS['explain_ratio']:g}): {results['explain_reason']}"
            )
        elif explain > TARGETS["explain_ratio"]:
            found.append(f"explain_ratio {explain:.2f} (goal <= {TARGETS['explain_ratio']:g})")
    return found


def describe(setup: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(setup["params"].items()))
    return f"{setup['kind']} ({params}) + {setup['calibration']} calibration"


def report_kind(setup: dict, results: dict, hello: dict | None, args) -> None:
    """The detailed report of one kind."""
    kind, on, anchor, half = setup["kind"], results["predictor"], results["mlflow"], results["half"]
    rule = "-" * 108
    print()
    print(f"=== {kind} " + "=" * (104 - len(kind)))
    fast = {True: "yes", False: "NO (the sklearn pipeline)", None: "?"}[results["fast_path"]]
    print(
        f"model: {setup['model_name']} v{setup['version']}: {describe(setup)}; val PR-AUC "
        f"{setup['val_pr_auc']:.3f}, test {setup['test_pr_auc']:.3f}; "
        f"search trials {setup['search_trials']}; trained in {setup['train_seconds']:.0f} s, "
        f"deployed in {setup['deploy_seconds']:.0f} s; predictor fast path: {fast}"
    )
    print(
        f"load: wrk -t1 -c{args.connections} -d{args.duration:.0f}s --latency after a {args.warmup:.0f} s "
        "warm-up; every server 2 workers, one server at a time"
    )
    print(rule)
    print(
        f"{'target':<44}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'server':>8}{'others':>8}  anchor measured before"
    )
    print(f"{'':<44}{'':>9}{'':>8}{'':>8}{'':>7}{'cores':>8}{'cores':>8}  (reference XGBoost)")
    print(rule)

    def row(name: str, load: Load, anchor_text: str = "") -> None:
        print(
            f"{name:<44}{load.rps:>9,.0f}{load.p50:>8.2f}{load.p99:>8.2f}{load.errors:>7}"
            f"{load.server_cpu:>8.2f}{load.others_cpu:>8.2f}  {anchor_text}"
        )

    row("predictor /predict, logging on (normal)", on)
    if "explain" in results:
        row("predictor /predict explain=true, logging on", results["explain"])
    if "predictor_nolog" in results:
        row("predictor /predict, logging off", results["predictor_nolog"])
    if "mlflow_keepalive" in results:
        row(
            "mlflow serve /invocations, keep-alive",
            results["mlflow_keepalive"],
            "281 req/s, p50 24 ms, p99 126 ms",
        )
    row("mlflow serve /invocations, Connection: close", results["mlflow_close"])
    if hello:
        row("flask hello, same gunicorn config (floor)", hello["hello"], "5,292 req/s, p50 1.4 ms")
    if "batch" in results:
        row(f"predictor /predict/batch x{BATCH_ROWS:,}, logging on", results["batch"])
    if "batch_nolog" in results:
        row(f"predictor /predict/batch x{BATCH_ROWS:,}, logging off", results["batch_nolog"])
    if "shadow" in results:
        row("predictor /predict, shadow challenger", results["shadow"])
    if "batch_shadow" in results:
        row(f"predictor /predict/batch x{BATCH_ROWS:,}, shadow challenger", results["batch_shadow"])
    print(rule)

    def verdict(ok: bool) -> str:
        return "meets the target" if ok else "MISSES the target"

    figures = summary(results, hello)
    vs_mlflow, vs_hello = figures["ratio_mlflow"], figures["ratio_hello"]
    how = "" if "mlflow_keepalive" in results else ", Connection: close only (--quick)"
    print(
        f"predictor / mlflow serve req/s {vs_mlflow:9.1f} x    target >= {TARGETS['vs_mlflow']:.0f} x: "
        f"{verdict(vs_mlflow >= TARGETS['vs_mlflow'])} (/ the published 281 req/s: "
        f"{on.rps / ANCHOR_MLFLOW['rps']:.1f} x{how})"
    )
    print(
        f"predictor / hello req/s        {vs_hello:9.3f}      target >= {TARGETS['vs_hello']:.2f}: "
        f"{verdict(vs_hello >= TARGETS['vs_hello'])} (/ the published 5,292 req/s: "
        f"{on.rps / ANCHOR_HELLO['rps']:.2f})"
    )
    if "batch" in results:
        rows_s = results["batch"].rps * BATCH_ROWS
        nolog_rows = (
            f"; logging off {results['batch_nolog'].rps * BATCH_ROWS:,.0f}"
            if "batch_nolog" in results
            else ""
        )
        print(
            f"batch rows/s, logging on       {rows_s:9,.0f}      target >= {TARGETS['batch_rows_s']:,.0f}: "
            f"{verdict(rows_s >= TARGETS['batch_rows_s'])}{nolog_rows}"
        )
    else:
        print("batch rows/s                   not measured (--quick)")
    if "shadow" in results:
        shadow = results["shadow"].rps / on.rps
        batch_shadow = (
            f", batch rows/s {results['batch_shadow'].rps / results['batch'].rps:.3f}"
            if "batch_shadow" in results
            else ""
        )
        print(
            f"shadow challenger v{setup['challenger']} / production only: req/s {shadow:.3f}{batch_shadow} "
            f"(vs mlflow serve {results['shadow'].rps / anchor.rps:.1f} x)"
        )
    p99_target = TARGETS["half_rate_p99_ms"]
    print(
        f"p99 at half the max rate       {half['p99']:9.2f} ms   "
        f"target <= {p99_target:.0f} ms: {verdict(half['p99'] <= p99_target)}"
    )
    explain_goal = (
        f"target <= {TARGETS['explain_ratio']:.0f} (tree kinds): "
        if kind in TREE_KINDS
        else "no target (not a tree kind): "
    )
    if "explain" in results:
        ratio, explain = figures["explain_ratio"], results["explain"]
        ok = ratio <= TARGETS["explain_ratio"] or kind not in TREE_KINDS
        print(
            f"explain: req/s without / with  {ratio:9.2f} x    {explain_goal}"
            f"{verdict(ok) if kind in TREE_KINDS else 'reported'} (p50 {on.p50:.2f} -> "
            f"{explain.p50:.2f} ms: {explain.p50 / on.p50:.2f} x)"
        )
    else:
        missed = verdict(False) if kind in TREE_KINDS else "reported"
        reason = results["explain_reason"]
        print(f"explain: req/s without / with        nan      {explain_goal}{missed}: {reason}")
    print(rule)
    print(
        f"open loop: {half['rate']:,.0f} req/s (half of {on.rps:,.0f}) for {args.duration:.0f} s after a "
        f"{args.warmup:.0f} s warm-up, up to {args.open_loop_threads} requests in flight, latency from the "
        "scheduled send time"
    )
    runs = [("predictor, logging on", half)]
    runs += [("predictor, logging off", results["half_nolog"])] if "half_nolog" in results else []
    if hello:
        floor = hello["half_hello"]
        at = "" if abs(floor["rate"] - half["rate"]) < 0.5 else f" at {floor['rate']:,.0f} req/s"
        runs += [(f"flask hello (floor){at}", floor)]
    for name, r in runs:
        failures = f" {r['failure_kinds']}" if r["failures"] else ""
        print(
            f"  {name:<34} p50 {r['p50']:5.2f}  p90 {r['p90']:5.2f}  p99 {r['p99']:6.2f}  p99.9 "
            f"{r['p999']:6.2f}  max {r['max']:6.1f} ms; achieved {r['achieved_rps']:,.0f} req/s, "
            f"failures {r['failures']}{failures}, send lag p99 {r['send_lag_p99']:.2f} ms; cores: server "
            f"{r['server_cpu']:.2f}, client {r['client_cpu']:.2f}, others {r['others_cpu']:.2f}"
        )
    report_log(results)
    print(f"mlflow anchor: {results['mlflow_how']}")
    print(
        f"same model: /predict probability {results['p_predictor']:.6f}, /invocations "
        f"{results['p_mlflow']:.6f}"
    )


def report_log(results: dict) -> None:
    """The prediction log at max rate, per store: how fast, and whether every answered row is logged."""
    for store in results.get("log_stores", []):
        print(
            f"prediction log on {store['store']} at max rate: /predict {store['single'].rps:,.0f} req/s "
            f"({store['single'].rps / store['anchor']['predict'].rps:.2f}x the predictor without the log, "
            f"{store['anchor']['predict'].rps:,.0f}), /predict/batch {store['batch'].rps * BATCH_ROWS:,.0f} "
            f"rows/s ({store['batch'].rps / store['anchor']['batch'].rps:.2f}x, "
            f"{store['anchor']['batch'].rps * BATCH_ROWS:,.0f}); requests waited "
            f"{store['waited_s']:.1f} s for the writer (backpressure); written at the stop "
            f"{store['written_at_stop']:,}, spilled {store['spilled_during']:,} during the run and "
            f"{store['spilled_at_stop']:,} in files at the stop (written at the next start, "
            f"{store['settled_s']:.0f} s)"
        )
        print(
            f"log {store['store']}: answered={store['answered']} written={store['written']} "
            f"dropped={store['dropped']}"
        )


def report(outcomes: dict[str, dict], hello: dict | None, prepared_s: float, args, elapsed_s: float) -> None:
    """Per kind the detailed report; then the run's context, the goals' misses and the summary lines."""
    if args.log_only:
        for kind, outcome in outcomes.items():
            print(f"=== {kind}: {describe(outcome['setup']) if outcome['setup'] else outcome['error']}")
            report_log(outcome["results"] or {})
        return
    for kind, outcome in outcomes.items():
        if outcome["results"]:
            report_kind(outcome["setup"], outcome["results"], hello, args)
        else:
            print()
            print(f"=== {kind} " + "=" * (104 - len(kind)))
            print(f"FAILED: {outcome['error']} (the traceback is in the log on stderr)")
    print()
    print("=" * 108)
    print(f"serving benchmark on {machine()}, load average {os.getloadavg()[0]:.1f} at the end")
    if hello:
        print(
            f"flask hello (floor, once for the run): {hello['hello'].rps:,.0f} req/s, p50 "
            f"{hello['hello'].p50:.2f} ms; its open loop at {hello['half_hello']['rate']:,.0f} req/s "
            "(the highest half rate of the run)"
        )
    else:
        print("flask hello: not measured (see the log): ratio_hello is nan")
    print(
        "'others cores': CPU used meanwhile by processes that are neither the server nor the load "
        "generator (other work on this machine); high values make the numbers pessimistic"
    )
    print(f"prepared in {prepared_s:.0f} s; total time {elapsed_s:.0f} s")
    print(
        f"goals: ratio_mlflow >= {TARGETS['vs_mlflow']:g}, ratio_hello >= {TARGETS['vs_hello']:.2f}, "
        f"p99_half_ms <= {TARGETS['half_rate_p99_ms']:g}; tree kinds explain_ratio <= "
        f"{TARGETS['explain_ratio']:g} (explain_ratio: req/s without explain / with)"
    )
    lines = []
    for kind, outcome in outcomes.items():
        figures = summary(outcome["results"], hello)
        missed = misses(kind, figures, outcome["results"])
        if not outcome["results"]:
            print(f"  {kind}: NOT MEASURED, so misses every goal: {outcome['error']}")
        else:
            print(f"  {kind}: " + ("MISSES " + "; ".join(missed) if missed else "meets every goal"))
        if outcome["results"] and "explain" not in outcome["results"] and kind not in TREE_KINDS:
            print(f"    explain_ratio nan: {outcome['results']['explain_reason']}")
        lines.append(
            f"serving {kind}: ratio_mlflow={figures['ratio_mlflow']:.1f} "
            f"ratio_hello={figures['ratio_hello']:.2f} p99_half_ms={figures['p99_half_ms']:.1f} "
            f"explain_ratio={figures['explain_ratio']:.1f}"
        )
    print()
    print("\n".join(lines))


# --------------------------------------------------------------------------- main


def main() -> None:
    from bankmarketing.training.train import TrainOptions

    defaults = TrainOptions.model_fields
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--candidate",
        choices=KINDS,
        default=DEFAULT_KIND,
        metavar="KIND",
        help=f"the model kind to train, deploy and serve (default {DEFAULT_KIND}): {', '.join(KINDS)}",
    )
    which.add_argument(
        "--all", action="store_true", help=f"every kind, one after the other: {', '.join(CANDIDATES)}"
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=defaults["trials"].default,
        help="search trials per kind (default: the train stage's, %(default)s)",
    )
    parser.add_argument(
        "--train-timeout",
        type=float,
        default=defaults["timeout_s"].default,
        help="search time budget per kind, seconds (default: the train stage's, %(default)s)",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before each run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (one wrk thread)")
    parser.add_argument(
        "--open-loop-threads", type=int, default=8, help="most requests in flight in the open loop"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("BANK_DATA_PATH") or DEFAULT_DATA),
        help="the bank-marketing CSV (default: BANK_DATA_PATH, else ../shared/data/bank-marketing/)",
    )
    parser.add_argument("--skip-nolog", action="store_true", help="skip the logging-off comparison")
    parser.add_argument(
        "--log-only",
        action="store_true",
        help="per kind only the prediction log at max rate on SQLite and Postgres (answered = written)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="per kind only what the summary line needs: no logging-off comparison, no batch run, "
        "mlflow serve with a new connection per request only (for --all)",
    )
    parser.add_argument(
        "--challenger",
        action="store_true",
        help="also measure the predictor in shadow mode (a second version scored on every request)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu), then run again")
    if not args.data.is_file():
        sys.exit(f"the data file {args.data} is missing: pass --data or set BANK_DATA_PATH")
    TrainOptions(trials=args.trials, timeout_s=args.train_timeout)  # bad values stop here
    kinds = list(CANDIDATES) if args.all else [args.candidate]
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before xgboost loads libgomp
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    outcomes: dict[str, dict] = {}
    hello = None
    try:
        with contextlib.ExitStack() as stack:
            log(f"working in {root}; kinds: {', '.join(kinds)}")
            registry, uri = mlflow_server(root / "mlflow")
            stack.callback(registry.stop)
            if not args.quick:  # the prediction log's second store
                args.postgres = Postgres()
                stack.callback(args.postgres.stop)
            log(f"MLflow server at {uri}; prepare")
            with contextlib.redirect_stdout(sys.stderr):
                manifest, customers = prepare_data(root / "model", args.data, uri)
            prepared_s = time.perf_counter() - started
            files = write_bodies(root, customers)
            for number, kind in enumerate(kinds, start=1):
                log(f"{kind} ({number}/{len(kinds)}): train, deploy")
                outcome = outcomes[kind] = {"setup": None, "results": None, "error": None}
                try:
                    with contextlib.redirect_stdout(sys.stderr):  # MLflow's run links: not the report
                        setup = outcome["setup"] = register_model(
                            root / "model", args.data, uri, manifest, kind, args
                        )
                    log(
                        f"registered {setup['model_name']} v{setup['version']} as production in "
                        f"{setup['seconds']:.0f} s"
                    )
                    outcome["results"] = run_kind(root / kind, uri, setup, files, args)
                except Exception as exc:  # the next kind still runs; the report says why
                    log(f"{kind}: FAILED\n{traceback.format_exc()}")
                    outcome["error"] = f"{type(exc).__name__}: {str(exc).strip()[:500]}"
            measured = [o["results"] for o in outcomes.values() if o["results"] and not args.log_only]
            rates = [results["half"]["rate"] for results in measured]
            if rates:
                try:
                    hello = run_hello(root, files, max(rates), args)
                except Exception:
                    log(f"flask hello: FAILED\n{traceback.format_exc()}")
        report(outcomes, hello, prepared_s, args, time.perf_counter() - started)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if any(outcome["error"] for outcome in outcomes.values()) or (hello is None and not args.log_only):
        sys.exit(1)


if __name__ == "__main__":
    main()
