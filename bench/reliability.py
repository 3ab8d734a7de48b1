"""Reliability under load: a promotion in the middle of the load, and a gunicorn worker killed.

Sets up in a temporary folder (removed at the end) a real MLflow server, the `prepare`
stage on the real data, a logistic regression promoted to `production` (v1) and an XGBoost
candidate registered beside it (not promoted yet). Then the predictor runs under gunicorn
(2 workers, prediction log on, the alias polled every second) and:

1. the maximum rate: wrk, closed loop, as bench/serving.py measures it;
2. a promotion under load: open loop at 80 % of that rate for --duration s (60); after a
   third of it the real `deploy` stage (staging, the test-split gate) promotes the XGBoost
   version. Every response must be a 200 naming the version that scored it; the version must
   change once: the two workers switch at the instant they agreed on through the shared cache
   (PREDICTOR_SWITCH_DELAY_SECONDS after the first one sees the new version), so no request
   sent after the first v2 answer arrived may get v1;
3. a worker killed under load: the same open loop for --kill-duration s (30); after a third
   of it one worker gets SIGKILL. Failed requests must stay under 0.1 %, and the master must
   start a replacement (2 workers again).

Targets (issue "Reliability and security"): zero failed requests during the promotion,
< 0.1 % failed when a worker is killed.

    .venv/app/bin/python bench/reliability.py [--duration 60] [--kill-duration 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving as base  # noqa: E402  (bench/serving.py: servers, wrk, the open-loop client)

MODEL_NAME = "bench-reliability"


def register_two(root: Path, data_path: Path, uri: str):
    """v1 (logistic regression) in production; the XGBoost candidate registered, not promoted."""
    from bankmarketing.data.prepare import PrepareOptions, prepare, read_split
    from bankmarketing.data.schema import FEATURES
    from bankmarketing.deployment import DeployOptions, deploy
    from bankmarketing.training.train import TrainOptions, train

    settings = base.bench_settings(root, data_path, uri, MODEL_NAME)
    manifest = prepare(settings, PrepareOptions())
    quick = {"trials": 1, "cv_folds": 2, "importance_rows": 300}
    train(settings, TrainOptions(candidates=["logistic_regression"], **quick), manifest)
    first = deploy(settings, DeployOptions(build_image=False, predictor_dir=str(root / "context")))
    train(settings, TrainOptions(candidates=["xgboost"], **quick), manifest)
    customer = read_split(manifest, "test")[list(FEATURES)].head(1).to_dict("records")[0]
    return settings, first["production"], customer


def versioned_open_loop(port: int, body: bytes, rate: float, duration_s: float, threads: int, at=None):
    """The open loop of bench/serving.py, keeping each answer's time, status and model version.

    `at` = (seconds after the start, callable) runs the callable in a thread at that moment.
    """
    payload = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    total = max(1, int(rate * duration_s))
    counter = iter(range(total))
    lock = threading.Lock()
    answers: list[tuple[float, int, str | None, float]] = []  # received, status, version, sent (s)
    start = time.perf_counter() + 0.2

    def client() -> None:
        connection = base._Connection(("127.0.0.1", port))
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent = time.perf_counter() - start
            try:
                status, raw = connection.exchange_body(payload)
                version = json.loads(raw).get("model_version") if status == 200 else None
            except (OSError, ValueError) as exc:
                status, version = 0, type(exc).__name__
            with lock:
                answers.append((time.perf_counter() - start, status, version, sent))
        connection.close()

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    timer = None
    if at is not None:
        timer = threading.Timer(max(0.0, start - time.perf_counter()) + at[0], at[1])
        timer.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if timer is not None:
        timer.join()
    return answers


def gunicorn_workers(master_pid: int) -> list[int]:
    """The master's live children (its workers)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == master_pid and stat[0] != "Z":
                children.append(int(entry.name))
    return sorted(children)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--data", type=Path, default=base.DEFAULT_DATA)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load with the promotion")
    parser.add_argument("--kill-duration", type=float, default=30.0, help="seconds of load with the kill")
    parser.add_argument("--load-share", type=float, default=0.8, help="share of the max rate to drive")
    parser.add_argument("--threads", type=int, default=8, help="most requests in flight in the open loop")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-reliability-"))
    mlflow, uri = base.mlflow_server(root / "mlflow")
    try:
        settings, v1, customer = register_two(root, args.data, uri)
        body = json.dumps({"customer": customer}).encode()
        (root / "predict.json").write_bytes(body)
        port = base.free_port()
        database = f"sqlite:///{root / 'platform.db'}"
        from bankmarketing.database import migrate_database

        migrate_database(database)  # as `make up` does
        env = base.server_env(
            MLFLOW_TRACKING_URI=uri,
            MODEL_NAME=MODEL_NAME,
            DATABASE_URL=database,
            BANK_DATA_DIR=str(root / "data"),
            PREDICTOR_HOST="127.0.0.1",
            PREDICTOR_PORT=str(port),
            PREDICTOR_WORKERS="2",
            PREDICTOR_POLL_SECONDS="1",
            PREDICTOR_SWITCH_DELAY_SECONDS="3",
            PREDICTOR_CACHE_DIR=str(root / "cache"),
            PROMETHEUS_MULTIPROC_DIR=str(root / "prometheus"),
        )
        with base.running(
            "predictor",
            [str(base.BIN / "gunicorn"), "-c", base.GUNICORN_CONF, "bankmarketing.serving.app:create_app()"],
            env,
            root / "predictor.log",
            port,
            lambda: requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200,
        ) as server:
            top = base.wrk(f"http://127.0.0.1:{port}/predict", root / "predict.json", 10, 8)
            rate = args.load_share * top.rps
            base.log(f"max {top.rps:,.0f} req/s (wrk); driving {rate:,.0f} req/s")
            time.sleep(2)

            promoted: dict = {}

            def promote() -> None:
                from bankmarketing.deployment import DeployOptions, deploy

                started = time.perf_counter()
                options = DeployOptions(build_image=False, predictor_dir=str(root / "c2"))
                promoted.update(deploy(settings, options))
                promoted["seconds"] = time.perf_counter() - started

            at = (args.duration / 3, promote)
            swap = versioned_open_loop(port, body, rate, args.duration, args.threads, at)
            workers_before = gunicorn_workers(server.process.pid)

            def kill() -> None:
                victim = gunicorn_workers(server.process.pid)[0]
                base.log(f"SIGKILL worker {victim}")
                os_kill(victim)

            killed = versioned_open_loop(
                port, body, rate, args.kill_duration, args.threads, (args.kill_duration / 3, kill)
            )
            time.sleep(3)
            workers_after = gunicorn_workers(server.process.pid)
        report(swap, killed, v1, promoted, rate, top.rps, workers_before, workers_after, args)
    finally:
        mlflow.stop()
        shutil.rmtree(root, ignore_errors=True)


