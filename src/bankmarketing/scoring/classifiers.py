"""The calibrated binary classifier of every candidate kind as functions of the model matrix.

Each kind gives the response its calibrator was fitted on (scikit-learn prefers
`decision_function`, else `predict_proba[:, 1]`), the output its explanations add up to, and,
where the library has them, exact per-column contributions. The calibrator is applied with
its own arithmetic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.neural_network._base import ACTIVATIONS
from sklearn.svm import SVC

from bankmarketing.scoring.errors import Unsupported, require
from bankmarketing.scoring.trees import (
    Forest,
    Tree,
    hist_gradient_boosting_trees,
    random_forest_trees,
    shap_booster,
    xgboost_forest,
    xgboost_sigmoid,
)
from bankmarketing.training.ensemble import SoftVotingClassifier, soft_vote

log = logging.getLogger(__name__)
Function = Callable[[np.ndarray], np.ndarray]
#: Rows x trees x depth up to which the numpy tree walk scores instead of the library's own
#: predictor (XGBoost's `inplace_predict` costs ~0.1 ms a call; scikit-learn's more; the walk
#: ~4 us per 1,000 node visits).
WALK_MAX_VISITS = 32_768
#: Rows per block when an RBF kernel is evaluated against every support vector.
KERNEL_BLOCK_ROWS = 1024


@dataclass(frozen=True)
class Classifier:
    """The calibrated binary classifier as functions of the model matrix."""

    kind: str
    output: str  # what `margin` and the contributions are in
    method: str  # how the contributions are computed
    response: Function  # what the calibrator was fitted on
    margin: Function  # the output that explanations add up to
    #: (n, width + 1): exact contributions per column, then the base value; None: the kind is
    #: explained by sampling (`shapley.permutation_shapley`).
    contributions: Function | None
    calibrate: Function  # the calibrator's predict

    @classmethod
    def compile(cls, model: Any) -> Classifier:
        require(
            isinstance(model, CalibratedClassifierCV)
            and len(model.classes_) == 2
            and len(model.calibrated_classifiers_) == 1,
            "not one calibrated binary model",
        )
        calibrated = model.calibrated_classifiers_[0]
        require(calibrated.method in ("isotonic", "sigmoid"), f"calibration {calibrated.method}")
        estimator, calibrate = calibrated.estimator, _calibration(calibrated.calibrators[0])
        decides = hasattr(estimator, "decision_function")  # what the calibrator read
        kind, compiler, estimator = _kind(estimator)
        require(decides == compiler.decides, f"{kind}: calibrated on another response")
        return cls(kind, compiler.output, compiler.method, *compiler.compile(estimator), calibrate)

    def score(self, X: np.ndarray) -> np.ndarray:
        """`_CalibratedClassifier.predict_proba(X)[:, 1]` for two classes."""
        proba = np.asarray(self.calibrate(self.response(X)), dtype=np.float64)
        if proba.max(initial=0.0) > 1.0:
            proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba


def _kind(estimator: Any) -> tuple[str, KindCompiler, Any]:
    """The fitted estimator's KINDS entry, and the estimator that entry compiles."""
    if type(estimator).__name__ == "StratifiedSubsampleClassifier":  # delegates to estimator_
        estimator = estimator.estimator_
    for kind, compiler in KINDS.items():
        if type(estimator) is compiler.estimator_type:
            return kind, compiler, estimator
    raise Unsupported(f"classifier {type(estimator).__name__}")


def _calibration(calibrator: Any) -> Function:
    """The calibrator's predict on a 1-d array, same arithmetic without input validation."""
    if type(calibrator).__name__ == "_SigmoidCalibration":
        a, b = calibrator.a_, calibrator.b_
        return lambda T: expit(-(a * T + b))
    require(type(calibrator) is IsotonicRegression, f"calibrator {calibrator!r}")
    dtype, clip = calibrator.X_thresholds_.dtype, calibrator.out_of_bounds == "clip"
    low, high, interpolate = calibrator.X_min_, calibrator.X_max_, calibrator.f_
    linear = _linear_interpolation(interpolate) if clip else None

    def isotonic(T: np.ndarray) -> np.ndarray:  # IsotonicRegression._transform
        T = np.asarray(T, dtype=dtype)
        if linear is not None:
            # np.clip's ufunc, without the wrapper's argument checks (~2 us a call)
            return linear(np.minimum(np.maximum(T, low), high)).astype(dtype, copy=False)
        return interpolate(np.clip(T, low, high) if clip else T).astype(dtype)

    return isotonic


