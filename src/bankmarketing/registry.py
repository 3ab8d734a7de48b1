"""The model registry: every candidate is a version of one registered model, tagged."""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow import MlflowClient

#: Tag set last on a version: only versions carrying it are complete candidates.
COMPLETE_TAG = "candidate_complete"


def register_candidate(model_uri: str, model_name: str, tags: dict[str, Any]) -> str:
    """Register a logged model as a new version with `tags`; mark it complete last."""
    version = mlflow.register_model(model_uri, model_name, tags={k: str(v) for k, v in tags.items()})
    MlflowClient().set_model_version_tag(model_name, version.version, COMPLETE_TAG, "true")
    return version.version
