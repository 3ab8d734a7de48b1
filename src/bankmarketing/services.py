"""The local stack without Docker (`make up` / `make down`) and the background MLflow server.

`make up` runs the Procfile's processes under honcho, in their own session, with one
environment shared by all of them (the same variable names as the compose stack), waits
until each answers its health check and prints where everything is. `make down` stops
the whole process group and checks that no process of the stack is left.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from bankmarketing.config import ConfigurationError, Settings, check_credential


def run_dir(env: dict[str, str] | None = None) -> Path:
    """Pid files, logs and generated local secrets: STACK_RUN_DIR, default .run."""
    return Path((os.environ if env is None else env).get("STACK_RUN_DIR", ".run"))


def wait_until_healthy(url: str, timeout_s: float = 60.0) -> bool:
    """Poll `url` until it answers 200 or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def start_mlflow(settings: Settings) -> str:
    """Start `bankmarketing mlflow-server` in the background unless it already answers."""
    health = f"{settings.tracking_uri.rstrip('/')}/health"
    if wait_until_healthy(health, timeout_s=1):
        return f"MLflow already running at {settings.tracking_uri}"
    run_dir().mkdir(exist_ok=True)
    port = settings.tracking_uri.rstrip("/").rsplit(":", 1)[-1]
    log_path = run_dir() / "mlflow.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bankmarketing.cli", "mlflow-server", "--port", port],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (run_dir() / "mlflow.pid").write_text(str(process.pid))
    if not wait_until_healthy(health, timeout_s=90):
        raise SystemExit(f"MLflow did not become healthy at {health}; see {log_path}")
    return f"MLflow started at {settings.tracking_uri} (pid {process.pid}, log {log_path})"


def stop(name: str) -> str:
    """Stop a background service started here, by its process group."""
    pid_file = run_dir() / f"{name}.pid"
    if not pid_file.is_file():
        return f"{name} is not running (no {pid_file})"
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    pid_file.unlink()
    return f"{name} stopped (pid {pid})"


#: The Procfile's processes, in the order they start and are checked.
STACK = ("mlflow", "mage", "predictor", "alerts", "streamlit")
#: Secrets the local stack needs; generated once into .run/local-secrets.env when unset.
LOCAL_SECRETS = (
    "ALERT_RECEIVER_TOKEN",
    "MAGE_RETRAIN_TRIGGER_TOKEN",
    "PREDICTOR_ADMIN_TOKEN",
    "DEFAULT_OWNER_PASSWORD",
    "MAGE_JWT_SECRET",
)
#: Marks every process of one `make up`, so `make down` can prove none is left.
STACK_MARKER = "BANKMARKETING_STACK_ID"


def _defaults(root: Path, folder: Path) -> dict[str, str]:
    venv = root / ".venv"
    return {
        "APP_BIN": str(venv / "app/bin"),
        "MAGE_BIN": str(venv / "mage/bin"),
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": "5000",
        "MAGE_HOST": "127.0.0.1",
        "MAGE_PORT": "6789",
        "MAGE_DATA_DIR": str(root / ".mage_data"),
        "DEFAULT_OWNER_EMAIL": "owner@bankmarketing.local",
        "PREDICTOR_HOST": "127.0.0.1",
        "PREDICTOR_PORT": "9696",
        "ALERT_RECEIVER_HOST": "127.0.0.1",
        "ALERT_RECEIVER_PORT": "6790",
        "STREAMLIT_HOST": "127.0.0.1",
        "STREAMLIT_PORT": "8501",
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "prometheus"),
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


def local_secrets(env: dict[str, str], folder: Path) -> dict[str, str]:
    """Each stack secret from the environment, else generated once and kept in `folder`.

    A placeholder (CHANGE_ME, admin, ...) or a short value is refused: the stack does not
    start on a known secret.
    """
    problems = []
    for name in (*LOCAL_SECRETS, "ALERT_RECEIVER_HMAC_SECRET"):
        try:
            check_credential(name, env.get(name, "").strip() or None)
        except ConfigurationError as exc:
            problems.append(str(exc))
    if problems:
        raise SystemExit(
            f"refusing to start: {'; '.join(problems)} (in .env?); "
            "set real values or remove them to have `make up` generate local ones"
        )
    path = folder / "local-secrets.env"
    stored = _read_env_file(path)
    generated = {
        name: stored.get(name) or secrets.token_hex(24) for name in LOCAL_SECRETS if not env.get(name)
    }
    if generated and generated != {k: stored.get(k) for k in generated}:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in (stored | generated).items()))
        path.chmod(0o600)
    return generated


#: What `mlflow.set_experiment`/`start_run`/`set_registry_uri` export for child processes of one
#: client; the stack's registry is its own tracking server.
MLFLOW_RUN_CONTEXT = (
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "MLFLOW_REGISTRY_URI",
)