def _linear_interpolation(interpolate: Any) -> Function | None:
    """scipy's `interp1d._call_linear` with the slopes computed once (elementwise the same
    operations, so the same numbers), for inputs inside the knots; None where it does not apply
    (another interpolator, or numpy.interp, which scipy uses for float64 knots)."""
    name = getattr(getattr(interpolate, "_call", None), "__name__", "")
    if type(interpolate).__name__ != "interp1d" or name != "_call_linear":
        return None
    x, y = np.asarray(interpolate.x), np.asarray(interpolate._y)
    if y.ndim != 2 or y.shape[1] != 1 or len(x) < 2:
        return None
    y = y[:, 0]
    slopes = np.concatenate([[np.nan], (y[1:] - y[:-1]) / (x[1:] - x[:-1])]).astype(y.dtype)
    x_low = np.concatenate([[np.nan], x[:-1]]).astype(x.dtype)
    y_low = np.concatenate([[np.nan], y[:-1]]).astype(y.dtype)
    last = len(x) - 1

    def linear(T: np.ndarray) -> np.ndarray:
        knot = np.searchsorted(x, T).clip(1, last)
        return slopes.take(knot) * (T - x_low.take(knot)) + y_low.take(knot)

    probe = np.concatenate([x, (x[1:] + x[:-1]) / 2, np.linspace(x[0], x[-1], 1001, dtype=x.dtype)])
    expected = np.asarray(interpolate(probe))
    return linear if np.array_equal(linear(probe), expected, equal_nan=True) else None


def _walked_or(forest: Forest, library: Function, then: Function | None = None) -> Function:
    """The walk (`then` applied to its sum) for a few rows, the library for larger batches."""
    limit, walk = WALK_MAX_VISITS // forest.visits_per_row, forest.margin
    if then is not None:
        walk = lambda X: then(forest.margin(X))  # noqa: E731
    return lambda X: walk(X) if len(X) <= limit else library(X)


def _tree_shap(trees: list[Tree], base: float, scale: float, width: int) -> Function:
    booster = shap_booster(trees, base, scale, width)
    return lambda X: booster.predict(xgboost.DMatrix(X, nthread=1), pred_contribs=True)


def _xgboost(model: xgboost.XGBClassifier) -> tuple[Function, ...]:
    require(
        model.objective == "binary:logistic" and model.n_classes_ == 2 and model.booster != "gblinear",
        "xgboost setup",
    )
    booster = model.get_booster()
    best = getattr(model, "best_iteration", None)  # the trees XGBClassifier.predict uses
    trees = (0, 0) if best is None else (0, best + 1)

    def booster_says(kind: str) -> Function:
        return lambda X: booster.inplace_predict(
            X, iteration_range=trees, predict_type=kind, missing=model.missing
        )

    try:
        forest = xgboost_forest(booster, trees, model.missing)
        margin = _walked_or(forest, booster_says("margin"))
        probability = _walked_or(forest, booster_says("value"), then=xgboost_sigmoid)
    except Unsupported as exc:  # still the fast path, every batch through the booster
        log.info("no numpy tree walk: %s", exc)
        margin, probability = booster_says("margin"), booster_says("value")

    explainer = booster.copy()
    explainer.set_param({"nthread": 1})  # requests explain a few rows: threads cost more than they give

    def contributions(X: np.ndarray) -> np.ndarray:
        matrix = xgboost.DMatrix(X, missing=model.missing, nthread=1)
        return explainer.predict(matrix, pred_contribs=True, iteration_range=trees)

    return probability, margin, contributions


def _hist_gradient_boosting(model: HistGradientBoostingClassifier) -> tuple[Function, ...]:
    trees = hist_gradient_boosting_trees(model)
    base = float(model._baseline_prediction.ravel()[0])
    width = model.n_features_in_
    forest = Forest.build(trees, base, width, np.float64, read_as=np.float64, right_on_equal=False)
    forest.verify(model.decision_function)  # bit for bit
    margin = _walked_or(forest, model.decision_function)
    return margin, margin, _tree_shap(trees, base, 1.0, width)


def _random_forest(model: RandomForestClassifier) -> tuple[Function, ...]:
    trees = random_forest_trees(model)
    width, count = model.n_features_in_, len(trees)
    forest = Forest.build(
        trees, 0.0, width, np.float64, read_as=np.float32, right_on_equal=False, divisor=count
    )
    library = lambda X: model.predict_proba(X)[:, 1]  # noqa: E731
    forest.verify(library, tolerance=1e-12)  # scikit-learn adds trees from threads in any order
    share = _walked_or(forest, library)
    return share, share, _tree_shap(trees, 0.0, 1.0 / count, width)


