"""The candidate models: a search space and a full pipeline (features + classifier) each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from xgboost import XGBClassifier

from bankmarketing.features import build_features

if TYPE_CHECKING:  # the predictor unpickles models that name these classes; it has no optuna
    import optuna


class StratifiedSubsampleClassifier(ClassifierMixin, BaseEstimator):
    """Fits `estimator` on at most `max_rows` stratified rows (kernel SVMs scale as n²)."""

    def __init__(self, estimator=None, max_rows: int = 6000, random_state: int = 0):
        self.estimator = estimator
        self.max_rows = max_rows
        self.random_state = random_state

    def fit(self, X, y):
        if len(y) > self.max_rows:
            X, _, y, _ = train_test_split(
                X, y, train_size=self.max_rows, stratify=y, random_state=self.random_state
            )
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    def decision_function(self, X):
        return self.estimator_.decision_function(X)

    def predict(self, X):
        return self.estimator_.predict(X)


#: A fixed 300-tree XGBoost (the published anchor's size): tests and benchmarks train it
#: without a search, so their figures do not depend on a search budget.
REFERENCE_XGBOOST_PARAMS = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "max_depth": 4,
    "min_child_weight": 5.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "scale_pos_weight": 1.0,
}


@dataclass(frozen=True)
class Candidate:
    name: str
    scale_numeric: bool
    suggest: Callable[[optuna.Trial, float], dict[str, Any]]  # (trial, negatives/positives)
    make: Callable[[dict[str, Any], int], BaseEstimator]  # (params, seed) -> classifier
    #: The search's first trial, a known-good point of `suggest`'s space (the library defaults,
    #: or the published anchor's XGBoost), so a short search still ends at least there.
    first_trial: dict[str, Any] | None = None

    def pipeline(self, params: dict[str, Any], seed: int) -> Pipeline:
        """Raw records in, probability out: the object saved to the registry."""
        return Pipeline(
            [
                ("features", build_features(self.scale_numeric)),
                ("model", self.make(params, seed)),
            ]
        )


def _class_weight(trial: optuna.Trial) -> str | None:
    return trial.suggest_categorical("class_weight", ["balanced", None])


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in [
        Candidate(
            "logistic_regression",
            True,
            lambda t, _: {"C": t.suggest_float("C", 1e-3, 10, log=True), "class_weight": _class_weight(t)},
            lambda p, seed: LogisticRegression(max_iter=2000, random_state=seed, **p),
            {"C": 1.0, "class_weight": None},
        ),
        Candidate(
            "random_forest",
            False,
            lambda t, _: {
                "n_estimators": t.suggest_int("n_estimators", 150, 400, step=50),
                "max_depth": t.suggest_int("max_depth", 4, 20),
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 40, log=True),
                "max_features": t.suggest_categorical("max_features", ["sqrt", 0.3, 0.5]),
                "class_weight": t.suggest_categorical("class_weight", ["balanced_subsample", None]),
            },
            lambda p, seed: RandomForestClassifier(n_jobs=-1, random_state=seed, **p),
            {
                "n_estimators": 300,
                "max_depth": 12,
                "min_samples_leaf": 5,
                "max_features": "sqrt",
                "class_weight": None,
            },
        ),
        Candidate(
            "xgboost",
            False,
            lambda t, ratio: {
                "n_estimators": t.suggest_int("n_estimators", 150, 700, step=50),
                "learning_rate": t.suggest_float("learning_rate", 0.01, 0.2, log=True),
                "max_depth": t.suggest_int("max_depth", 2, 8),
                "min_child_weight": t.suggest_float("min_child_weight", 1, 20, log=True),
                "subsample": t.suggest_float("subsample", 0.5, 1.0),
                "colsample_bytree": t.suggest_float("colsample_bytree", 0.4, 1.0),
                "reg_lambda": t.suggest_float("reg_lambda", 0.1, 20, log=True),
                "scale_pos_weight": t.suggest_categorical(
                    "scale_pos_weight", [1.0, round(float(np.sqrt(ratio)), 3), round(ratio, 3)]
                ),
            },
            lambda p, seed: XGBClassifier(tree_method="hist", n_jobs=-1, random_state=seed, **p),
            dict(REFERENCE_XGBOOST_PARAMS),
        ),
        Candidate(
            "svc",
            True,
            lambda t, _: {
                "C": t.suggest_float("C", 0.05, 10, log=True),
                "gamma": t.suggest_float("gamma", 1e-3, 0.3, log=True),
                "class_weight": _class_weight(t),
                "max_rows": t.suggest_categorical("max_rows", [4000, 8000]),
            },
            lambda p, seed: StratifiedSubsampleClassifier(
                SVC(
                    kernel="rbf",
                    probability=False,
                    C=p["C"],
                    gamma=p["gamma"],
                    class_weight=p["class_weight"],
                    random_state=seed,
                ),
                max_rows=p["max_rows"],
                random_state=seed,
            ),
            {"C": 1.0, "gamma": 0.01, "class_weight": None, "max_rows": 4000},
        ),
        Candidate(
            "mlp",
            True,
            lambda t, _: {
                "hidden_layer_sizes": t.suggest_categorical("hidden_layer_sizes", ["32", "64", "64-32"]),
                "alpha": t.suggest_float("alpha", 1e-5, 1e-1, log=True),
                "learning_rate_init": t.suggest_float("learning_rate_init", 1e-4, 1e-2, log=True),
            },
            lambda p, seed: MLPClassifier(
                hidden_layer_sizes=tuple(int(n) for n in p["hidden_layer_sizes"].split("-")),
                alpha=p["alpha"],
                learning_rate_init=p["learning_rate_init"],
                early_stopping=True,
                max_iter=300,
                random_state=seed,
            ),
            {"hidden_layer_sizes": "32", "alpha": 1e-4, "learning_rate_init": 1e-3},
        ),
        Candidate(
            "hist_gradient_boosting",
            False,
            lambda t, _: {
                "learning_rate": t.suggest_float("learning_rate", 0.02, 0.3, log=True),
                "max_leaf_nodes": t.suggest_int("max_leaf_nodes", 8, 64, log=True),
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 10, 200, log=True),
                "l2_regularization": t.suggest_float("l2_regularization", 1e-3, 10, log=True),
                "class_weight": _class_weight(t),
            },
            lambda p, seed: HistGradientBoostingClassifier(
                max_iter=500, early_stopping=True, random_state=seed, **p
            ),
            {
                "learning_rate": 0.1,
                "max_leaf_nodes": 31,
                "min_samples_leaf": 20,
                "l2_regularization": 1e-3,
                "class_weight": None,
            },
        ),
    ]
}
