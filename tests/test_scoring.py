"""The fast scorer equals the saved pipeline on the real data, and explains itself."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xgboost
from scipy.special import logit
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from bankmarketing.data.loading import read_raw
from bankmarketing.data.schema import FEATURES
from bankmarketing.data.validation import validate
from bankmarketing.scoring import BACKGROUND_ATTRIBUTE, ExplanationUnavailable, Scorer, layout, trees
from bankmarketing.scoring.classifiers import KINDS as COMPILED
from bankmarketing.scoring.errors import Unsupported
from bankmarketing.scoring.shapley import permutation_shapley
from bankmarketing.training.candidates import CANDIDATES, StratifiedSubsampleClassifier
from bankmarketing.training.ensemble import ENSEMBLE, SoftVotingClassifier, soft_voting_candidate
from bankmarketing.training.train import TrainOptions, fit_calibrated, xy

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
        "n_estimators": 40,
        "max_depth": 10,
        "min_samples_leaf": 5,
        "max_features": "sqrt",
        "class_weight": None,
    },
    "hist_gradient_boosting": {
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 1.0,
        "class_weight": None,
    },
    "mlp": {"hidden_layer_sizes": "32", "alpha": 1e-3, "learning_rate_init": 1e-3},
    "svc": {"C": 1.0, "gamma": 0.05, "class_weight": "balanced", "max_rows": 1500},
}
MEMBERS = ("xgboost", "hist_gradient_boosting", "logistic_regression")
PARAMS[ENSEMBLE] = {"members": {name: PARAMS[name] for name in MEMBERS}}
KINDS = {**CANDIDATES, ENSEMBLE: soft_voting_candidate()}
assert set(PARAMS) == set(KINDS) == set(COMPILED)  # every kind `train` can register is tested
#: Largest |fast path - pipeline| allowed per kind, calibration included. The tree kinds and
#: XGBoost are bit for bit (the forest with one thread: with several, scikit-learn adds its trees
#: in varying order); the others multiply matrices through BLAS in another order (measured
#: here: ~1e-14 for MLP; SVC up to 3e-10, as libsvm sums its kernel terms in another order and
#: the isotonic step's slope magnifies the ~1e-13 difference).
TOLERANCE = {
    "xgboost": 0.0,
    "hist_gradient_boosting": 0.0,
    "random_forest": 0.0,
    "logistic_regression": 1e-12,
    "mlp": 1e-12,
    "svc": 1e-9,
    ENSEMBLE: 1e-12,  # its logistic regression member's
}
DEFAULT = TrainOptions().calibration  # centered isotonic
FAST = [(name, DEFAULT, None) for name in KINDS]
FAST += [(name, "isotonic", None) for name in ("xgboost", "hist_gradient_boosting")]
FAST += [(name, "sigmoid", None) for name in ("xgboost", "logistic_regression", "hist_gradient_boosting")]
FAST += [("xgboost", DEFAULT, True), ("logistic_regression", "sigmoid", False)]  # rescaled


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

    def get(name: str, method: str = DEFAULT, scale: bool | None = None):
        if (name, method, scale) not in trained:
            candidate, rows = KINDS[name], len(y)
            if scale is not None:
                candidate, rows = replace(candidate, scale_numeric=scale), 2000
            model = fit_calibrated(
                candidate, PARAMS[name], TrainOptions(calibration=method), X.head(rows), y[:rows]
            )
            if name == "random_forest":  # one thread: the trees add up in one order
                model.named_steps["model"].calibrated_classifiers_[0].estimator.n_jobs = 1
            trained[name, method, scale] = model
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
    assert np.max(np.abs(from_records - expected)) <= TOLERANCE[name]
    assert np.max(np.abs(from_frame - expected)) <= TOLERANCE[name]
    singles = np.concatenate([scorer.score_records(records[i : i + 1]) for i in range(0, len(records), 7)])
    assert np.max(np.abs(singles - expected[::7])) <= TOLERANCE[name]


def test_an_unknown_kind_falls_back_to_exactly_the_pipeline_and_cannot_explain(frame, records):
    X, y = xy(frame.head(3000))
    naive_bayes = replace(CANDIDATES["logistic_regression"], make=lambda params, seed: GaussianNB())
    pipeline = fit_calibrated(naive_bayes, {}, TrainOptions(), X, y)
    scorer = Scorer.from_pipeline(pipeline)
    assert (scorer.fast, scorer.kind, scorer.explanation_method) == (False, "pipeline", None)
    assert "GaussianNB" in scorer.fallback_reason
    expected = pipeline.predict_proba(frame.head(3000))[:, 1]
    np.testing.assert_array_equal(scorer.score_records(records[:3000]), expected)
    np.testing.assert_array_equal(scorer.score_frame(frame.head(3000)), expected)
    with pytest.raises(ExplanationUnavailable, match="'pipeline'.*GaussianNB"):
        scorer.explain(records[:1])
    assert issubclass(ExplanationUnavailable, ValueError)


@pytest.mark.parametrize("name", list(KINDS))
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
    assert np.max(np.abs(scorer.score_records(changed) - expected)) <= TOLERANCE[name]
    assert np.max(np.abs(scorer.score_frame(pd.DataFrame(changed)) - expected)) <= TOLERANCE[name]


def test_missing_field_names_the_field_and_empty_input_scores_nothing(pipelines, records):
    scorer = Scorer.from_pipeline(pipelines("xgboost"))
    with pytest.raises(KeyError, match="balance"):
        scorer.score_records([{k: v for k, v in records[0].items() if k != "balance"}])
    assert scorer.score_records([]).shape == (0,)


def test_compiler_falls_back_when_its_self_check_disagrees(pipelines, monkeypatch):
    wrong = (("month", "day_of_week"), lambda columns: np.zeros(len(columns["month"])))
    monkeypatch.setitem(layout.ENGINEERED, "day_of_year", wrong)
    scorer = Scorer.from_pipeline(pipelines("xgboost"))
    assert not scorer.fast and "self-check" in scorer.fallback_reason


def _library_margin(pipeline, records) -> np.ndarray:
    """The fitted estimator's own output that explanations decompose, from the pipeline's matrix."""
    estimator = pipeline.named_steps["model"].calibrated_classifiers_[0].estimator
    X = pipeline.named_steps["features"].transform(pd.DataFrame(records))
    if isinstance(estimator, xgboost.XGBClassifier):
        return estimator.predict(X, output_margin=True)
    if isinstance(estimator, (RandomForestClassifier, SoftVotingClassifier)):
        return estimator.predict_proba(X)[:, 1]
    if isinstance(estimator, MLPClassifier):
        return logit(estimator.predict_proba(X)[:, 1])
    return estimator.decision_function(X)


#: Customers explained per kind: fewer where each one is sampled (a few thousand rows scored).
EXPLAINED_ROWS = {"mlp": 300, "svc": 300, ENSEMBLE: 100}
#: How closely contributions + bias add up to the margin: TreeSHAP runs on float32 trees.
ADDITIVITY = {"xgboost": 1e-5, "hist_gradient_boosting": 1e-5, "random_forest": 1e-6}


@pytest.mark.parametrize("name", list(KINDS))
def test_explanations_add_up_to_the_margin(pipelines, records, name):
    pipeline = pipelines(name)
    scorer = Scorer.from_pipeline(pipeline)
    sample = records[: EXPLAINED_ROWS.get(name, 3000)]
    explanations = scorer.explain(sample)
    margin = scorer.margin(sample)
    assert all(set(e) == {*FEATURES, "bias"} for e in explanations)
    assert np.max(np.abs(margin - _library_margin(pipeline, sample))) <= 1e-6
    totals = np.array([sum(e.values()) for e in explanations])
    assert np.max(np.abs(totals - margin)) <= ADDITIVITY.get(name, 1e-9)
    biases = {e["bias"] for e in explanations}
    assert (
        len(biases) == 1
    )  # one base value: the trees' expected output, the intercept, the background's mean
    if name == "xgboost":
        X = pipeline.named_steps["features"].transform(pd.DataFrame(sample[:1]))
        booster = pipeline.named_steps["model"].calibrated_classifiers_[0].estimator.get_booster()
        assert biases.pop() == pytest.approx(booster.predict(xgboost.DMatrix(X), pred_contribs=True)[0, -1])
    assert np.mean([abs(e["poutcome"]) for e in explanations]) > 0  # the strongest field moves the score


def test_weighted_soft_voting_is_compiled_with_its_weights(frame, records):
    X, y = xy(frame.head(5000))
    candidate = KINDS[ENSEMBLE]
    weighted = replace(candidate, make=lambda p, seed: candidate.make(p, seed).set_params(weights=[1, 3]))
    members = {"members": {name: PARAMS[name] for name in ("logistic_regression", "hist_gradient_boosting")}}
    pipeline = fit_calibrated(weighted, members, TrainOptions(), X, y)
    scorer = Scorer.from_pipeline(pipeline)
    assert (scorer.fast, scorer.kind) == (True, ENSEMBLE)
    expected = pipeline.predict_proba(frame)[:, 1]
    assert np.max(np.abs(scorer.score_records(records) - expected)) <= TOLERANCE[ENSEMBLE]


def test_soft_voting_member_without_probability_is_not_compiled():
    X = np.random.default_rng(0).normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    model = SoftVotingClassifier([("lr", LogisticRegression())]).fit(X, y)
    model.estimators_.append(StratifiedSubsampleClassifier(SVC()).fit(X, y))  # fit refuses it
    with pytest.raises(Unsupported, match="soft voting member svc: no probability"):
        COMPILED[ENSEMBLE].compile(model)


def test_shapley_estimate_is_exact_for_a_linear_model(pipelines, records):
    """Logistic regression's margin is a sum of one term per field (day_of_year too is additive in
    month and day), so every order gives each field its exact Shapley value: the mean change of
    the margin when only that field takes the customer's value in the background customers."""
    pipeline = pipelines("logistic_regression")
    scorer = Scorer.from_pipeline(pipeline)
    background = getattr(pipeline, BACKGROUND_ATTRIBUTE)
    estimator = pipeline.named_steps["model"].calibrated_classifiers_[0].estimator
    features = pipeline.named_steps["features"]
    base = estimator.decision_function(features.transform(background))
    columns = {f: [r[f] for r in records[:20]] for f in scorer.layout.fields}
    raw, bias = permutation_shapley(scorer._margin_of, columns, scorer.background, scorer.layout.fields)
    for i, customer in enumerate(records[:20]):
        for j, field in enumerate(scorer.layout.fields):
            switched = features.transform(background.assign(**{field: customer[field]}))
            assert raw[i, j] == pytest.approx((estimator.decision_function(switched) - base).mean(), abs=1e-9)
    np.testing.assert_allclose(bias, base.mean(), atol=1e-12)


