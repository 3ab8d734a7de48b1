"""A registered, promoted model on a real MLflow server, and the predictor app around it."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from bankmarketing.config import Settings
from bankmarketing.data.prepare import PrepareOptions, prepare, read_split
from bankmarketing.deployment import DeployOptions, deploy
from bankmarketing.serving.app import ServingConfig, create_app
from bankmarketing.training.train import TrainOptions, train

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def served(tmp_path_factory, data_csv, mlflow_server):
    """A registry with an XGBoost and a logistic version, the better of them in production.

    Returns settings, {"production": version, "other": version}, the test split.
    """
    root = tmp_path_factory.mktemp("served")
    settings = Settings(
        data_path=data_csv,
        data_dir=root / "data",
        data_url="http://unused",
        tracking_uri=mlflow_server.uri,
        model_name=f"served-{uuid.uuid4().hex[:6]}",
        experiment=f"served-{uuid.uuid4().hex[:6]}",
        database_url=None,
        mlflow_dir=root / "mlruns",
    )
    manifest = prepare(settings, PrepareOptions())
    trained = train(
        settings,
        TrainOptions(
            candidates=["xgboost", "logistic_regression"],
            trials=1,
            timeout_s=10,
            cv_folds=2,
            importance_rows=300,
        ),
    )
    production = deploy(settings, DeployOptions())["production"]
    other = next(c["version"] for c in trained["candidates"] if c["version"] != production)
    versions = {"production": production, "other": other}
    return settings, versions, read_split(manifest, "test")


@pytest.fixture
def app_factory(served, tmp_path):
    settings = served[0]
    apps = []

    def make(**overrides):
        config = ServingConfig(
            cache_dir=tmp_path / "cache",
            admin_token=ADMIN_TOKEN,
            poll_s=3600,
            max_batch=100,
            max_body_bytes=256 * 1024,
        )
        app = create_app(replace(settings, **overrides.pop("settings", {})), replace(config, **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["bankmarketing"]["stop"].set()
        app.extensions["bankmarketing"]["predictions"].close()


@pytest.fixture
def client(app_factory):
    return app_factory().test_client()
