"""The soft-voting ensemble: the weighted mean of its members' probabilities, built from theirs."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier

from bankmarketing.training.candidates import CANDIDATES
from bankmarketing.training.ensemble import (
    ENSEMBLE,
    MEMBER_KINDS,
    SoftVotingClassifier,
    soft_voting_candidate,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(0, 0.5, len(X)) > 0).astype(int)
    return X, y


def _members():
    return [
        ("lr", LogisticRegression()),
        ("hgb", HistGradientBoostingClassifier(max_iter=20, random_state=0)),
        ("xgb", XGBClassifier(n_estimators=20, max_depth=3)),
    ]


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 5.0]])
def test_probability_is_the_weighted_mean_of_the_members(data, weights):
    X, y = data
    model = SoftVotingClassifier(_members(), weights=weights).fit(X, y)
    assert list(model.named_estimators_) == ["lr", "hgb", "xgb"]
    members = [clone(estimator).fit(X, y).predict_proba(X)[:, 1] for _, estimator in _members()]
    mean = np.asarray(members).T @ np.asarray(weights or [1.0] * 3) / sum(weights or [1.0] * 3)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], mean, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(proba[:, 0], 1.0 - proba[:, 1])
    np.testing.assert_array_equal(model.predict(X), (proba[:, 1] > 0.5).astype(int))
    assert not hasattr(model, "decision_function")  # calibrated on its probability


def test_a_member_without_probability_is_refused_at_fit(data):
    X, y = data
    svc = CANDIDATES["svc"].make({"C": 1.0, "gamma": 0.1, "class_weight": None, "max_rows": 500}, 0)
    model = SoftVotingClassifier([("lr", LogisticRegression()), ("svc", svc)])
    with pytest.raises(ValueError, match="member 'svc' .*no predict_proba"):
        model.fit(X, y)


def test_candidate_builds_the_members_from_their_params_and_is_not_searched():
    candidate = soft_voting_candidate()
    assert (candidate.name, candidate.scale_numeric) == (ENSEMBLE, True) and ENSEMBLE not in CANDIDATES
    assert set(MEMBER_KINDS) == set(CANDIDATES) - {"svc"}
    mlp = {"hidden_layer_sizes": "32", "alpha": 1e-4, "learning_rate_init": 1e-3}
    params = {"members": {"logistic_regression": {"C": 1.0, "class_weight": None}, "mlp": mlp}}
    model = candidate.pipeline(params, seed=7).named_steps["model"]
    assert isinstance(model, SoftVotingClassifier) and model.weights is None
    assert [(name, type(m).__name__) for name, m in model.estimators] == [
        ("logistic_regression", "LogisticRegression"),
        ("mlp", "MLPClassifier"),
    ]
    assert model.estimators[0][1].random_state == model.estimators[1][1].random_state == 7
    with pytest.raises(ValueError, match="unknown soft voting member kinds \\['gbm'\\]"):
        candidate.make({"members": {"gbm": {}}}, 0)
    with pytest.raises(NotImplementedError, match="members' searched parameters"):
        candidate.suggest(optuna.trial.FixedTrial({}), 1.0)
