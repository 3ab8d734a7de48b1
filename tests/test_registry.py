"""The registry the stages use is their tracking server's own, whatever the process had set."""

from __future__ import annotations

import uuid

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from bankmarketing.data import DataError
from bankmarketing.data.prepare import PrepareOptions, prepare
from bankmarketing.registry import COMPLETE_TAG, client_for, required_version, version_behind
from bankmarketing.training.train import TrainOptions, train
from tests.conftest import registry_globals, settings_for, tracking_globals

pytestmark = pytest.mark.integration
#: Nothing listens here: a registration sent to it fails.
ELSEWHERE = "http://127.0.0.1:9"


@pytest.fixture
def foreign_registry(monkeypatch):
    """The process's registry set to another server, in MLflow's globals and its environment
    (as `mlflow.set_registry_uri` in a notebook leaves them); all put back after."""
    monkeypatch.setattr(tracking_globals, "_tracking_uri", tracking_globals._tracking_uri)
    monkeypatch.setattr(registry_globals, "_registry_uri", ELSEWHERE)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", ELSEWHERE)
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI"):  # what `train` exports
        monkeypatch.setenv(name, "-")  # so that the undo puts back the value, or no variable
        monkeypatch.delenv(name)
    return ELSEWHERE


def test_train_registers_on_its_tracking_server_beside_another_registry(
    foreign_registry, tmp_path, data_csv, mlflow_server
):
    settings = settings_for(tmp_path, data_csv, mlflow_server.uri, f"registry-{uuid.uuid4().hex[:6]}")
    prepare(settings, PrepareOptions())
    result = train(
        settings,
        TrainOptions(candidates=["logistic_regression"], trials=1, cv_folds=2, importance_rows=300),
    )
    client = client_for(settings.tracking_uri)
    for candidate in result["candidates"]:
        version = client.get_model_version(settings.model_name, candidate["version"])
        assert version.tags[COMPLETE_TAG] == "true"
    # the fluent API follows the stage's server too, and the registry follows the tracking URI
    assert mlflow.get_registry_uri() == settings.tracking_uri
    mlflow.set_tracking_uri(ELSEWHERE)
    assert mlflow.get_registry_uri() == ELSEWHERE


def test_a_client_for_a_server_never_reads_another_registry(foreign_registry, mlflow_server):
    with pytest.raises(MlflowException, match="not found"):
        client_for(mlflow_server.uri).get_registered_model(f"absent-{uuid.uuid4().hex[:6]}")


def test_a_missing_alias_is_none_or_an_error_naming_the_model_and_the_fix(mlflow_server, monkeypatch):
    client = client_for(mlflow_server.uri)
    name = f"absent-{uuid.uuid4().hex[:6]}"
    assert version_behind(client, name, "production") is None
    expected = f"model '{name}' has no version with alias 'production': run the deploy pipeline"
    with pytest.raises(DataError, match=expected):
        required_version(client, name, "production")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException, match="127.0.0.1:9"):  # an outage is not "no version"
        version_behind(client_for(ELSEWHERE), name, "production")