@pytest.mark.parametrize("name", ["mlp", "svc"])
def test_shapley_estimate_is_close_to_many_orders(pipelines, records, name):
    """The default 8 orders against 256 on the same background: the documented error."""
    scorer = Scorer.from_pipeline(pipelines(name))
    columns = {f: [r[f] for r in records[:30]] for f in scorer.layout.fields}
    args = (scorer._margin_of, columns, scorer.background, scorer.layout.fields)
    estimate, _ = permutation_shapley(*args)
    reference, _ = permutation_shapley(*args, permutations=256, seed=1)
    error = np.abs(estimate - reference).mean() / np.abs(reference).mean()
    largest = np.abs(estimate - reference).max()
    print(
        f"{name}: 8 orders vs 256: mean abs error {error:.1%} of the mean |contribution|, max {largest:.3f}"
    )
    assert error <= 0.10, error  # measured ~0.04 (docs/serving.md)


def test_versions_without_background_customers_cannot_be_explained_by_sampling(pipelines, records):
    pipeline = pipelines("mlp")
    compiled = Scorer.from_pipeline(pipeline)
    scorer = Scorer(pipeline, compiled.layout, compiled.classifier)
    scorer.background = None  # as a version trained before background customers were kept
    assert compiled.explanation_method.startswith("permutation Shapley") and scorer.explanation_method is None
    with pytest.raises(ExplanationUnavailable, match="without background customers"):
        scorer.explain(records[:1])
    assert scorer.score_records(records[:5]).shape == (5,)  # it still scores


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
    walk = trees.xgboost_forest(booster, (0, 0), estimator.missing)
    assert walk.depth == 4 and walk.trees == PARAMS["xgboost"]["n_estimators"]
    value = lambda X: trees.xgboost_sigmoid(walk.margin(X))  # noqa: E731
    for predict_type, ours in (("margin", walk.margin), ("value", value)):
        expected = booster.inplace_predict(X, predict_type=predict_type)
        np.testing.assert_array_equal(ours(X), expected)
        np.testing.assert_array_equal(ours(X[:1]), expected[:1])