def stack_environment(root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """One environment for every process of the stack: defaults < environment < secrets."""
    given = dict(os.environ if base is None else base)
    for name in MLFLOW_RUN_CONTEXT:  # a caller's experiment, run or registry: not this stack's
        given.pop(name, None)
    folder = root / run_dir(given)
    env = _defaults(root, folder) | given
    env |= local_secrets(env, folder)
    env.setdefault("JWT_SECRET", env["MAGE_JWT_SECRET"])  # signs Mage's sessions (default: public)
    env.setdefault("MLFLOW_TRACKING_URI", f"http://{env['MLFLOW_HOST']}:{env['MLFLOW_PORT']}")
    env.setdefault("PREDICTOR_URL", f"http://{env['PREDICTOR_HOST']}:{env['PREDICTOR_PORT']}")
    env.setdefault(
        "ALERT_RECEIVER_URL", f"http://{env['ALERT_RECEIVER_HOST']}:{env['ALERT_RECEIVER_PORT']}/alerts"
    )
    env.setdefault("MAGE_API_URL", f"http://{env['MAGE_HOST']}:{env['MAGE_PORT']}")
    return env


def health_urls(env: dict[str, str]) -> dict[str, str]:
    """What each process answers when it is up."""
    return {
        "mlflow": f"{env['MLFLOW_TRACKING_URI'].rstrip('/')}/health",
        "mage": f"{env['MAGE_API_URL']}/api/status",
        "predictor": f"{env['PREDICTOR_URL']}/health",
        "alerts": f"http://{env['ALERT_RECEIVER_HOST']}:{env['ALERT_RECEIVER_PORT']}/health",
        "streamlit": f"http://{env['STREAMLIT_HOST']}:{env['STREAMLIT_PORT']}/_stcore/health",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stack_processes(marker: str) -> list[int]:
    """Every process whose environment carries this stack's marker."""
    found = []
    needle = f"{STACK_MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                continue
    return found


def up(root: Path, timeout_s: float = 240.0) -> str:
    """Start the stack under honcho unless it runs; wait for every health check; say where it is."""
    env = stack_environment(root)
    folder = root / run_dir(env)
    pid_file = folder / "stack.pid"
    urls = health_urls(env)
    if pid_file.is_file() and _alive(int(pid_file.read_text().split()[0])):
        return "the stack is already up (make down stops it)\n" + _where(env)
    busy = [name for name, url in urls.items() if wait_until_healthy(url, timeout_s=0.5)]
    if busy:
        raise SystemExit(
            f"refusing to start: something already answers for {', '.join(busy)} ({urls[busy[0]]})"
        )
    migrated = subprocess.run(
        [f"{env['APP_BIN']}/bankmarketing", "migrate"], cwd=root, env=env, capture_output=True, text=True
    )
    if migrated.returncode != 0:
        raise SystemExit(f"refusing to start: {migrated.stderr.strip() or migrated.stdout.strip()}")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True)
    marker = uuid.uuid4().hex
    env[STACK_MARKER] = marker
    log_path = folder / "stack.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [f"{env['APP_BIN']}/honcho", "start", "--no-colour", "-e", os.devnull, "-f", "Procfile"],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid} {marker}")
    deadline = time.monotonic() + timeout_s
    for name, url in urls.items():
        while process.poll() is None and time.monotonic() < deadline:
            if wait_until_healthy(url, timeout_s=2):
                break
        else:
            tail = log_path.read_text(errors="replace")[-3000:]
            down(root)
            why = (
                f"a process of the stack exited (honcho then stops them all) before {name} was healthy"
                if process.poll() is not None
                else f"{name} did not become healthy at {url} within {timeout_s:.0f} s"
            )
            raise SystemExit(f"{why}; stack stopped. End of {log_path}:\n{tail}")
    _write_stack_env(folder, env)
    return f"{migrated.stdout.strip()}\nthe stack is up (pid {process.pid}, log {log_path})\n" + _where(env)


#: What `make` targets run beside the stack need to reach it (read by the Makefile).
STACK_ENV = (
    "MLFLOW_TRACKING_URI",
    "PREDICTOR_URL",
    "MAGE_API_URL",
    "ALERT_RECEIVER_URL",
    "ALERT_RECEIVER_TOKEN",
    "PREDICTOR_ADMIN_TOKEN",
)


def _write_stack_env(folder: Path, env: dict[str, str]) -> None:
    path = folder / "stack.env"
    path.write_text("".join(f"{name}={env[name]}\n" for name in STACK_ENV if env.get(name)))
    path.chmod(0o600)


def _where(env: dict[str, str]) -> str:
    rows = [
        ("MLflow UI", env["MLFLOW_TRACKING_URI"]),
        (
            "Mage UI",
            f"{env['MAGE_API_URL']}  (user {env['DEFAULT_OWNER_EMAIL']}, password in .run/local-secrets.env)",
        ),
        ("predictor", f"{env['PREDICTOR_URL']}/openapi.json"),
        ("alert receiver", env["ALERT_RECEIVER_URL"]),
        ("Streamlit", f"http://{env['STREAMLIT_HOST']}:{env['STREAMLIT_PORT']}"),
    ]
    return "\n".join(f"  {name:<15} {url}" for name, url in rows)


def down(root: Path, timeout_s: float = 30.0) -> str:
    """Stop the stack's process group; kill what is left after `timeout_s`; prove none remains."""
    pid_file = root / run_dir() / "stack.pid"
    if not pid_file.is_file():
        return "the stack is not running (no .run/stack.pid)"
    pid_text, marker = pid_file.read_text().split()
    pid = int(pid_text)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout_s
    while _stack_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    leftovers = _stack_processes(marker)
    for leftover in leftovers:
        try:
            os.kill(leftover, signal.SIGKILL)
        except ProcessLookupError:
            pass
    pid_file.unlink()
    (pid_file.parent / "stack.env").unlink(missing_ok=True)
    killed = f"; killed {len(leftovers)} that ignored SIGTERM" if leftovers else ""
    return f"the stack is down (pid {pid}){killed}"


def main(argv: list[str]) -> int:
    settings = Settings.from_env()
    action, *rest = argv
    if action == "start" and rest == ["mlflow"]:
        print(start_mlflow(settings))
    elif action == "stop" and rest:
        print(stop(rest[0]))
    elif action in ("up", "down"):
        print((up if action == "up" else down)(Path.cwd()))
    else:
        print("usage: python -m bankmarketing.services start mlflow | stop NAME | up | down")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
