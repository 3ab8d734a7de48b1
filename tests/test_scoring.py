"""The fast scorer equals the saved pipeline on the real data, and explains itself."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xgboost

from bankmarketing import scoring
from bankmarketing.data.loading import read_raw
from bankmarketing.data.schema import FEATURES
from bankmarketing.data.validation import validate
from bankmarketing.scoring import ExplanationUnavailable, Scorer
from bankmarketing.training.candidates import CANDIDATES
from bankmarketing.training.train import TrainOptions, calibrated, xy

PARAMS = {
    "xgboost": {
        "n_estimators": 60,
        "learning_rate": 0.1,
        "max_depth": 4,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "scale_pos_weight": 1.0,
    },
    "logistic_regression": {"C": 0.5, "class_weight": None},
    "random_forest": {
        "n_estimators": 20,
        "max_depth": 6,
        "min_samples_leaf": 5,
        "max_features": "sqrt",
        "class_weight": None,
    },
}
FAST = [
    (name, method, None) for name in ("xgboost", "logistic_regression") for method in ("isotonic", "sigmoid")
]
FAST += [("xgboost", "isotonic", True), ("logistic_regression", "sigmoid", False)]  # rescaled


@pytest.fixture(scope="module")
def frame(data_csv) -> pd.DataFrame:
    return validate(read_raw(data_csv)).clean


@pytest.fixture(scope="module")
def pipelines(frame):
    """Calibrated pipelines trained on all rows, built on first use.

    `scale` overrides the candidate's choice of scaling numeric columns; such a variant trains
    on 2,000 rows (unscaled logistic regression converges slowly on all of them).
    """
    X, y = xy(frame)
    trained = {}

    def get(name: str, method: str = "isotonic", scale: bool | None = None):
        if (name, method, scale) not in trained:
            candidate, rows = CANDIDATES[name], len(y)
            if scale is not None:
                candidate, rows = replace(candidate, scale_numeric=scale), 2000
            model = calibrated(candidate, PARAMS[name], TrainOptions(calibration=method))
            trained[name, method, scale] = model.fit(X.head(rows), y[:rows])
        return trained[name, method, scale]

    return get


@pytest.fixture(scope="module")
def records(frame) -> list[dict]:
    return frame[list(FEATURES)].to_dict("records")


@pytest.mark.parametrize(("name", "method", "scale"), FAST)
def test_fast_path_equals_the_pipeline_on_every_row(pipelines, frame, records, name, method, scale):
    pipeline = pipelines(name, method, scale)
    scorer = Scorer.from_pipeline(pipeline)
    assert (scorer.fast, scorer.kind, scorer.fallback_reason) == (True, name, None)
    expected = pipeline.predict_proba(frame)[:, 1]
    from_records, from_frame = scorer.score_records(records), scorer.score_frame(frame)
    assert from_records.shape == from_frame.shape == (len(frame),) == (45_211,)
    assert np.max(np.abs(from_records - expected)) <= 1e-9
    assert np.max(np.abs(from_frame - expected)) <= 1e-9


def test_other_models_fall_back_to_exactly_the_pipeline(pipelines, frame, records):
    pipeline = pipelines("random_forest")
    # One thread: a multi-threaded forest sums its trees in varying order (~1e-14 apart).
    pipeline.named_steps["model"].calibrated_classifiers_[0].estimator.n_jobs = 1
    scorer = Scorer.from_pipeline(pipeline)
    assert (scorer.fast, scorer.kind) == (False, "pipeline")
    assert "RandomForestClassifier" in scorer.fallback_reason
    rows = frame.head(3000)
    expected = pipeline.predict_proba(rows)[:, 1]
    np.testing.assert_array_equal(scorer.score_records(records[:3000]), expected)
    np.testing.assert_array_equal(scorer.score_frame(rows), expected)


@pytest.mark.parametrize("name", ["xgboost", "logistic_regression"])
def test_unknown_categories_extra_keys_and_key_order(pipelines, records, name):
    pipeline = pipelines(name)
    scorer = Scorer.from_pipeline(pipeline)
    changed = [
        dict(reversed(list(r.items())), request_id=f"r{i}", duration=999, y="yes")
        for i, r in enumerate(records[:500])
    ]
    for record in changed[::3]:
        record["job"], record["poutcome"] = "astronaut", "postponed"  # unseen: all-zero one-hot
    expected = pipeline.predict_proba(pd.DataFrame(changed))[:, 1]
    assert np.max(np.abs(scorer.score_records(changed) - expected)) <= 1e-9
    assert np.max(np.abs(scorer.score_frame(pd.DataFrame(changed)) - expected)) <= 1e-9


def test_missing_field_names_the_field_and_empty_input_scores_nothing(pipelines, records):
    scorer = Scorer.from_pipeline(pipelines("xgboost"))
    with pytest.raises(KeyError, match="balance"):
        scorer.score_records([{k: v for k, v in records[0].items() if k != "balance"}])
    assert scorer.score_records([]).shape == (0,)


def test_compiler_falls_back_when_its_self_check_disagrees(pipelines, monkeypatch):
    wrong = (("month", "day_of_week"), lambda columns: np.zeros(len(columns["month"])))
    monkeypatch.setitem(scoring.ENGINEERED, "day_of_year", wrong)
    scorer = Scorer.from_pipeline(pipelines("xgboost"))
    assert not scorer.fast and "self-check" in scorer.fallback_reason


@pytest.mark.parametrize("name", ["xgboost", "logistic_regression"])
def test_explanations_add_up_to_the_margin(pipelines, records, name):
    pipeline = pipelines(name)
    scorer = Scorer.from_pipeline(pipeline)
    sample = records[:2000]
    explanations = scorer.explain(sample)
    margin = scorer.margin(sample)
    assert all(set(e) == {*FEATURES, "bias"} for e in explanations)
    assert np.max(np.abs([sum(e.values()) for e in explanations] - margin)) <= 1e-6

    estimator = pipeline.named_steps["model"].calibrated_classifiers_[0].estimator
    X = pipeline.named_steps["features"].transform(pd.DataFrame(sample))
    if name == "xgboost":
        expected_margin = estimator.predict(X, output_margin=True)
        model_bias = estimator.get_booster().predict(xgboost.DMatrix(X), pred_contribs=True)[:, -1]
    else:
        expected_margin, model_bias = estimator.decision_function(X), estimator.intercept_[0]
    assert np.max(np.abs(margin - expected_margin)) <= 1e-6
    assert np.max(np.abs([e["bias"] for e in explanations] - model_bias)) <= 1e-5


def test_logistic_regression_contributions_are_coefficient_times_value(pipelines, records):
    pipeline = pipelines("logistic_regression")
    [explanation] = Scorer.from_pipeline(pipeline).explain(records[:1])
    features = pipeline.named_steps["features"]
    x = features.transform(pd.DataFrame(records[:1]))[0]
    coef = pipeline.named_steps["model"].calibrated_classifiers_[0].estimator.coef_[0]
    share = dict(zip(features.get_feature_names_out(), coef * x, strict=True))
    assert explanation["age"] == pytest.approx(share["age"])
    assert explanation["job"] == pytest.approx(sum(v for k, v in share.items() if k[:4] == "job_"))
    assert explanation["pdays"] == pytest.approx(share["pdays"] + share["contacted_before"])
    assert explanation["day_of_week"] == pytest.approx(share["day_of_week"] + share["day_of_year"] / 2)


def test_fallback_kinds_cannot_explain(pipelines, records):
    scorer = Scorer.from_pipeline(pipelines("random_forest"))
    with pytest.raises(ExplanationUnavailable, match="'pipeline'.*RandomForestClassifier"):
        scorer.explain(records[:1])
    assert issubclass(ExplanationUnavailable, ValueError)


def _booster_and_matrix(pipeline, frame):
    estimator = pipeline.named_steps["model"].calibrated_classifiers_[0].estimator
    scorer = Scorer.from_pipeline(pipeline)
    columns = {field: frame[field].to_numpy() for field in scorer.layout.fields}
    return estimator, np.ascontiguousarray(scorer.layout.matrix(columns, len(frame)))


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_tree_walk_is_the_booster_bit_for_bit_on_every_row(pipelines, frame, method):
    estimator, X = _booster_and_matrix(pipelines("xgboost", method), frame)
    X[::7, -1] = np.nan  # day_of_year missing (an unknown month): the default directions
    booster = estimator.get_booster()
    walk = scoring.TreeWalk.compile(booster, (0, 0), estimator.missing)
    assert walk.depth == 4 and walk.trees == PARAMS["xgboost"]["n_estimators"]
    for predict_type, ours in (("margin", walk.margin), ("value", walk.value)):
        expected = booster.inplace_predict(X, predict_type=predict_type)
        np.testing.assert_array_equal(ours(X), expected)
        np.testing.assert_array_equal(ours(X[:1]), expected[:1])


def test_small_batches_are_walked_and_equal_the_pipeline(pipelines, frame, records, monkeypatch):
    pipeline = pipelines("xgboost")
    scorer = Scorer.from_pipeline(pipeline)
    expected = pipeline.predict_proba(frame)[:, 1]
    calls = []
    original = xgboost.Booster.inplace_predict
    monkeypatch.setattr(
        xgboost.Booster, "inplace_predict", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    singles = np.concatenate([scorer.score_records(records[i : i + 1]) for i in range(0, len(records), 3)])
    small = np.concatenate([scorer.score_records(records[i : i + 20]) for i in range(0, len(records), 20)])
    assert calls == []  # one row and 20 rows never reach the booster
    np.testing.assert_array_equal(singles, expected[::3])
    np.testing.assert_array_equal(small, expected)
    scorer.score_records(records[:5000])
    assert calls  # a large batch does


@pytest.mark.parametrize("missing", [np.nan, 0.0])
def test_tree_walk_with_missing_values_and_early_stopping(missing):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 6)).round(1)
    X[rng.random(X.shape) < 0.15] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) * X[:, 2].round() > 0.3).astype(int)
    model = xgboost.XGBClassifier(
        n_estimators=80, max_depth=5, learning_rate=0.3, missing=missing, early_stopping_rounds=5
    ).fit(X[:2000], y[:2000], eval_set=[(X[2000:], y[2000:])], verbose=False)
    trees = (0, model.best_iteration + 1)
    assert trees[1] < 80  # stopped early: the walk must use only the first trees
    walk = scoring.TreeWalk.compile(model.get_booster(), trees, model.missing)
    booster = model.get_booster()
    for predict_type, ours in (("margin", walk.margin), ("value", walk.value)):
        expected = booster.inplace_predict(
            X, iteration_range=trees, predict_type=predict_type, missing=missing
        )
        np.testing.assert_array_equal(ours(X), expected)


def test_a_walk_that_differs_from_the_booster_is_not_used(pipelines, frame, records, monkeypatch):
    monkeypatch.setattr(scoring, "_expf", lambda: lambda x: float(np.exp(np.float32(x))))  # numpy's rounding
    with pytest.raises(scoring.Unsupported, match="differ"):
        estimator, _ = _booster_and_matrix(pipelines("xgboost"), frame.head(10))
        scoring.TreeWalk.compile(estimator.get_booster(), (0, 0), estimator.missing)
    pipeline = pipelines("xgboost")
    scorer = Scorer.from_pipeline(pipeline)  # still the fast path, through the booster
    assert scorer.fast
    np.testing.assert_array_equal(
        [scorer.score_records([r])[0] for r in records[:200]], pipeline.predict_proba(frame.head(200))[:, 1]
    )


def test_categorical_columns_score_as_their_values(pipelines, frame):
    pipeline = pipelines("xgboost")
    scorer = Scorer.from_pipeline(pipeline)
    rows = frame.head(3000).copy()
    rows.loc[::7, "month"] = "smarch"  # unseen: no month number, no one-hot column
    categorical = rows.astype({c: "category" for c in ("job", "marital", "month", "poutcome")})
    categorical["job"] = categorical["job"].cat.add_categories(["astronaut"])  # an unused category
    expected = pipeline.predict_proba(rows)[:, 1]
    np.testing.assert_array_equal(scorer.score_frame(categorical), expected)
