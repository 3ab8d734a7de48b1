"""Serving benchmark: the gunicorn predictor against `mlflow models serve` and a Flask floor.

Sets up everything in a temporary folder (removed at the end): a real MLflow server on a free
port, the `prepare` stage on the real data, one calibrated XGBoost candidate with fixed
parameters (300 trees, as the anchor; registered by the `train` stage with its search space
pinned to those parameters) and `deploy`, which gives it the alias `production`. Then, one
server at a time on this machine, against that same registered model:

1. the predictor: `gunicorn -c python:bankmarketing.serving.gunicorn_conf
   'bankmarketing.serving.app:create_app()'`, 2 workers, prediction logging on (its default,
   DATABASE_URL a temporary SQLite file), Prometheus multiprocess metrics on (as `make serve`
   and the image run it): POST /predict with one real customer; then p99 when driven
   open-loop at half its max req/s; then POST /predict/batch with 1,000 customers (rows/s);
2. the predictor again with PREDICTOR_LOG_PREDICTIONS=false (comparison);
3. the anchor: `mlflow models serve -m models:/<name>@production --env-manager local -w 2`,
   POST /invocations with {"dataframe_records": [customer]}, with keep-alive connections and
   with a new connection per request (as the gunicorn servers work); the ratio takes the faster
   (requirements.txt pins Starlette < 1: mlflow 3.2's scoring server calls `FastAPI.route`);
4. the floor: bench/hello_app.py (POST / returns a small JSON) under the same gunicorn config.

Max throughput and latency come from wrk (closed loop: --connections connections, one
thread; `apt-get install -y wrk`), the same settings for every server. Latency at half rate
comes from a constant-rate Python load generator here: requests are scheduled at fixed
intervals and each latency counts from its scheduled send time, so a slow server cannot hide
queueing (no coordinated omission); the same open loop at the same rate also runs against the
logging-off predictor and the hello app (the method's floor). Client and servers share the
machine's cores, so every run also reports the cores that other processes used meanwhile.

Anchors measured on this machine before: mlflow models serve 281 req/s, p50 24 ms,
p99 126 ms; Flask hello 5,292 req/s, p50 1.4 ms. Targets: predictor >= 8x mlflow serve and
>= 0.40x hello in req/s, batch >= 50,000 rows/s, p99 <= 10 ms at half the max rate.

With --challenger, a second version becomes the `challenger` and the predictor is measured
again in shadow mode (every request scored by both versions, both scores logged); the report
gives its ratio to the production-only predictor of the same run.

    .venv/app/bin/python bench/serving.py [--duration 15] [--connections 8] [--challenger]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import requests

from bankmarketing.training.candidates import REFERENCE_XGBOOST_PARAMS

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DEFAULT_DATA = REPO.parent / "shared/data/bank-marketing/bank-marketing.csv"
WRK_SCRIPT = BENCH / "wrk_post.lua"
GUNICORN_CONF = "python:bankmarketing.serving.gunicorn_conf"
MODEL_NAME = "bench-serving"
BATCH_ROWS = 1_000
#: The anchor's model: XGBoost with 300 trees (the same parameters as bench/scoring.py).
ANCHOR_MLFLOW = {"rps": 281.0, "p50": 24.0, "p99": 126.0}
ANCHOR_HELLO = {"rps": 5292.0, "p50": 1.4}
TARGETS = {"vs_mlflow": 8.0, "vs_hello": 0.40, "batch_rows_s": 50_000.0, "half_rate_p99_ms": 10.0}


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


def register_model(
    root: Path, data_path: Path, tracking_uri: str, challenger: bool = False
) -> tuple[list[dict], dict]:
    """prepare -> train (the reference XGBoost) -> deploy; returns test customers and a summary.

    With `challenger`, a second training run of the same model becomes the `challenger`
    (deploy --role challenger): a second version to score beside production.
    """
    from bankmarketing.data.prepare import PrepareOptions, prepare, read_split
    from bankmarketing.data.schema import FEATURES
    from bankmarketing.deployment import DeployOptions, deploy
    from bankmarketing.training.candidates import CANDIDATES
    from bankmarketing.training.train import TrainOptions, train

    settings = bench_settings(root, data_path, tracking_uri, MODEL_NAME)
    started = time.perf_counter()
    manifest = prepare(settings, PrepareOptions())
    # The train stage's own procedure (calibration, threshold, signature, registration) with
    # the search space pinned to one point: a fixed 300-tree XGBoost like the anchor's.
    searched = CANDIDATES["xgboost"]
    CANDIDATES["xgboost"] = replace(searched, suggest=lambda trial, ratio: dict(REFERENCE_XGBOOST_PARAMS))
    try:
        options = TrainOptions(
            candidates=["xgboost"], trials=1, timeout_s=30, cv_folds=2, importance_rows=300
        )
        trained = train(settings, options, manifest)
        deployed = deploy(settings, DeployOptions(build_image=False))
        if deployed["action"] != "promote":
            raise RuntimeError(f"deploy did not promote the model: {deployed}")
        if challenger:
            train(settings, options, manifest)
            challenged = deploy(settings, DeployOptions(build_image=False, role="challenger"))
            if challenged["action"] != "challenge":
                raise RuntimeError(f"deploy did not set a challenger: {challenged}")
    finally:
        CANDIDATES["xgboost"] = searched
    test = read_split(manifest, "test")
    customers = [
        {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
        for row in test[list(FEATURES)].to_dict("records")
    ]
    summary = {
        "version": deployed["production"],
        "val_pr_auc": trained["candidates"][0]["metrics"]["pr_auc"],
        "test_pr_auc": deployed["test_metrics"]["pr_auc"],
        "seconds": time.perf_counter() - started,
    }
    return customers, summary


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


def open_loop(port: int, path: str, body: bytes, rate: float, duration_s: float, concurrency: int) -> dict:
    """Requests scheduled every 1/rate s; latency from the scheduled time to the full response."""
    payload = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
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
                status = connection.exchange(payload)
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


def logged_rows(database: Path) -> int:
    if not database.is_file():
        return 0
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute("SELECT COUNT(*) FROM prediction_log").fetchone()[0]


def run(root: Path, uri: str, customers: list[dict], args) -> dict:
    from bankmarketing.database import engine_for

    customer = customers[0]
    bodies = {
        "predict": json.dumps({"customer": customer}),
        "batch": json.dumps({"customers": [customers[i % len(customers)] for i in range(BATCH_ROWS)]}),
        "invocations": json.dumps({"dataframe_records": [customer]}),
    }
    files = {name: root / f"{name}.json" for name in bodies}
    for name, text in bodies.items():
        files[name].write_text(text)
    predict_body = bodies["predict"].encode()
    json_headers = {"Content-Type": "application/json"}
    gunicorn = [str(BIN / "gunicorn"), "-c", GUNICORN_CONF]
    results: dict = {}

    def predictor(tag: str, log_predictions: bool, **extra: str):
        port = free_port()
        database = f"sqlite:///{root / f'platform-{tag}.db'}"
        # The tables first: both workers creating them at once in a new SQLite file race,
        # and the loser fails to boot ("table ... already exists").
        engine_for(database).dispose()
        env = server_env(
            MLFLOW_TRACKING_URI=uri,
            MODEL_NAME=MODEL_NAME,
            DATABASE_URL=database,
            BANK_DATA_DIR=str(root / f"data-{tag}"),
            PREDICTOR_HOST="127.0.0.1",
            PREDICTOR_PORT=str(port),
            PREDICTOR_WORKERS="2",
            PREDICTOR_CACHE_DIR=str(root / f"cache-{tag}"),
            PREDICTOR_LOG_PREDICTIONS=str(log_predictions).lower(),
            PROMETHEUS_MULTIPROC_DIR=str(root / f"prometheus-{tag}"),
            **extra,
        )
        return running(
            f"predictor (logging {tag})",
            [*gunicorn, "bankmarketing.serving.app:create_app()"],
            env,
            root / f"predictor-{tag}.log",
            port,
            lambda: requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200,
        )

    # 1. the predictor, normal configuration: single, half rate, then batch (its 1,000 log
    # rows per request keep the prediction log's writer busy long after).
    with predictor("on", True) as server:
        base = f"http://127.0.0.1:{server.port}"
        answer = requests.post(f"{base}/predict", data=bodies["predict"], headers=json_headers, timeout=10)
        answer.raise_for_status()
        results["p_predictor"] = answer.json()["probability"]
        check = requests.post(f"{base}/predict/batch", data=bodies["batch"], headers=json_headers, timeout=30)
        check.raise_for_status()
        if len(check.json()["predictions"]) != BATCH_ROWS:
            raise RuntimeError("the batch answer does not have one prediction per customer")
        results["predictor"] = measure("predictor", server, "/predict", files["predict"], args)
        time.sleep(2)  # the prediction log's writer catches up (it batches every 0.5 s)
        rate = results["predictor"].rps / 2
        results["half"] = half_rate("predictor", server, "/predict", predict_body, rate, args)
        results["batch"] = measure("predictor batch", server, "/predict/batch", files["batch"], args)
        time.sleep(5)  # let the prediction log's writer flush what it can before the stop
        results["scored"] = scored_rows(base)
    results["logged"] = logged_rows(root / "platform-on.db")
    results["left_spilled"] = spilled_rows(root / "cache-on/prediction-log-spill")

    # 2. the predictor without the prediction log (comparison), the same open-loop rate.
    if not args.skip_nolog:
        with predictor("off", False) as server:
            results["predictor_nolog"] = measure(
                "predictor, no log", server, "/predict", files["predict"], args
            )
            results["half_nolog"] = half_rate(
                "predictor, no log", server, "/predict", predict_body, rate, args
            )
            results["batch_nolog"] = measure(
                "predictor batch, no log", server, "/predict/batch", files["batch"], args
            )

    # 2b. the predictor with a shadow challenger: every request scored by two versions.
    if args.challenger:
        with predictor("shadow", True, PREDICTOR_CHALLENGER_MODE="shadow") as server:
            info = requests.get(f"http://127.0.0.1:{server.port}/challenger", timeout=10).json()
            if not (info["challenger"] or {}).get("scoring"):
                raise RuntimeError(f"the shadow predictor is not scoring a challenger: {info}")
            results["shadow"] = measure(
                "predictor, shadow challenger", server, "/predict", files["predict"], args
            )
            time.sleep(2)
            results["batch_shadow"] = measure(
                "predictor batch, shadow challenger", server, "/predict/batch", files["batch"], args
            )

    # 3. the anchor: mlflow models serve on the same registered model.
    port = free_port()
    model_uri = f"models:/{MODEL_NAME}@production"
    argv = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    argv += ["-w", "2", "-p", str(port), "-h", "127.0.0.1"]
    env = server_env(MLFLOW_TRACKING_URI=uri)
    results["mlflow_how"] = "mlflow models serve --env-manager local -w 2"
    with running(
        "mlflow scoring server",
        argv,
        env,
        root / "mlflow-serve.log",
        port,
        lambda: requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200,
        timeout_s=120,
    ) as server:
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            data=bodies["invocations"],
            headers=json_headers,
            timeout=30,
        )
        answer.raise_for_status()
        predictions = answer.json()["predictions"]
        results["p_mlflow"] = float(np.ravel(predictions)[-1])  # predict_proba: [[p(no), p(yes)]]
        # uvicorn keeps connections open, and here a request on a reused connection waits
        # ~45 ms more (wrk with one connection: ~50 ms a request with keep-alive, ~6 ms with a
        # new connection each), while gunicorn's sync workers close after every response
        # anyway. So both ways, and the ratios use the faster.
        keep = measure(
            "mlflow scoring server, keep-alive", server, "/invocations", files["invocations"], args
        )
        close = measure(
            "mlflow scoring server, Connection: close",
            server,
            "/invocations",
            files["invocations"],
            args,
            True,
        )
        results["mlflow_keepalive"], results["mlflow_close"] = keep, close
        results["mlflow"] = max(keep, close, key=lambda load: load.rps)

    # 4. the floor: hello under the same gunicorn config, then the same open loop.
    port = free_port()
    with running(
        "flask hello",
        [*gunicorn, "--chdir", str(BENCH), "hello_app:create_app()"],
        server_env(PREDICTOR_HOST="127.0.0.1", PREDICTOR_PORT=str(port), PREDICTOR_WORKERS="2"),
        root / "hello.log",
        port,
        lambda: requests.post(f"http://127.0.0.1:{port}/", data=bodies["predict"], timeout=2).ok,
        cwd=BENCH,
    ) as server:
        results["hello"] = measure("flask hello", server, "/", files["predict"], args)
        results["half_hello"] = half_rate("flask hello", server, "/", predict_body, rate, args)
    return results


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def report(results: dict, setup: dict, args, elapsed_s: float) -> None:
    hello, anchor, on, batch = results["hello"], results["mlflow"], results["predictor"], results["batch"]
    half = results["half"]
    rule = "-" * 108
    print()
    print(f"serving benchmark on {machine()}, load average {os.getloadavg()[0]:.1f} at the end")
    print(
        f"model: {MODEL_NAME} v{setup['version']} "
        f"(XGBoost {REFERENCE_XGBOOST_PARAMS['n_estimators']} trees + isotonic "
        f"calibration, val PR-AUC {setup['val_pr_auc']:.3f}, test {setup['test_pr_auc']:.3f}), "
        f"prepared, trained and deployed in {setup['seconds']:.0f} s"
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
    print(f"{'':<44}{'':>9}{'':>8}{'':>8}{'':>7}{'cores':>8}{'cores':>8}")
    print(rule)

    def row(name: str, load: Load, anchor_text: str = "") -> None:
        print(
            f"{name:<44}{load.rps:>9,.0f}{load.p50:>8.2f}{load.p99:>8.2f}{load.errors:>7}"
            f"{load.server_cpu:>8.2f}{load.others_cpu:>8.2f}  {anchor_text}"
        )

    row("predictor /predict, logging on (normal)", on)
    if "predictor_nolog" in results:
        row("predictor /predict, logging off", results["predictor_nolog"])
    row(
        "mlflow serve /invocations, keep-alive",
        results["mlflow_keepalive"],
        "281 req/s, p50 24 ms, p99 126 ms",
    )
    row("mlflow serve /invocations, Connection: close", results["mlflow_close"])
    row("flask hello, same gunicorn config (floor)", hello, "5,292 req/s, p50 1.4 ms")
    row(f"predictor /predict/batch x{BATCH_ROWS:,}, logging on", batch)
    if "batch_nolog" in results:
        row(f"predictor /predict/batch x{BATCH_ROWS:,}, logging off", results["batch_nolog"])
    if "shadow" in results:
        row("predictor /predict, shadow challenger", results["shadow"])
        row(f"predictor /predict/batch x{BATCH_ROWS:,}, shadow challenger", results["batch_shadow"])
    print(rule)

    def verdict(ok: bool) -> str:
        return "meets the target" if ok else "MISSES the target"

    vs_mlflow, vs_hello, rows_s = on.rps / anchor.rps, on.rps / hello.rps, batch.rps * BATCH_ROWS
    print(
        f"predictor / mlflow serve req/s {vs_mlflow:9.1f} x    target >= {TARGETS['vs_mlflow']:.0f} x: "
        f"{verdict(vs_mlflow >= TARGETS['vs_mlflow'])} (/ the published 281 req/s: "
        f"{on.rps / ANCHOR_MLFLOW['rps']:.1f} x)"
    )
    print(
        f"predictor / hello req/s        {vs_hello:9.3f}      target >= {TARGETS['vs_hello']:.2f}: "
        f"{verdict(vs_hello >= TARGETS['vs_hello'])} (/ the published 5,292 req/s: "
        f"{on.rps / ANCHOR_HELLO['rps']:.2f})"
    )
    nolog_rows = (
        f"; logging off {results['batch_nolog'].rps * BATCH_ROWS:,.0f}" if "batch_nolog" in results else ""
    )
    print(
        f"batch rows/s, logging on       {rows_s:9,.0f}      target >= {TARGETS['batch_rows_s']:,.0f}: "
        f"{verdict(rows_s >= TARGETS['batch_rows_s'])}{nolog_rows}"
    )
    if "shadow" in results:
        shadow, batch_shadow = results["shadow"].rps / on.rps, results["batch_shadow"].rps / batch.rps
        print(
            f"shadow challenger / production only: req/s {shadow:.3f}, batch rows/s {batch_shadow:.3f} "
            f"(vs mlflow serve {results['shadow'].rps / anchor.rps:.1f} x)"
        )
    p99_target = TARGETS["half_rate_p99_ms"]
    print(
        f"p99 at half the max rate       {half['p99']:9.2f} ms   "
        f"target <= {p99_target:.0f} ms: {verdict(half['p99'] <= p99_target)}"
    )
    print(rule)
    print(
        f"open loop: {half['rate']:,.0f} req/s (half of {on.rps:,.0f}) for {args.duration:.0f} s after a "
        f"{args.warmup:.0f} s warm-up, up to {args.open_loop_threads} requests in flight, latency from the "
        "scheduled send time"
    )
    runs = [("predictor, logging on", half)]
    runs += [("predictor, logging off", results["half_nolog"])] if "half_nolog" in results else []
    runs += [("flask hello (the method's floor)", results["half_hello"])]
    for name, r in runs:
        failures = f" {r['failure_kinds']}" if r["failures"] else ""
        print(
            f"  {name:<34} p50 {r['p50']:5.2f}  p90 {r['p90']:5.2f}  p99 {r['p99']:6.2f}  p99.9 "
            f"{r['p999']:6.2f}  max {r['max']:6.1f} ms; achieved {r['achieved_rps']:,.0f} req/s, "
            f"failures {r['failures']}{failures}, send lag p99 {r['send_lag_p99']:.2f} ms; cores: server "
            f"{r['server_cpu']:.2f}, client {r['client_cpu']:.2f}, others {r['others_cpu']:.2f}"
        )
    scored, logged, left = results["scored"], results["logged"], results["left_spilled"]
    print(
        f"prediction log (logging-on server): {scored:,} rows scored; in the database after the stop "
        f"{logged:,} ({logged / max(1, scored):.1%}), in spill files for the next start {left:,}, not logged "
        f"{scored - logged - left:,} (dropped when the writer falls behind by more than its in-memory "
        "bound; counted in predictor_prediction_log_dropped)"
    )
    print(f"mlflow anchor: {results['mlflow_how']}")
    print(
        f"same model: /predict probability {results['p_predictor']:.6f}, /invocations "
        f"{results['p_mlflow']:.6f}"
    )
    print(
        "'others cores': CPU used meanwhile by processes that are neither the server nor the load "
        "generator (other work on this machine); high values make the numbers pessimistic"
    )
    print(f"total time {elapsed_s:.0f} s")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
        "--challenger",
        action="store_true",
        help="also measure the predictor in shadow mode (a second version scored on every request)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu), then run again")
    if not args.data.is_file():
        sys.exit(f"the data file {args.data} is missing: pass --data or set BANK_DATA_PATH")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before xgboost loads libgomp
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        with contextlib.ExitStack() as stack:
            log(f"working in {root}")
            registry, uri = mlflow_server(root / "mlflow")
            stack.callback(registry.stop)
            log(f"MLflow server at {uri}; prepare, train, deploy")
            customers, setup = register_model(root / "model", args.data, uri, args.challenger)
            log(f"registered {MODEL_NAME} v{setup['version']} as production in {setup['seconds']:.0f} s")
            results = run(root, uri, customers, args)
        report(results, setup, args, time.perf_counter() - started)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