LIBRARY_PREDICT = {
    "xgboost": (xgboost.Booster, "inplace_predict"),
    "hist_gradient_boosting": (HistGradientBoostingClassifier, "decision_function"),
    "random_forest": (RandomForestClassifier, "predict_proba"),
}


@pytest.mark.parametrize("name", list(LIBRARY_PREDICT))
def test_small_batches_are_walked_and_equal_the_pipeline(pipelines, frame, records, monkeypatch, name):
    pipeline = pipelines(name)
    expected = pipeline.predict_proba(frame)[:, 1]
    calls = []
    owner, method = LIBRARY_PREDICT[name]
    original = getattr(owner, method)

    @functools.wraps(original)  # the same __name__: scikit-learn reads it
    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, method, counting)
    scorer = Scorer.from_pipeline(pipeline)
    assert scorer.fast
    calls.clear()  # the compiler's own checks
    singles = np.concatenate([scorer.score_records(records[i : i + 1]) for i in range(0, len(records), 3)])
    small = np.concatenate([scorer.score_records(records[i : i + 2]) for i in range(0, len(records), 2)])
    assert calls == []  # one row and two rows never reach the library
    np.testing.assert_array_equal(singles, expected[::3])
    np.testing.assert_array_equal(small, expected)
    np.testing.assert_array_equal(scorer.score_records(records[:5000]), expected[:5000])
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
    iterations = (0, model.best_iteration + 1)
    assert iterations[1] < 80  # stopped early: the walk must use only the first trees
    walk = trees.xgboost_forest(model.get_booster(), iterations, model.missing)
    booster = model.get_booster()
    value = lambda X: trees.xgboost_sigmoid(walk.margin(X))  # noqa: E731
    for predict_type, ours in (("margin", walk.margin), ("value", value)):
        expected = booster.inplace_predict(
            X, iteration_range=iterations, predict_type=predict_type, missing=missing
        )
        np.testing.assert_array_equal(ours(X), expected)


