"""The model registry: every candidate is a version of one registered model, tagged."""

from __future__ import annotations

import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from bankmarketing.config import Settings
from bankmarketing.data import DataError
from bankmarketing.data.identity import ROW_ID, identity_digest
from bankmarketing.scoring import Scorer

#: Tag set last on a version: only versions carrying it are complete candidates.
COMPLETE_TAG = "candidate_complete"
#: The training run's artifact listing the identities (`row_id`, `split`) its models learned
#: from (train) or were selected and thresholded on (validation); versions carry its digest.
IDENTITIES_ARTIFACT = "training_identities.parquet"
IDENTITIES_TAG = "training_identities_sha256"


def client_for(tracking_uri: str) -> MlflowClient:
    """A client of the tracking server and its own registry (never a registry URI set elsewhere
    in the process, or MLFLOW_REGISTRY_URI: the versions would land on another server)."""
    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


def use_tracking_server(tracking_uri: str) -> MlflowClient:
    """Point this process's fluent MLflow API (runs, logged and registered models) at the
    tracking server, its registry following it: a registry URI set earlier in the process
    or MLFLOW_REGISTRY_URI is cleared, not replaced, so a later `mlflow.set_tracking_uri`
    moves both again. Returns `client_for` the server."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(None)  # None: the tracking URI's registry (MLflow's default)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    return client_for(tracking_uri)


def alias_not_found(exc: MlflowException) -> bool:
    """MLflow's answer for an alias (or model) the registry does not have."""
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
        exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
    )


def version_behind(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at; None when the model or the alias does not exist (any other
    registry error, an unreachable server included, is raised)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if alias_not_found(exc):
            return None
        raise


def required_version(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    """`version_behind`, or a DataError that names the model and alias and what to run."""
    version = version_behind(client, name, alias)
    if version is None:
        raise DataError(f"model {name!r} has no version with alias {alias!r}: run the deploy pipeline")
    return version


class IdentitiesUnknown(LookupError):
    """A version whose training identities were not recorded (registered before they were)."""


def log_training_identities(seen: pd.DataFrame) -> str:
    """Log `seen` (`row_id`, `split`) on the active run; return the digest of its identities."""
    with tempfile.TemporaryDirectory(prefix="bankmarketing-identities-") as folder:
        path = Path(folder) / IDENTITIES_ARTIFACT
        seen[[ROW_ID, "split"]].reset_index(drop=True).to_parquet(path, index=False)
        mlflow.log_artifact(str(path))
    return identity_digest(seen[ROW_ID])


def training_identities(tracking_uri: str, version: ModelVersion) -> set[str]:
    """The identities a version saw in training (train and validation splits), checked against
    the digest on the version. Raises IdentitiesUnknown for a version without a record."""
    run_id, digest = version.tags.get("training_run_id"), version.tags.get(IDENTITIES_TAG)
    if not run_id or not digest:
        raise IdentitiesUnknown(f"version {version.version} has no recorded training identities")
    with tempfile.TemporaryDirectory(prefix="bankmarketing-identities-") as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=IDENTITIES_ARTIFACT, dst_path=folder, tracking_uri=tracking_uri
        )
        ids = set(pd.read_parquet(path)[ROW_ID])
    if identity_digest(ids) != digest:
        raise IdentitiesUnknown(
            f"version {version.version}: its identities artifact does not match its digest"
        )
    return ids


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
    client = client_for(tracking_uri)
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
    client = client_for(settings.tracking_uri)
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
