"""The `test` stage: score a held-out split with a registered model; store the metrics."""

from __future__ import annotations

import datetime as dt

import mlflow
import sqlalchemy as sa
from pydantic import Field

from bankmarketing.config import Settings
from bankmarketing.data.prepare import prepared_manifest, read_split, xy
from bankmarketing.database import METRIC_COLUMNS, engine_for, model_evaluation
from bankmarketing.options import StageOptions
from bankmarketing.registry import client_for, load_scorer, required_version, use_tracking_server
from bankmarketing.training.evaluation import classification_metrics


class TestOptions(StageOptions):
    """Parameters of `test` (Mage variables / CLI flags of the same names)."""

    __test__ = False  # not a pytest class

    alias: str = Field("production", description="registry alias of the model to evaluate")
    split: str = Field("test", description="test, validation, or a season period: reference, jun ... nov")


def evaluate_split(settings: Settings, options: TestOptions) -> dict:
    """Metrics of the alias's version on a split of the data it was prepared with.

    Logged as an MLflow run and upserted into `model_evaluation` (a rerun replaces its row).
    """
    client = client_for(settings.tracking_uri)
    version = required_version(client, settings.model_name, options.alias)
    manifest = prepared_manifest(settings, version.tags["prepared_id"])
    X, y = xy(read_split(manifest, options.split))
    scorer = load_scorer(settings.tracking_uri, version.name, version.version)
    metrics = classification_metrics(y, scorer.score_frame(X), float(version.tags["threshold"]))
    use_tracking_server(settings.tracking_uri)
    mlflow.set_experiment(settings.experiment)
    with mlflow.start_run(run_name=f"test-v{version.version}-{options.split}") as run:
        mlflow.set_tags(
            {
                "stage": "test",
                "model_version": version.version,
                "split": options.split,
                "data_version": manifest["data_version"],
                "alias": options.alias,
            }
        )
        mlflow.log_metrics({f"{options.split}_{k}": v for k, v in metrics.items()} | {"rows": len(y)})
    row = {
        "at": dt.datetime.now(dt.UTC),
        "model_name": version.name,
        "model_version": int(version.version),
        "split": options.split,
        "data_version": manifest["data_version"],
        "rows": len(y),
        "mlflow_run_id": run.info.run_id,
        **{k: metrics[k] for k in METRIC_COLUMNS},
    }
    table = model_evaluation
    key = (
        (table.c.model_name == row["model_name"])
        & (table.c.model_version == row["model_version"])
        & (table.c.split == row["split"])
        & (table.c.data_version == row["data_version"])
    )
    with engine_for(settings.platform_database_url).begin() as connection:
        connection.execute(sa.delete(table).where(key))
        connection.execute(sa.insert(table).values(**row))
    return {
        "model_name": version.name,
        "model_version": version.version,
        "split": options.split,
        "rows": len(y),
        "mlflow_run_id": run.info.run_id,
        "metrics": metrics,
    }
