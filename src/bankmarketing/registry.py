"""The model registry: every candidate is a version of one registered model, tagged."""

from __future__ import annotations

import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient

from bankmarketing.config import Settings
from bankmarketing.scoring import Scorer

#: Tag set last on a version: only versions carrying it are complete candidates.
COMPLETE_TAG = "candidate_complete"


def require_tracking_server(uri: str, timeout_s: float = 10.0) -> None:
    """Fail early, with the fix, when the MLflow server is not answering."""
    if not uri.startswith("http"):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            response.read()
    except OSError as exc:
        raise ConnectionError(
            f"MLflow tracking server {uri} is not reachable ({exc}). "
            "Start it with `make mlflow` or set MLFLOW_TRACKING_URI."
        ) from None


def download_version(tracking_uri: str, name: str, version: str, dst: Path) -> Path:
    """A registered version's model folder, copied under `dst` from this registry.

    `models:/` URIs resolve through the process's global registry URI; the version's
    storage location does not, so this works beside other registries in one process.
    """
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    location = client.get_model_version_download_uri(name, version)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=location, dst_path=str(dst), tracking_uri=tracking_uri
    )
    return Path(local)


def load_pipeline(tracking_uri: str, name: str, version: str):
    """The fitted scikit-learn pipeline of a registered version."""
    with tempfile.TemporaryDirectory(prefix="bankmarketing-model-") as folder:
        return mlflow.sklearn.load_model(str(download_version(tracking_uri, name, version, Path(folder))))


def load_scorer(tracking_uri: str, name: str, version: str) -> Scorer:
    """The fast scorer of a registered version (`load_pipeline`, compiled)."""
    return Scorer.from_pipeline(load_pipeline(tracking_uri, name, version))


def register_candidate(model_uri: str, model_name: str, tags: dict[str, Any]) -> str:
    """Register a logged model as a new version with `tags`; mark it complete last."""
    version = mlflow.register_model(model_uri, model_name, tags={k: str(v) for k, v in tags.items()})
    MlflowClient().set_model_version_tag(model_name, version.version, COMPLETE_TAG, "true")
    return version.version


def describe_versions(settings: Settings, versions: list[str]) -> str:
    """A summary of registered versions with links; fails if one is not complete."""
    client = MlflowClient(settings.tracking_uri)
    base = settings.tracking_uri.rstrip("/")
    lines = [f"registered model {settings.model_name!r}: {base}/#/models/{settings.model_name}"]
    for number in versions:
        version = client.get_model_version(settings.model_name, number)
        if version.tags.get(COMPLETE_TAG) != "true":
            raise RuntimeError(f"version {number} of {settings.model_name} is not a complete candidate")
        tags = version.tags
        lines.append(
            f"  v{number:>3} {tags.get('candidate', '?'):<24} val PR-AUC {float(tags['val_pr_auc']):.4f}"
            f"  ROC-AUC {float(tags['val_roc_auc']):.4f}  ECE {float(tags['val_ece']):.4f}"
            f"  run {base}/#/experiments/{client.get_run(version.run_id).info.experiment_id}"
            f"/runs/{version.run_id}"
        )
    return "\n".join(lines)
