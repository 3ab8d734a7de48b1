"""Start, stop and summarise the local background services used by `make demo`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bankmarketing.config import Settings

RUN_DIR = Path(".run")


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
    RUN_DIR.mkdir(exist_ok=True)
    port = settings.tracking_uri.rstrip("/").rsplit(":", 1)[-1]
    log_path = RUN_DIR / "mlflow.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bankmarketing.cli", "mlflow-server", "--port", port],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (RUN_DIR / "mlflow.pid").write_text(str(process.pid))
    if not wait_until_healthy(health, timeout_s=90):
        raise SystemExit(f"MLflow did not become healthy at {health}; see {log_path}")
    return f"MLflow started at {settings.tracking_uri} (pid {process.pid}, log {log_path})"


def stop(name: str) -> str:
    """Stop a background service started here, by its process group."""
    pid_file = RUN_DIR / f"{name}.pid"
    if not pid_file.is_file():
        return f"{name} is not running (no {pid_file})"
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    pid_file.unlink()
    return f"{name} stopped (pid {pid})"


def summary(settings: Settings) -> str:
    """Where to look after `make demo`: the UIs, the training run and registered versions."""
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    versions = client.search_model_versions(f"name='{settings.model_name}'")
    if not versions:
        return f"no versions of {settings.model_name!r} at {settings.tracking_uri} yet: run `make demo`"
    latest_run = max(versions, key=lambda v: v.creation_timestamp).tags.get("training_run_id")
    newest = sorted(
        (v for v in versions if v.tags.get("training_run_id") == latest_run),
        key=lambda v: -float(v.tags.get("val_pr_auc", 0)),
    )
    base = settings.tracking_uri.rstrip("/")
    lines = [
        "",
        f"MLflow UI        {base}  (registered model: {base}/#/models/{settings.model_name})",
        f"training run     {latest_run}",
        "candidates (best validation PR-AUC first):",
        *(
            f"  version {v.version:>3}  {v.tags.get('candidate', '?'):<24} "
            f"PR-AUC {float(v.tags.get('val_pr_auc', 'nan')):.4f}  "
            f"ROC-AUC {float(v.tags.get('val_roc_auc', 'nan')):.4f}  run {v.run_id}"
            for v in newest
        ),
        "Mage UI          make mage-ui   then open http://127.0.0.1:6789",
        "MLflow server    keeps running in the background; stop it with `make mlflow-stop`",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    settings = Settings.from_env()
    action, *rest = argv
    if action == "start" and rest == ["mlflow"]:
        print(start_mlflow(settings))
    elif action == "stop" and rest:
        print(stop(rest[0]))
    elif action == "summary":
        print(summary(settings))
    else:
        print("usage: python -m bankmarketing.services start mlflow | stop NAME | summary")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
