"""The command line: exit codes and messages a user or a scheduler can act on."""

from __future__ import annotations

import json

import pytest
from mlflow.exceptions import MlflowException

from bankmarketing import cli
from bankmarketing.data.prepare import PrepareOptions, prepare
from bankmarketing.deployment import DeployOptions, deploy
from bankmarketing.registry import client_for
from bankmarketing.serving.app import ServingConfig, create_app
from bankmarketing.training.train import TrainOptions, train
from tests.conftest import MlflowServer, settings_for


def test_prepare_then_report_manifest(settings, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("BANK_DATA_PATH", str(settings.data_path))
    monkeypatch.setenv("BANK_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["prepare", "--train-months", "dec,jan,feb,mar,apr,may"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["clean_rows"] == 45_211


def test_bad_option_exits_2_naming_it(capsys):
    assert cli.main(["prepare", "--max-bad-share", "plenty"]) == 2
    assert "max_bad_share: Input should be a valid number" in capsys.readouterr().err


def test_bad_data_exits_2_naming_the_file(monkeypatch, capsys, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    monkeypatch.setenv("BANK_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["prepare", "--data-path", str(empty)]) == 2
    assert "empty.csv is empty" in capsys.readouterr().err


def test_train_without_mlflow_exits_3_with_the_fix(monkeypatch, capsys, settings, tmp_path):
    monkeypatch.setenv("BANK_DATA_PATH", str(settings.data_path))
    monkeypatch.setenv("BANK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert cli.main(["prepare"]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--trials", "1"]) == 3
    assert "make mlflow" in capsys.readouterr().err


def test_mlflow_server_serves_artifacts_from_sqlite_by_default(settings):
    command = cli.mlflow_server_command(settings, "127.0.0.1", 5000)
    assert "--serve-artifacts" in command
    assert command[command.index("--backend-store-uri") + 1].startswith("sqlite:///")


@pytest.mark.integration
def test_behind_mlflow_basic_auth_the_stages_and_the_predictor_use_the_credentials(
    tmp_path, data_csv, monkeypatch
):
    """`bankmarketing mlflow-server` with MLFLOW_TRACKING_PASSWORD runs MLflow's basic-auth app
    (as compose does): prepare, train, deploy and the predictor get in with the credentials that
    the MLflow client reads from the environment; without them, nothing."""
    credentials = {
        "MLFLOW_TRACKING_USERNAME": "platform",
        "MLFLOW_TRACKING_PASSWORD": "test-mlflow-password-123",
    }
    server = MlflowServer(
        tmp_path / "mlruns", MLFLOW_FLASK_SERVER_SECRET_KEY="test-flask-secret-key-123", **credentials
    )
    try:
        settings = settings_for(tmp_path, data_csv, server.uri)
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        with pytest.raises(MlflowException, match="401|[Uu]nauthori"):
            client_for(server.uri).search_registered_models()
        refused = create_app(settings, ServingConfig(cache_dir=tmp_path / "refused"), start_threads=False)
        assert refused.test_client().get("/ready").status_code == 503
        for name, value in credentials.items():
            monkeypatch.setenv(name, value)
        prepare(settings, PrepareOptions())
        train(settings, TrainOptions(candidates=["logistic_regression"], trials=1, timeout_s=10, cv_folds=2))
        version = deploy(settings, DeployOptions())["production"]
        app = create_app(settings, ServingConfig(cache_dir=tmp_path / "cache"), start_threads=False)
        ready = app.test_client().get("/ready").get_json()
        assert ready["ready"] is True and ready["model_version"] == version
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a-wrong-password-123")
        with pytest.raises(MlflowException, match="401|[Uu]nauthori"):
            client_for(server.uri).get_model_version_by_alias(settings.model_name, "production")
    finally:
        server.stop()
    assert "basic_auth.ini" in {path.name for path in (tmp_path / "mlruns").iterdir()}
    assert oct((tmp_path / "mlruns" / "basic_auth.ini").stat().st_mode & 0o777) == "0o600"
