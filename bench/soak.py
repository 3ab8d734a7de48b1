"""Soak: the local stack under steady load for --minutes (30), with monitor, an alert-driven
retrain and a promotion during it; errors, p99 per window, memory of every service, and rows
logged against rows answered.

Everything runs in a temporary folder (removed at the end) on free ports: the local stack as
`make up` starts it (honcho: MLflow, Mage, the predictor under gunicorn with its SQLite
prediction log, the alert receiver, Streamlit), then Mage `prepare`, `train` (--trials,
--train-timeout: a short search, the soak measures the platform, not the model) and `deploy`.
Then:

* the load: wrk finds the predictor's max rate on POST /predict (10 s); the soak drives it
  open-loop at half that rate (--load-share) with real customers of the later months, cycled
  (every latency counted from its scheduled send time), plus one POST /predict/batch of 100
  customers every 2 s, for --minutes, in windows of --window minutes;
* `monitor` (Mage, `{"source": "log", "granularity": "hour"}`) every --monitor-every
  minutes: the later months' customers drift from the Dec-May reference, so the first run
  posts the drift alert, the receiver starts Mage `retrain` (its cooldown keeps it to one), and
  the retrain's gate decides;
* the set-up trains logistic regression alone, so the retrain's full search (every kind)
  usually beats it at the gate: the promotion happens during the soak, and the predictor
  hot-swaps under load. The report lists the promotions the audit table recorded (none when
  the gate kept production, with its reason in the retraining row).

Printed per window: requests, errors, p50/p99, and the resident memory (RSS, summed over a
service's processes) of each service; at the end the growth of each service's RSS from the end
of the first window (warm-up) to the end, and rows logged vs answered (the predictor's own
count; the log read after the stack stops, spilled rows included). The last line:

    soak: minutes=M errors=E p99_max_ms=X rss_growth_max_pct=G answered=A logged=L

Goals: 0 errors, RSS growth <= 10 % after warm-up, logged = answered. Needs wrk
(`apt-get install -y wrk`). Full run: `.venv/app/bin/python bench/soak.py` (about 40 min with
set-up); a short check: `--minutes 6 --window 2 --monitor-every 2`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from serving import free_port, log, open_loop, scored_rows, wrk  # noqa: E402  bench/serving.py

DEFAULT_DATA = REPO.parent / "shared/data/bank-marketing/bank-marketing.csv"
SERVICES = ("mlflow", "mage", "predictor", "alerts", "streamlit")


def stack_root(root: Path) -> Path:
    """A folder the stack runs from: the repository's code and environments, a copy of the Mage
    project (Mage writes into the project it serves)."""
    stack = root / "stack"
    stack.mkdir()
    for name in ("Procfile", "src", ".venv"):
        (stack / name).symlink_to(REPO / name)
    shutil.copytree(
        REPO / "mlops", stack / "mlops", ignore=shutil.ignore_patterns(".file_versions", "__pycache__")
    )
    return stack


def soak_environment(root: Path, data: Path) -> dict[str, str]:
    """The stack's settings: every port free, every state folder under `root`."""
    ports = {
        name: str(free_port()) for name in ("MLFLOW", "MAGE", "PREDICTOR", "ALERT_RECEIVER", "STREAMLIT")
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"))}
    for name in ("DATABASE_URL", "MLFLOW_TRACKING_PASSWORD", "PREDICTOR_API_KEY", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    env |= {f"{name}_PORT": port for name, port in ports.items()}
    env |= {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['MLFLOW']}",
        "PREDICTOR_URL": f"http://127.0.0.1:{ports['PREDICTOR']}",
        "ALERT_RECEIVER_URL": f"http://127.0.0.1:{ports['ALERT_RECEIVER']}/alerts",
        "MAGE_API_URL": f"http://127.0.0.1:{ports['MAGE']}",
        "STACK_RUN_DIR": str(root / "run"),
        "MLFLOW_DIR": str(root / "mlruns"),
        "BANK_DATA_DIR": str(root / "data"),
        "BANK_DATA_PATH": str(data),
        "MAGE_DATA_DIR": str(root / "mage_data"),
        "PREDICTOR_CACHE_DIR": str(root / "predictor-cache"),
        "PREDICTOR_POLL_SECONDS": "5",
        "MODEL_NAME": "soak",
        "MLFLOW_EXPERIMENT": "soak",
        "COLUMNS": "400",
    }
    return env


def mage(stack: Path, env: dict[str, str], pipeline: str, variables: dict | None = None) -> float:
    """`mage run mlops <pipeline>` at the priority of the Mage server's runs (nice 10, as its
    scheduler would run it); its seconds (the log kept on failure)."""
    started = time.perf_counter()
    command = ["nice", "-n", "10", str(REPO / ".venv/mage/bin/mage"), "run", "mlops", pipeline]
    if variables:
        command += ["--runtime-vars", json.dumps(variables)]
    done = subprocess.run(command, cwd=stack, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"mage run {pipeline} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - started


def service_rss_mb(stack: Path, env: dict[str, str]) -> dict[str, float]:
    """Resident memory of each service: the process honcho started and all its descendants."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            pid, ppid = int(fields["Pid"]), int(fields["PPid"])
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, KeyError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
        names[pid] = cmdline
    markers = {
        "mlflow": "mlflow-server",
        "mage": "mage start",
        "predictor": "bankmarketing.serving.app",
        "alerts": "bankmarketing.alerts.app",
        "streamlit": "streamlit run",
    }
    honcho = int((Path(env["STACK_RUN_DIR"]) / "stack.pid").read_text().split()[0])
    rss = {}
    for service, marker in markers.items():
        tops = [pid for pid in _descendants(honcho, children) if marker in names.get(pid, "")]
        tops = [
            pid for pid in tops if not any(pid in _descendants(top, children) for top in tops if top != pid)
        ]
        pids = {p for top in tops for p in (top, *_descendants(top, children))}
        rss[service] = sum(_rss_kb(pid) for pid in pids) / 1024
    return rss


def _descendants(pid: int, children: dict[int, list[int]]) -> list[int]:
    found, stack = [], list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def bodies(data: Path, count: int) -> tuple[list[bytes], bytes]:
    """Single-customer bodies from the later months (Jun-Nov: they drift), and a batch of 100."""
    sys.path.insert(0, str(REPO / "src"))
    from bankmarketing.data.loading import read_raw
    from bankmarketing.data.schema import FEATURES
    from bankmarketing.data.validation import validate

    frame = validate(read_raw(data)).clean  # typed, as the predictor expects them
    later = frame[frame["month"].isin(["jun", "jul", "aug", "sep", "oct", "nov"])]
    rows = later.sample(n=count, random_state=7)[list(FEATURES)]
    records = json.loads(rows.to_json(orient="records"))
    singles = [json.dumps({"customer": r}).encode() for r in records]
    return singles, json.dumps({"customers": records[:100]}).encode()


class Batches(threading.Thread):
    """One POST /predict/batch every `every_s` until stopped; counts answers and errors."""

    def __init__(self, url: str, body: bytes, every_s: float = 2.0):
        super().__init__(daemon=True)
        self.url, self.body, self.every_s = url, body, every_s
        self.stop, self.sent, self.errors = threading.Event(), 0, []

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.wait(self.every_s):
            try:
                answer = session.post(
                    f"{self.url}/predict/batch",
                    data=self.body,
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                self.sent += 1
                if answer.status_code != 200:
                    self.errors.append(str(answer.status_code))
            except requests.RequestException as exc:
                self.errors.append(type(exc).__name__)


def latency_buckets(url: str) -> dict[float, float]:
    """The predictor's POST /predict latency histogram (cumulative counts by upper bound, s)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    found = re.findall(
        r'^predictor_request_seconds_bucket\{endpoint="/predict",le="([^"]+)"\}\s+([\d.e+]+)$', text, re.M
    )
    return {float(bound): float(count) for bound, count in found}


def server_p99_ms(before: dict[float, float], after: dict[float, float]) -> float:
    """p99 of the requests between two scrapes, as the histogram's bucket bound (ms)."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts[float("inf")]
    return next((bound * 1e3 for bound, count in counts.items() if count >= 0.99 * total), float("nan"))


def logged_rows(env: dict[str, str]) -> int:
    import sqlalchemy as sa

    from bankmarketing.database import engine_for, prediction_log

    url = f"sqlite:///{Path(env['BANK_DATA_DIR']) / 'platform.db'}"
    with engine_for(url).connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(prediction_log)).scalar()


def retrainings(env: dict[str, str]) -> list[dict]:
    """The receiver's retraining rows (its admin listing)."""
    token = env.get("ALERT_RECEIVER_ADMIN_TOKEN")
    if not token:
        return []
    answer = requests.get(env["ALERT_RECEIVER_URL"], headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return answer.json().get("retrainings", []) if answer.ok else []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=5.0, help="minutes per reported window")
    parser.add_argument("--monitor-every", type=float, default=5.0, help="minutes between monitor runs")
    parser.add_argument("--load-share", type=float, default=0.5, help="share of the max rate driven")
    parser.add_argument(
        "--clients",
        type=int,
        default=64,
        help="most requests in flight: enough that a slow moment of this client (2 cores shared "
        "with a retrain) does not cap the rate below the one asked for",
    )
    parser.add_argument("--trials", type=int, default=3, help="set-up train's search trials")
    parser.add_argument("--train-timeout", type=float, default=15.0, help="set-up train's search budget")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("BANK_DATA_PATH") or DEFAULT_DATA))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install -y wrk`, then run again")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM): stopping the stack"))
    root = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    env = soak_environment(root, args.data)
    env["ALERT_RECEIVER_ADMIN_TOKEN"] = os.urandom(16).hex()
    os.environ.update(env)
    from bankmarketing import services

    stack = stack_root(root)
    try:
        log(f"working in {root}; starting the local stack")
        log(services.up(stack).splitlines()[0])
        env = services.stack_environment(stack)  # with the stack's generated secrets
        for pipeline, variables in (
            ("prepare", None),
            (
                "train",
                {
                    "candidates": ["logistic_regression"],
                    "trials": args.trials,
                    "timeout_s": args.train_timeout,
                },
            ),
            ("deploy", None),
        ):
            log(f"mage {pipeline}: {mage(stack, env, pipeline, variables):.0f} s")
        url = env["PREDICTOR_URL"]
        deadline = time.monotonic() + 120
        while requests.get(f"{url}/ready", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the predictor never loaded the promoted version")
            time.sleep(1)
        singles, batch = bodies(args.data, 2_000)
        (root / "one.json").write_bytes(singles[0])
        port = int(url.rsplit(":", 1)[1])
        max_rate = wrk(f"{url}/predict", root / "one.json", 10, 8).rps
        rate = max_rate * args.load_share
        log(f"max rate {max_rate:,.0f} req/s (wrk, 10 s); the soak drives {rate:,.0f} req/s")
        batches = Batches(url, batch)
        batches.start()
        windows, started = [], time.monotonic()
        soak_start = pd.Timestamp.now(tz="UTC")
        monitor_times = list(np.arange(args.monitor_every, args.minutes, args.monitor_every) * 60)
        rss_start = service_rss_mb(stack, env)
        while (elapsed := time.monotonic() - started) < args.minutes * 60 - 1:
            seconds = min(args.window * 60, args.minutes * 60 - elapsed)
            monitor_runs: list[str] = []
            due = [t for t in monitor_times if elapsed <= t < elapsed + seconds]
            side = threading.Thread(
                target=run_monitors, args=(stack, env, started, due, monitor_runs), daemon=True
            )
            side.start()
            scraped = latency_buckets(url)
            result = open_loop(port, "/predict", singles, rate, seconds, args.clients)
            result["server_p99"] = server_p99_ms(scraped, latency_buckets(url))
            side.join()
            rss = service_rss_mb(stack, env)
            windows.append(result | {"rss": rss, "monitors": monitor_runs})
            log(
                f"window {len(windows)}: {result['requests']:,} requests, {result['failures']} errors "
                f"{result['failure_kinds']}, p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms "
                f"(server p99 <= {result['server_p99']:g} ms, send lag p99 {result['send_lag_p99']:.1f} ms); "
                f"monitor runs {monitor_runs or 'none'}; RSS MB "
                + ", ".join(f"{name} {mb:,.0f}" for name, mb in rss.items())
            )
        batches.stop.set()
        batches.join(60)
        retrained, promoted = retrainings(env), promotions_since(env, soak_start)
        time.sleep(3)
        answered = scored_rows(url)  # every row the predictor scored since it started
    finally:
        log(services.down(stack))
    logged = logged_rows(env)
    report(args, windows, rss_start, batches, retrained, promoted, answered, logged, max_rate, rate)
    shutil.rmtree(root, ignore_errors=True)


def run_monitors(stack: Path, env: dict[str, str], started: float, due: list[float], runs: list[str]) -> None:
    """Mage `monitor` on the prediction log at each of the `due` seconds of the soak's clock."""
    for at in due:
        time.sleep(max(0.0, started + at - time.monotonic()))
        seconds = mage(stack, env, "monitor", {"source": "log", "granularity": "hour"})
        runs.append(f"{seconds:.0f} s")


def promotions_since(env: dict[str, str], since: pd.Timestamp) -> list[str]:
    """Promotions and rollbacks the audit table recorded since `since`."""
    from bankmarketing.config import Settings
    from bankmarketing.deployment import audit_trail

    settings = Settings.from_env()
    trail = audit_trail(settings, settings.model_name)
    trail = trail[pd.to_datetime(trail["at"], utc=True) >= since]
    return [
        f"{row.action} v{row.from_version:.0f} -> v{row.to_version:.0f} by {row.triggered_by}"
        for row in trail.itertuples()
        if row.action in ("promote", "rollback")
    ]


def report(args, windows, rss_start, batches, retrained, promoted, answered, logged, max_rate, rate) -> None:
    print(
        f"soak: the local stack for {args.minutes:g} min at {rate:,.0f} req/s "
        f"({args.load_share:.0%} of its max rate, {max_rate:,.0f})"
    )
    print(
        "window  requests  errors  p50_ms  p99_ms  server_p99_ms  "
        + "  ".join(f"{s:>10}" for s in SERVICES)
    )
    for number, window in enumerate(windows, 1):
        print(
            f"{number:>6}  {window['requests']:>8,}  {window['failures']:>6}  {window['p50']:>6.1f}  "
            f"{window['p99']:>6.1f}  {window['server_p99']:>13g}  "
            + "  ".join(f"{window['rss'][s]:>8,.0f}MB" for s in SERVICES)
        )
    warm = windows[0]["rss"]
    end = windows[-1]["rss"]
    growth = {s: (end[s] - warm[s]) / warm[s] * 100 if warm[s] else float("nan") for s in SERVICES}
    print("RSS at the start: " + ", ".join(f"{s} {rss_start[s]:,.0f} MB" for s in SERVICES))
    print(
        "RSS growth after warm-up (end of window 1 to the end): "
        + ", ".join(f"{s} {g:+.1f} %" for s, g in growth.items())
    )
    print(
        f"batches of 100: {batches.sent} answered, {len(batches.errors)} errors {sorted(set(batches.errors))}"
    )
    print(
        f"retrainings started by alerts: {len(retrained)} "
        + "; ".join(f"{r.get('status')} ({r.get('detail', '')[:80]})" for r in retrained)
    )
    print(f"promotions during the soak (audit table): {'; '.join(promoted) or 'none'}")
    errors = sum(w["failures"] for w in windows) + len(batches.errors)
    p99 = max(w["p99"] for w in windows)
    print(f"rows answered {answered:,}, logged {logged:,} ({'equal' if answered == logged else 'NOT equal'})")
    print(
        f"soak: minutes={args.minutes:g} errors={errors} p99_max_ms={p99:.1f} "
        f"rss_growth_max_pct={np.nanmax(list(growth.values())):.1f} answered={answered} logged={logged}"
    )


if __name__ == "__main__":
    main()
