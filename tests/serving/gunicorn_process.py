"""Start the predictor under a real gunicorn for tests."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import requests

from tests.conftest import free_port


class Gunicorn:
    """The predictor under gunicorn with the project's config, from a given environment."""

    def __init__(
        self,
        bin_dir: Path,
        cwd: Path,
        env: dict[str, str],
        log: Path,
        conf: str = "python:bankmarketing.serving.gunicorn_conf",
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "wb")
        self.process = subprocess.Popen(
            [str(bin_dir / "gunicorn"), "-c", conf, "bankmarketing.serving.app:create_app()"],
            cwd=cwd,
            env={**os.environ, "PREDICTOR_HOST": "127.0.0.1", **env, "PREDICTOR_PORT": str(self.port)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 300) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                response = requests.get(f"{self.url}/ready", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except (requests.ConnectionError, requests.Timeout):  # workers still booting
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{self.url}/ready")

    def stop(self) -> None:
        os.killpg(self.process.pid, 15)
        self.process.wait(30)
        self.log.close()
