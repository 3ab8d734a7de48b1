"""Global explanations per version and each customer's top reasons."""

from __future__ import annotations

import json

import mlflow.artifacts
import pandas as pd
import pytest

from bankmarketing.data.schema import FEATURES
from bankmarketing.explanations import (
    DEPENDENCE_FIELDS,
    EXPLANATION_ARTIFACT,
    global_explanation,
    top_reasons,
)
from bankmarketing.registry import client_for, load_pipeline
from bankmarketing.scoring import Scorer


def test_top_reasons_are_the_largest_positive_contributions_in_order():
    records = [{"age": 70, "job": "retired", "poutcome": "success", "balance": 10}]
    parts = [{"age": 0.3, "job": -0.2, "poutcome": 1.234, "balance": 0.05, "bias": 2.0}]
    assert top_reasons(records, parts, 2) == [["poutcome=success (+1.23)", "age=70 (+0.30)"]]
    assert top_reasons(records, [{"job": -1.0, "bias": 3.0}], 3) == [[]]  # nothing raises the score


@pytest.mark.integration
def test_the_promoted_version_carries_its_global_explanation(served):
    settings, versions, test = served
    registry = client_for(settings.tracking_uri)
    version = registry.get_model_version(settings.model_name, versions["production"])
    path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path=EXPLANATION_ARTIFACT, tracking_uri=settings.tracking_uri
    )
    logged = json.loads(open(path).read())
    pipeline = load_pipeline(settings.tracking_uri, settings.model_name, version.version)
    assert logged == json.loads(json.dumps(global_explanation(Scorer.from_pipeline(pipeline), test)))
    # independently of the scorer: each outcome's mean score is the pipeline's on the same sample
    sample = test.sample(logged["rows"], random_state=0).reset_index(drop=True)
    proba = pipeline.predict_proba(sample[list(FEATURES)])[:, 1]
    by_outcome = pd.Series(proba).groupby(sample["poutcome"].astype(str).to_numpy()).agg(["size", "mean"])
    for row in logged["dependence"]["poutcome"]:
        assert row["rows"] == by_outcome.loc[row["bin"], "size"]
        assert row["mean_score"] == pytest.approx(by_outcome.loc[row["bin"], "mean"], abs=1e-9)
    importance = [row["mean_abs_contribution"] for row in logged["importance"]]
    assert importance == sorted(importance, reverse=True) and importance[0] > 0
    assert {row["feature"] for row in logged["importance"]} == set(FEATURES)
    assert set(logged["dependence"]) == set(DEPENDENCE_FIELDS)
    for rows in logged["dependence"].values():
        assert sum(row["rows"] for row in rows) == logged["rows"] == min(5_000, len(test))
    outcomes = {row["bin"] for row in logged["dependence"]["poutcome"]}
    assert outcomes <= set(test["poutcome"].astype(str)) and len(outcomes) > 1
    assert "## What drives the score" in version.description
