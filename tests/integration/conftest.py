"""Run the real Mage pipelines (Mage's own environment) against real MLflow servers."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from bankmarketing.registry import client_for
from tests.conftest import REPO, settings_for

MAGE = REPO / ".venv/mage/bin/mage"
#: A reduced search budget: every candidate, but few trials (the full budget is for demo).
CI_TRAIN_VARS = '{"trials": 2, "timeout_s": 15, "cv_folds": 2, "importance_rows": 500}'


class MageProject:
    """`mage run mlops <pipeline>` with its own data folder, Mage state and model name."""

    def __init__(self, root: Path, data_path: Path, tracking_uri: str):
        self.model_name = f"test-model-{uuid.uuid4().hex[:8]}"
        self.data_dir = root / "data"
        settings_for(root, data_path, tracking_uri, self.model_name)  # its platform database migrated
        self.env = {
            **os.environ,
            "BANK_DATA_PATH": str(data_path),
            "BANK_DATA_DIR": str(self.data_dir),
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MODEL_NAME": self.model_name,
            "MLFLOW_EXPERIMENT": self.model_name,
            "MAGE_DATA_DIR": str(root / "mage"),
            "COLUMNS": "400",  # Mage prints errors with rich, which wraps at the terminal width
        }
        self.env.pop("MLFLOW_EXPERIMENT_ID", None)  # mlflow.set_experiment in this process exports it
        self.client = client_for(tracking_uri)

    def run(self, pipeline: str, runtime_vars: str | None = None, **env) -> subprocess.CompletedProcess:
        command = [str(MAGE), "run", "mlops", pipeline]
        if runtime_vars:
            command += ["--runtime-vars", runtime_vars]
        return subprocess.run(
            command, cwd=REPO, env=self.env | env, capture_output=True, text=True, timeout=1800
        )

    @staticmethod
    def output(result: subprocess.CompletedProcess) -> str:
        """stdout and stderr with whitespace runs collapsed (rich still wraps long lines)."""
        return " ".join((result.stdout + result.stderr).split())

    def versions(self):
        return self.client.search_model_versions(f"name='{self.model_name}'")


@pytest.fixture
def mage_project(tmp_path, data_csv, mlflow_server):
    if not MAGE.exists():
        pytest.fail(f"{MAGE} is missing: run `make setup`")
    return MageProject(tmp_path, data_csv, mlflow_server.uri)
