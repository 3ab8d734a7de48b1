"""The reference a model version is monitored against, stored with the model in MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from bankmarketing.monitoring.drift import PREDICTION, TARGET

#: Where each model version keeps its reference: validation rows, their scores and outcomes.
REFERENCE_ARTIFACT = "monitoring/reference.parquet"


def reference_frame(X: pd.DataFrame, y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """The rows a version is compared against: its validation data with scores and outcomes."""
    return X.reset_index(drop=True).assign(**{PREDICTION: proba, TARGET: np.asarray(y, dtype=int)})


def log_reference(frame: pd.DataFrame, run_id: str | None = None) -> None:
    """Store the reference with the model: an artifact of its MLflow run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(REFERENCE_ARTIFACT).name
        frame.to_parquet(path, index=False)
        artifact_dir = str(Path(REFERENCE_ARTIFACT).parent)
        if run_id is None:
            mlflow.log_artifact(str(path), artifact_dir)
        else:
            MlflowClient().log_artifact(run_id, str(path), artifact_dir)
