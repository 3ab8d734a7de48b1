"""The `test` stage: metrics of the production model on held-out data, in MLflow and the database."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from bankmarketing.data.schema import FEATURES
from bankmarketing.database import engine_for, model_evaluation
from bankmarketing.holdout import TestOptions, evaluate_split
from bankmarketing.registry import client_for
from bankmarketing.training.evaluation import classification_metrics

pytestmark = pytest.mark.integration


def test_metrics_match_the_registered_model_and_are_stored_once(served):
    settings, versions, test = served
    first = evaluate_split(settings, TestOptions())
    second = evaluate_split(settings, TestOptions())
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@production")
    threshold = float(
        client_for(settings.tracking_uri)
        .get_model_version(settings.model_name, versions["production"])
        .tags["threshold"]
    )
    expected = classification_metrics(
        (test["y"] == "yes").to_numpy(dtype=int),
        np.asarray(model.predict(test[list(FEATURES)]))[:, 1],
        threshold,
    )
    assert first["metrics"] == pytest.approx(expected, abs=1e-12)
    assert first["rows"] == len(test) and first["model_version"] == versions["production"]
    run = client_for(settings.tracking_uri).get_run(second["mlflow_run_id"])
    assert run.data.metrics["test_pr_auc"] == pytest.approx(expected["pr_auc"])
    assert run.data.tags["stage"] == "test"
    with engine_for(settings.platform_database_url).connect() as connection:
        rows = pd.DataFrame(
            connection.execute(
                sa.select(model_evaluation).where(model_evaluation.c.model_name == settings.model_name)
            )
            .mappings()
            .all()
        )
    assert len(rows) == 1  # the rerun replaced its row
    assert rows.loc[0, "pr_auc"] == pytest.approx(expected["pr_auc"])
    assert rows.loc[0, "mlflow_run_id"] == second["mlflow_run_id"]


def test_a_later_month_is_a_separate_row(served):
    settings = served[0]
    june = evaluate_split(settings, TestOptions(split="jun"))
    assert june["rows"] > 1000 and 0 < june["metrics"]["roc_auc"] < 1
    with engine_for(settings.platform_database_url).connect() as connection:
        splits = {
            r.split
            for r in connection.execute(
                sa.select(model_evaluation.c.split).where(
                    model_evaluation.c.model_name == settings.model_name
                )
            )
        }
    assert {"test", "jun"} <= splits


def test_unknown_split_is_a_clear_error(served):
    from bankmarketing.data import DataError

    with pytest.raises(DataError, match="no part named 'december'"):
        evaluate_split(served[0], TestOptions(split="december"))