def os_kill(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGKILL)


def report(swap, killed, v1, promoted, rate, top, before, after, args) -> None:
    v2 = promoted.get("production")
    failed = [a for a in swap if a[1] != 200]
    versions = [a[2] for a in swap if a[1] == 200]
    named = all(v in (v1, v2) for v in versions)
    first_v2 = min((a[0] for a in swap if a[2] == v2), default=None)
    last_v1 = max((a[0] for a in swap if a[2] == v1), default=None)
    overlap = [a for a in swap if a[2] == v1 and first_v2 is not None and a[0] > first_v2]
    late_v1 = [a for a in swap if a[2] == v1 and first_v2 is not None and a[3] > first_v2]
    once = first_v2 is not None and not late_v1
    kill_failed = [a for a in killed if a[1] != 200]
    share = len(kill_failed) / max(1, len(killed))
    print()
    print(f"max rate (wrk, closed loop, 8 connections): {top:,.0f} req/s; load: {rate:,.0f} req/s open loop")
    print(
        f"promotion under load ({args.duration:.0f} s): deploy -> {promoted.get('action')} "
        f"v{v1} -> v{v2} in {promoted.get('seconds', float('nan')):.1f} s"
    )
    print(
        f"  requests {len(swap):,}, failed {len(failed)} (target 0)"
        f"{'  kinds ' + str(sorted({str(a[2]) for a in failed})) if failed else ''}"
    )
    window = max(0.0, (last_v1 or 0) - (first_v2 or 0)) * 1e3
    print(
        f"  every answer names v{v1} or v{v2}: {named}; first v{v2} at {first_v2:.2f} s, last v{v1} at "
        f"{last_v1:.2f} s; v{v1} answers arriving after the first v{v2}: {len(overlap)} (requests "
        f"already in flight; window {window:.1f} ms)"
    )
    print(
        f"  the version changed once: {once} (v{v1} answers to requests sent after the first v{v2} "
        f"arrived: {len(late_v1)}, target 0)"
    )
    print(
        f"worker killed under load ({args.kill_duration:.0f} s): requests {len(killed):,}, failed "
        f"{len(kill_failed)} = {share:.4%} (target < 0.1 %); workers {before} -> {after} "
        f"({'replaced' if len(after) == len(before) and after != before else 'NOT replaced'})"
    )
    ok = not failed and named and once and share < 0.001 and len(after) == len(before)
    print(f"verdict: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