def test_a_walk_that_differs_from_the_booster_is_not_used(pipelines, frame, records, monkeypatch):
    monkeypatch.setattr(trees, "_expf", lambda: lambda x: float(np.exp(np.float32(x))))  # numpy's rounding
    with pytest.raises(Unsupported, match="differ"):
        estimator, _ = _booster_and_matrix(pipelines("xgboost"), frame.head(10))
        trees.xgboost_forest(estimator.get_booster(), (0, 0), estimator.missing)
    pipeline = pipelines("xgboost")
    scorer = Scorer.from_pipeline(pipeline)  # still the fast path, through the booster
    assert scorer.fast
    np.testing.assert_array_equal(
        [scorer.score_records([r])[0] for r in records[:200]], pipeline.predict_proba(frame.head(200))[:, 1]
    )


def test_hist_gradient_boosting_walk_sends_missing_values_its_way():
    """Trained with missing values, so nodes send them both ways; the walk is decision_function."""
    rng = np.random.default_rng(5)
    X = rng.integers(0, 30, size=(4000, 5)).astype(float)
    y = (X[:, 0] + X[:, 1] + rng.normal(0, 5, len(X)) > 30).astype(int)
    X[rng.random(X.shape) < 0.2] = np.nan
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(X, y)
    fitted = trees.hist_gradient_boosting_trees(model)
    assert any(t.default_right.any() for t in fitted) and any(
        (~t.default_right & (t.left != -1)).any() for t in fitted
    )
    base = float(model._baseline_prediction.ravel()[0])
    walk = trees.Forest.build(fitted, base, 5, np.float64, read_as=np.float64, right_on_equal=False)
    np.testing.assert_array_equal(walk.margin(X), model.decision_function(X))
    np.testing.assert_array_equal(walk.margin(X[:1]), model.decision_function(X[:1]))
    booster = trees.shap_booster(fitted, base, 1.0, 5)  # the same trees for TreeSHAP
    contributions = booster.predict(xgboost.DMatrix(X), pred_contribs=True)
    assert np.max(np.abs(contributions.sum(axis=1) - model.decision_function(X))) <= 1e-5


def test_categorical_columns_score_as_their_values(pipelines, frame):
    pipeline = pipelines("xgboost")
    scorer = Scorer.from_pipeline(pipeline)
    rows = frame.head(3000).copy()
    rows.loc[::7, "month"] = "smarch"  # unseen: no month number, no one-hot column
    categorical = rows.astype({c: "category" for c in ("job", "marital", "month", "poutcome")})
    categorical["job"] = categorical["job"].cat.add_categories(["astronaut"])  # an unused category
    expected = pipeline.predict_proba(rows)[:, 1]
    np.testing.assert_array_equal(scorer.score_frame(categorical), expected)