def _logistic_regression(model: LogisticRegression) -> tuple[Function, ...]:
    coef, intercept = model.coef_, model.intercept_
    require(isinstance(coef, np.ndarray) and coef.shape[0] == 1, "logistic regression setup")

    weights, bias = coef[0], intercept[0]

    def decision(X: np.ndarray) -> np.ndarray:
        """X @ coef + intercept, each row summed on its own (a BLAS product's rounding depends
        on how many rows it is given: a customer would score differently alone and in a batch)."""
        if not np.isfinite(X).all():  # as sklearn refuses (e.g. an unknown month)
            raise ValueError("Input X contains NaN or infinity.")
        return (X * weights).sum(axis=1) + bias

    def contributions(X: np.ndarray) -> np.ndarray:
        return np.column_stack([X * coef[0], np.full(len(X), intercept[0])])

    return decision, decision, contributions


def _mlp(model: MLPClassifier) -> tuple[Function, ...]:
    """`MLPClassifier._forward_pass_fast`, stopping before the logistic output for the margin."""
    require(model.out_activation_ == "logistic" and model.n_outputs_ == 1, "mlp setup")
    hidden, layers = ACTIVATIONS[model.activation], list(zip(model.coefs_, model.intercepts_, strict=True))

    def logit(X: np.ndarray) -> np.ndarray:
        if not np.isfinite(X).all():
            raise ValueError("Input X contains NaN or infinity.")
        activation = X
        for i, (weights, bias) in enumerate(layers):
            activation = activation @ weights
            activation += bias
            if i < len(layers) - 1:
                hidden(activation)
        return activation[:, 0]

    return lambda X: expit(logit(X)), logit, None


def _svc(model: SVC) -> tuple[Function, ...]:
    """An RBF SVC's decision function: sum of dual coefficients x kernel, plus the intercept."""
    require(model.kernel == "rbf" and len(model.classes_) == 2, "svc setup")
    vectors, dual = model.support_vectors_, model.dual_coef_[0]
    intercept, gamma, squares = model.intercept_[0], model._gamma, (vectors**2).sum(axis=1)

    def decision(X: np.ndarray) -> np.ndarray:
        if not np.isfinite(X).all():
            raise ValueError("Input X contains NaN or infinity.")
        out = np.empty(len(X))
        for start in range(0, len(X), KERNEL_BLOCK_ROWS):
            block = X[start : start + KERNEL_BLOCK_ROWS]
            distance = (block**2).sum(axis=1)[:, None] + squares - 2.0 * (block @ vectors.T)
            out[start : start + KERNEL_BLOCK_ROWS] = np.exp(-gamma * distance) @ dual + intercept
        return out

    return decision, decision, None


def _probability(member: Any) -> Function:
    """A fitted member's `predict_proba(X)[:, 1]`, from its kind's compiled response."""
    kind, compiler, member = _kind(member)
    response = compiler.compile(member)[0]
    if not compiler.decides:  # the response is predict_proba[:, 1]
        return response
    require(compiler.output == "log-odds", f"soft voting member {kind}: no probability")
    return lambda X: expit(response(X))  # binary HGB and logistic regression: expit(decision)


def _soft_voting(model: SoftVotingClassifier) -> tuple[Function, ...]:
    """The members' probabilities, each compiled as its kind, averaged as the model does."""
    members, weights = [_probability(member) for member in model.estimators_], model.weights
    mean = lambda X: soft_vote([probability(X) for probability in members], weights)  # noqa: E731
    return mean, mean, None


@dataclass(frozen=True)
class KindCompiler:
    estimator_type: type
    decides: bool  # calibrated on decision_function (else on predict_proba[:, 1])
    output: str
    method: str
    compile: Callable[[Any], tuple[Function, Function, Function | None]]  # response, margin, contributions


TREE_SHAP, SHAPLEY = "exact TreeSHAP", "permutation Shapley"
#: Every kind `train` can register (training.candidates, training.ensemble), by the fitted
#: estimator's type.
KINDS: dict[str, KindCompiler] = {
    "xgboost": KindCompiler(xgboost.XGBClassifier, False, "log-odds", TREE_SHAP, _xgboost),
    "logistic_regression": KindCompiler(
        LogisticRegression, True, "log-odds", "linear terms", _logistic_regression
    ),
    "hist_gradient_boosting": KindCompiler(
        HistGradientBoostingClassifier, True, "log-odds", TREE_SHAP, _hist_gradient_boosting
    ),
    "random_forest": KindCompiler(
        RandomForestClassifier, False, "probability (share of trees' votes)", TREE_SHAP, _random_forest
    ),
    "mlp": KindCompiler(MLPClassifier, False, "log-odds", SHAPLEY, _mlp),
    "svc": KindCompiler(SVC, True, "SVM decision value", SHAPLEY, _svc),
    "soft_voting": KindCompiler(
        SoftVotingClassifier, False, "probability (weighted mean of the members')", SHAPLEY, _soft_voting
    ),
}
