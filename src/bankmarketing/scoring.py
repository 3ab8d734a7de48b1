"""One scorer for raw customer records, shared by the predictor, batch scoring and the UI.

A saved pipeline (features ColumnTransformer, CalibratedClassifierCV around XGBoost or logistic
regression) compiles to numpy: records -> model matrix through maps read from the fitted
transformers, no DataFrame per request, checked against the pipeline on synthetic rows.
XGBoost's trees compile to flat arrays walked with numpy for a few rows (`TreeWalk`, bit for bit
the booster's own predictions); larger batches go to the booster's `inplace_predict`.
Anything else falls back to `pipeline.predict_proba`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import xgboost
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from bankmarketing.data.schema import RANGES
from bankmarketing.features import MONTH_NUMBER, add_engineered

log = logging.getLogger(__name__)
Columns = Mapping[str, Sequence[Any]]  # raw field -> its values, one per row
VERIFY_ROWS, VERIFY_TOLERANCE = 64, 1e-9
#: Rows x trees x depth up to which the numpy tree walk scores instead of `inplace_predict`
#: (whose fixed cost per call is ~0.1 ms; the walk costs ~4 us per 1,000 node visits).
WALK_MAX_VISITS = 32_768


def _lookup(values: Any, mapping: Mapping[Any, Any], default: Any, dtype: Any) -> np.ndarray:
    """`mapping.get(value, default)` for every value; a pandas Categorical looks up its categories
    once (a missing value, code -1, gets the default)."""
    if isinstance(values, pd.Categorical):
        table = np.array([mapping.get(c, default) for c in values.categories] + [default], dtype)
        return table[values.codes]
    return np.fromiter(map(mapping.get, values, repeat(default)), dtype, len(values))


def _column(series: pd.Series) -> Any:
    """A frame's column as the scorer reads it: a categorical one stays a Categorical."""
    return series.array if isinstance(series.dtype, pd.CategoricalDtype) else series.to_numpy()


def _day_of_year(columns: Columns) -> np.ndarray | list[float]:
    months, days = columns["month"], columns["day_of_week"]
    if isinstance(months, list):  # records: the same float64 arithmetic, without numpy calls
        return [
            (MONTH_NUMBER.get(m, math.nan) - 1) * 31 + float(d) for m, d in zip(months, days, strict=True)
        ]
    month = _lookup(months, MONTH_NUMBER, np.nan, np.float64)
    return (month - 1) * 31 + np.asarray(days, dtype=np.float64)


def _contacted_before(columns: Columns) -> np.ndarray | list[float]:
    pdays = columns["pdays"]
    if isinstance(pdays, list):
        return [float(p != -1) for p in pdays]
    return (np.asarray(pdays) != -1).astype(np.float64)


#: `features.add_engineered`, column by column: name -> (raw fields it derives from, values).
ENGINEERED: dict[str, tuple[tuple[str, ...], Callable[[Columns], Any]]] = {
    "contacted_before": (("pdays",), _contacted_before),
    "day_of_year": (("month", "day_of_week"), _day_of_year),
}


class ExplanationUnavailable(ValueError):
    """The model kind has no per-feature contributions."""


class Unsupported(Exception):
    """The pipeline has a structure the fast path does not compile."""


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise Unsupported(reason)


def _scaling(step: Any, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(means, scales) of a fitted StandardScaler; zeros and ones (exact no-ops) if unscaled."""
    if (
        step is None
        or (isinstance(step, str) and step == "passthrough")
        or (isinstance(step, FunctionTransformer) and step.func is None)
    ):
        return np.zeros(width), np.ones(width)
    _require(type(step) is StandardScaler and step.n_features_in_ == width, f"step {step!r}")
    return (
        step.mean_ if step.with_mean else np.zeros(width),
        step.scale_ if step.with_std else np.ones(width),
    )


@dataclass(frozen=True)
class Layout:
    """How raw fields become the ColumnTransformer's output columns, in its order."""

    width: int
    onehot: tuple[tuple[str, dict[Any, int]], ...]  # field, {category: output column}
    dense: tuple[tuple[str, Callable[[Columns], Any]], ...]  # numeric field or derived name
    dense_columns: np.ndarray  # their output columns, then StandardScaler's arithmetic:
    means: np.ndarray  # (value - mean) / scale
    scales: np.ndarray
    fields: tuple[str, ...]  # raw fields read, in the training frame's order
    attribution: np.ndarray  # (columns, fields): each column's share of each raw field

    @classmethod
    def compile(cls, features: Any) -> Layout:
        _require(
            isinstance(features, ColumnTransformer)
            and not features.sparse_output_
            and not features.verbose_feature_names_out,
            "not the features ColumnTransformer",
        )
        onehot, dense, dense_columns, scaling, sources, names = [], [], [], [], [], []
        for name, transformer, columns in features.transformers_:
            if (isinstance(transformer, str) and transformer == "drop") or len(columns) == 0:
                continue
            _require(all(isinstance(c, str) for c in columns), f"{name}: columns by position")
            if isinstance(transformer, OneHotEncoder):
                _require(
                    transformer.handle_unknown == "ignore"
                    and transformer.drop_idx_ is None
                    and transformer.max_categories is None
                    and transformer.min_frequency is None
                    and not transformer.sparse_output
                    and transformer.feature_name_combiner == "concat",
                    f"{name}: encoder",
                )
                for field, categories in zip(columns, transformer.categories_, strict=True):
                    onehot.append((field, {c: len(sources) + j for j, c in enumerate(categories)}))
                    sources += [(field,)] * len(categories)
                    names += [f"{field}_{c}" for c in categories]
                continue
            if isinstance(transformer, Pipeline):
                derive, rest = transformer.steps[0][1], transformer.steps[1:]
                _require(
                    isinstance(derive, FunctionTransformer)
                    and derive.func is add_engineered
                    and not derive.kw_args
                    and len(rest) <= 1,
                    f"{name}: unknown steps",
                )
                block = [str(d) for d in derive.get_feature_names_out()]
                _require(set(block) <= set(ENGINEERED), f"{name}: unknown {block}")
                dense += [(d, ENGINEERED[d][1]) for d in block]
                derived_from, step = [ENGINEERED[d][0] for d in block], rest[0][1] if rest else None
            else:
                block, step = list(columns), transformer
                dense += [(field, itemgetter(field)) for field in block]
                derived_from = [(field,) for field in block]
            scaling.append(_scaling(step, len(block)))
            dense_columns += range(len(sources), len(sources) + len(block))
            sources += derived_from
            names += block
        _require(names == list(features.get_feature_names_out()), "column order differs")
        fields = tuple(f for f in features.feature_names_in_ if any(f in s for s in sources))
        attribution = np.zeros((len(sources), len(fields)))
        for column, derived_from in enumerate(sources):
            for field in derived_from:  # derived columns: split evenly between their fields
                attribution[column, fields.index(field)] = 1.0 / len(derived_from)
        means, scales = (
            [np.concatenate(s) for s in zip(*scaling, strict=True)] if scaling else [np.zeros(0), np.ones(0)]
        )
        return cls(
            len(sources),
            tuple(onehot),
            tuple(dense),
            np.array(dense_columns, np.intp),
            means,
            scales,
            fields,
            attribution,
        )

    def matrix(self, columns: Columns, rows: int) -> np.ndarray:
        """The float64 model matrix, exactly as the fitted ColumnTransformer builds it."""
        if rows == 1:
            return self._row(columns)
        X = np.zeros((rows, self.width + 1))  # the last column collects unknown categories
        if self.onehot:
            index = np.stack(  # unknown categories stay all zero (handle_unknown="ignore")
                [_lookup(columns[field], codes, self.width, np.intp) for field, codes in self.onehot]
            )
            X[np.arange(rows), index] = 1.0
        if self.dense:
            values = np.array([get(columns) for _, get in self.dense], np.float64)
            X[:, self.dense_columns] = (values.T - self.means) / self.scales
        return X[:, : self.width]

    def _row(self, columns: Columns) -> np.ndarray:
        """`matrix` for one row in plain Python floats (the same float64 arithmetic), one array."""
        x = [0.0] * self.width
        for field, codes in self.onehot:
            column = codes.get(columns[field][0])
            if column is not None:
                x[column] = 1.0
        for get, column, mean, scale in self._scalar_dense:
            x[column] = (float(get(columns)[0]) - mean) / scale
        return np.array([x])

    @functools.cached_property
    def _scalar_dense(self) -> list[tuple[Callable[[Columns], Any], int, float, float]]:
        columns, means, scales = self.dense_columns.tolist(), self.means.tolist(), self.scales.tolist()
        return [(get, *rest) for (_, get), *rest in zip(self.dense, columns, means, scales, strict=True)]


@dataclass(frozen=True)
class Classifier:
    """The calibrated binary classifier as functions of the model matrix."""

    kind: str
    response: Callable[[np.ndarray], np.ndarray]  # what the calibrator was fitted on
    margin: Callable[[np.ndarray], np.ndarray]  # log-odds before calibration
    contributions: Callable[[np.ndarray], np.ndarray]  # (n, width), bias left out
    calibrate: Callable[[np.ndarray], np.ndarray]  # the calibrator's predict

    @classmethod
    def compile(cls, model: Any) -> Classifier:
        _require(
            isinstance(model, CalibratedClassifierCV)
            and len(model.classes_) == 2
            and len(model.calibrated_classifiers_) == 1,
            "not one calibrated binary model",
        )
        calibrated = model.calibrated_classifiers_[0]
        _require(calibrated.method in ("isotonic", "sigmoid"), f"calibration {calibrated.method}")
        estimator, calibrate = calibrated.estimator, _calibration(calibrated.calibrators[0])
        if type(estimator) is xgboost.XGBClassifier:
            return cls("xgboost", *_xgboost(estimator), calibrate)
        if type(estimator) is LogisticRegression:
            return cls("logistic_regression", *_logistic_regression(estimator), calibrate)
        raise Unsupported(f"classifier {type(estimator).__name__}")

    def score(self, X: np.ndarray) -> np.ndarray:
        """`_CalibratedClassifier.predict_proba(X)[:, 1]` for two classes."""
        proba = np.asarray(self.calibrate(self.response(X)), dtype=np.float64)
        if proba.max(initial=0.0) > 1.0:
            proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba


def _calibration(calibrator: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The calibrator's predict on a 1-d array, same arithmetic without input validation."""
    if type(calibrator).__name__ == "_SigmoidCalibration":
        a, b = calibrator.a_, calibrator.b_
        return lambda T: expit(-(a * T + b))
    _require(type(calibrator) is IsotonicRegression, f"calibrator {calibrator!r}")
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


def _linear_interpolation(interpolate: Any) -> Callable[[np.ndarray], np.ndarray] | None:
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


@functools.cache
def _expf() -> Callable[[float], float]:
    """The C library's `expf`, which XGBoost's logistic transform calls (numpy's float32 exp
    rounds differently in ~15 % of cases)."""
    for library in (None, ctypes.util.find_library("m")):
        try:
            function = ctypes.CDLL(library).expf
        except (OSError, AttributeError, TypeError):
            continue
        function.restype, function.argtypes = ctypes.c_float, (ctypes.c_float,)
        return function
    raise Unsupported("no C library expf")


def _xgboost_sigmoid(margin: np.ndarray) -> np.ndarray:
    """`xgboost::common::Sigmoid` in float32: 1 / (expf(min(-x, 88.7)) + 1 + 1e-16)."""
    one, eps, cap = np.float32(1.0), np.float32(1e-16), np.float32(88.7)
    if len(margin) == 1:  # numpy float32 scalars: the same float32 operations, fewer calls
        e = np.float32(_expf()(float(min(-margin[0], cap))))  # min() is std::min: NaN stays
        return np.array([one / (e + one + eps)], np.float32)
    exponent = np.minimum(-margin, cap)
    e = np.fromiter(map(_expf(), exponent.tolist()), np.float32, len(exponent))
    return one / (e + one + eps)


@dataclass(frozen=True)
class TreeWalk:
    """XGBoost's trees as flat arrays, walked for every tree at once, one level per step.

    The booster's CPU predictor, op for op: a row goes right unless float32(x) < the float32
    split condition, a missing value (NaN or the model's `missing`) goes the node's default
    way, the leaf values add up in float32 from the base margin in tree order, and the logistic
    transform calls the C library's expf. `compile` checks all of that bit for bit against the
    booster. States are 2 x node index, so `child[state + goes_right]` is the next state;
    leaves point to themselves, so every tree can take `depth` steps. The base margin is a
    one-leaf tree in front of the others.
    """

    roots: np.ndarray  # the state of each tree's root, in tree order, after the base margin's
    feature: np.ndarray  # by state: the column a split reads (0 at leaves)
    threshold: np.ndarray  # by state: the split condition, float32
    default_right: np.ndarray  # by state: missing values go right
    child: np.ndarray  # by state + goes_right: the next state
    leaf: np.ndarray  # by state: the leaf value, float32 (0 at splits)
    depth: int
    missing: float
    width: int

    @property
    def trees(self) -> int:
        return len(self.roots) - 1

    @property
    def visits_per_row(self) -> int:
        return len(self.roots) * max(self.depth, 1)

    @classmethod
    def compile(cls, booster: xgboost.Booster, iterations: tuple[int, int], missing: float) -> TreeWalk:
        document = json.loads(booster.save_raw("json"))
        learner = document["learner"]
        gbtree = learner["gradient_booster"]
        _require(gbtree.get("name") == "gbtree", f"booster {gbtree.get('name')}")
        _require(learner["objective"]["name"] == "binary:logistic", "objective")
        _require(int(learner["learner_model_param"].get("num_target", "1")) == 1, "several targets")
        model = gbtree["model"]
        indptr = model.get("iteration_indptr") or list(range(len(model["trees"]) + 1))
        first, last = iterations
        last = len(indptr) - 1 if last == 0 else last
        trees = model["trees"][indptr[first] : indptr[last]]
        _require(all(t == 0 for t in model["tree_info"]), "several output groups")
        sizes = [1] + [len(tree["left_children"]) for tree in trees]  # node 0: the base margin
        starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.intp)])
        nodes = int(starts[-1])
        feature = np.zeros(2 * nodes, np.intp)
        threshold = np.zeros(2 * nodes, np.float32)
        default_right = np.zeros(2 * nodes, bool)
        child = np.zeros(2 * nodes, np.intp)
        leaf = np.zeros(2 * nodes, np.float32)
        depth = 0
        for tree, start in zip(trees, starts[1:-1], strict=True):
            _require(not any(tree["split_type"]) and not tree["categories"], "categorical splits")
            _require(int(tree["tree_param"].get("size_leaf_vector", "1")) <= 1, "vector leaves")
            left, right = np.array(tree["left_children"]), np.array(tree["right_children"])
            index = np.arange(len(left))
            is_leaf = left == -1
            condition = np.array(tree["split_conditions"], np.float64).astype(np.float32)
            state = 2 * (start + index)
            feature[state] = np.where(is_leaf, 0, tree["split_indices"])
            threshold[state] = np.where(is_leaf, np.float32(0), condition)
            default_right[state] = ~np.array(tree["default_left"], bool) & ~is_leaf
            leaf[state] = np.where(is_leaf, condition, np.float32(0))
            child[state] = 2 * (start + np.where(is_leaf, index, left))
            child[state + 1] = 2 * (start + np.where(is_leaf, index, right))
            levels, frontier = 0, [0]
            while frontier := [c for n in frontier if left[n] != -1 for c in (left[n], right[n])]:
                levels += 1
            depth = max(depth, levels)
        width = int(learner["learner_model_param"]["num_feature"])
        zeroed = _zero_leaves(document)  # base_score through the objective's link, exactly:
        base = zeroed.inplace_predict(np.zeros((1, width)), iteration_range=(0, 1), predict_type="margin")
        leaf[0] = base[0]  # a leaf pointing to itself (child is 0), first in every sum
        walk = cls(
            roots=2 * starts[:-1],
            feature=feature,
            threshold=threshold,
            default_right=default_right,
            child=child,
            leaf=leaf,
            depth=depth,
            missing=float(missing),
            width=width,
        )
        walk._verify(booster, iterations, zeroed)
        return walk

    def margin(self, X: np.ndarray) -> np.ndarray:
        """The booster's output margin, float32, shape (n,)."""
        X = np.asarray(X, np.float32)  # what XGBoost reads from a float64 matrix
        if not math.isnan(self.missing):
            X = np.where(X == np.float32(self.missing), np.float32(np.nan), X)
        rows, width = X.shape
        flat, trees = X.reshape(-1), len(self.roots)
        state = self.roots if rows == 1 else np.tile(self.roots, rows)
        offsets = None if rows == 1 else np.repeat(np.arange(0, rows * width, width), trees)
        has_missing = bool(np.isnan(flat).any())
        for _ in range(self.depth):
            columns = self.feature.take(state)
            if offsets is not None:
                columns += offsets
            values = flat.take(columns)
            goes_right = values >= self.threshold.take(state)
            if has_missing:
                goes_right |= np.isnan(values) & self.default_right.take(state)
            state = self.child.take(state + goes_right)
        leaves = self.leaf.take(state)  # sequential float32 sums, as the booster adds:
        return np.cumsum(leaves)[-1:] if rows == 1 else np.cumsum(leaves.reshape(rows, trees), axis=1)[:, -1]

    def value(self, X: np.ndarray) -> np.ndarray:
        """The booster's `predict_type="value"`: the probability, float32, shape (n,)."""
        return _xgboost_sigmoid(self.margin(X))

    def _verify(self, booster: xgboost.Booster, iterations: tuple[int, int], zeroed: xgboost.Booster) -> None:
        """Bit for bit against the booster on rows at, just below and just above every split
        condition, with missing values; the transform on margins from -100 to 100."""
        rng = np.random.default_rng(0)
        states = np.arange(0, len(self.feature), 2)
        splits = states[self.child[states] != states]
        candidates = [[np.float32(0)] for _ in range(self.width)]
        for column, condition in zip(self.feature[splits], self.threshold[splits], strict=True):
            below, above = np.nextafter(condition, np.float32(-np.inf)), np.nextafter(condition, np.inf)
            candidates[column] += [condition, below, above]
        probe = np.column_stack(
            [np.array(values, np.float64)[rng.integers(len(values), size=512)] for values in candidates]
        )
        probe[rng.random(probe.shape) < 0.05] = np.nan
        if not math.isnan(self.missing):
            probe[rng.random(probe.shape) < 0.05] = self.missing
        for rows in (probe[:1], probe):
            for kind, ours in (("margin", self.margin), ("value", self.value)):
                expected = booster.inplace_predict(
                    rows, iteration_range=iterations, predict_type=kind, missing=self.missing
                )
                _require(np.array_equal(ours(rows), expected), f"tree walk {kind}s differ from the booster")
        margins = np.concatenate(
            [np.linspace(-100, 100, 4001), rng.normal(0, 4, 4000), [0.0, -0.0, 88.7, -88.7, 89, -89]]
        ).astype(np.float32)
        expected = zeroed.inplace_predict(
            np.zeros((len(margins), self.width)), base_margin=margins, iteration_range=(0, 1)
        )
        _require(np.array_equal(_xgboost_sigmoid(margins), expected), "expf differs from XGBoost's")


def _zero_leaves(document: dict) -> xgboost.Booster:
    """The booster with every leaf 0: its margin is the base margin, or the base_margin given."""
    zeroed = json.loads(json.dumps(document))
    for tree in zeroed["learner"]["gradient_booster"]["model"]["trees"]:
        tree["split_conditions"] = [
            0.0 if left == -1 else condition
            for left, condition in zip(tree["left_children"], tree["split_conditions"], strict=True)
        ]
        tree["base_weights"] = [0.0] * len(tree["base_weights"])
    return xgboost.Booster(model_file=bytearray(json.dumps(zeroed).encode()))


def _xgboost(model: xgboost.XGBClassifier) -> tuple[Callable, ...]:
    # Without decision_function, calibration was fitted on predict_proba[:, 1].
    _require(
        not hasattr(model, "decision_function")
        and model.objective == "binary:logistic"
        and model.n_classes_ == 2
        and model.booster != "gblinear",
        "xgboost setup",
    )
    booster = model.get_booster()
    best = getattr(model, "best_iteration", None)  # the trees XGBClassifier.predict uses
    trees = (0, 0) if best is None else (0, best + 1)
    try:
        walk = TreeWalk.compile(booster, trees, model.missing)
    except Unsupported as exc:  # still the fast path, every batch through the booster
        log.info("no numpy tree walk: %s", exc)
        walk = None

    def predict(X: np.ndarray, predict_type: str) -> np.ndarray:
        if walk is not None and len(X) * walk.visits_per_row <= WALK_MAX_VISITS:
            return walk.value(X) if predict_type == "value" else walk.margin(X)
        return booster.inplace_predict(
            X, iteration_range=trees, predict_type=predict_type, missing=model.missing
        )

    def contributions(X: np.ndarray) -> np.ndarray:
        matrix = xgboost.DMatrix(X, missing=model.missing)
        return booster.predict(matrix, pred_contribs=True, iteration_range=trees)[:, :-1]

    return lambda X: predict(X, "value"), lambda X: predict(X, "margin"), contributions


def _logistic_regression(model: LogisticRegression) -> tuple[Callable, ...]:
    # sklearn prefers decision_function, so calibration was fitted on it.
    coef, intercept = model.coef_, model.intercept_
    _require(isinstance(coef, np.ndarray) and coef.shape[0] == 1, "logistic regression setup")

    def decision(X: np.ndarray) -> np.ndarray:
        if not np.isfinite(X).all():  # as sklearn refuses (e.g. an unknown month)
            raise ValueError("Input X contains NaN or infinity.")
        return (X @ coef.T + intercept).reshape(-1)

    return decision, decision, lambda X: X * coef[0]


def _synthetic_columns(layout: Layout, rows: int) -> dict[str, list]:
    """Every category (plus an unseen one where nothing derives from it), edge numbers."""
    rng = np.random.default_rng(0)
    derived_from = {f for name, _ in layout.dense if name in ENGINEERED for f in ENGINEERED[name][0]}
    columns = {}
    for field, codes in layout.onehot:
        values = list(codes) + ([] if field in derived_from else ["<unseen>"])
        columns[field] = [values[i % len(values)] for i in range(rows)]
    for field in [f for f in layout.fields if f not in columns]:
        low, high = RANGES.get(field, (0, 100))
        low = -1000 if low is None else low
        typical = max(low, 0), min(max(low, 0) + 1000, 10**6 if high is None else high)
        columns[field] = [
            low if i % 3 == 0 else int(rng.integers(typical[0], typical[1] + 1)) for i in range(rows)
        ]
    return columns


class Scorer:
    """Scores raw customer records with a saved pipeline; fast path where the model allows."""

    def __init__(
        self,
        pipeline: Any,
        layout: Layout | None = None,
        classifier: Classifier | None = None,
        fallback_reason: str | None = None,
    ):
        self.pipeline, self.layout, self.classifier = pipeline, layout, classifier
        self.fallback_reason = fallback_reason

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> Scorer:
        """Compile the fast path when supported and verified, else fall back to the pipeline."""
        try:
            _require(isinstance(pipeline, Pipeline) and len(pipeline.steps) == 2, "not 2 steps")
            scorer = cls(
                pipeline, Layout.compile(pipeline.steps[0][1]), Classifier.compile(pipeline.steps[1][1])
            )
            columns = _synthetic_columns(scorer.layout, VERIFY_ROWS)
            with warnings.catch_warnings():  # the unseen categories are deliberate
                warnings.simplefilter("ignore", UserWarning)
                expected = pipeline.predict_proba(pd.DataFrame(columns))[:, 1]
            difference = np.max(np.abs(scorer._score(columns, VERIFY_ROWS) - expected))
            _require(difference <= VERIFY_TOLERANCE, f"self-check differs by {difference:.3g}")
            return scorer
        except Exception as exc:  # unsupported, or a structure misread: never guess scores
            expected_kind = isinstance(exc, Unsupported)
            log.log(
                logging.INFO if expected_kind else logging.WARNING,
                "scoring falls back to the pipeline: %r",
                exc,
                exc_info=not expected_kind,
            )
            return cls(pipeline, fallback_reason=str(exc) if expected_kind else repr(exc))

    @property
    def fast(self) -> bool:
        """Whether the compiled numpy path is in use."""
        return self.classifier is not None

    @property
    def kind(self) -> str:
        """The compiled model kind (xgboost, logistic_regression), else "pipeline"."""
        return self.classifier.kind if self.classifier else "pipeline"

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Probability of subscription per record (extra keys ignored), shape (n,)."""
        if not self.fast:
            return self._pipeline_scores(pd.DataFrame.from_records(list(records)))
        return self._score(self._record_columns(records), len(records))

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of subscription per row of a frame of raw records, shape (n,)."""
        if not self.fast:
            return self._pipeline_scores(frame)
        columns = {field: _column(frame[field]) for field in self.layout.fields}
        return self._score(columns, len(frame))

    def margin(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The model's log-odds before calibration, which `explain` decomposes."""
        X = self._explainable_matrix(records)
        return np.asarray(self.classifier.margin(X), np.float64) if len(X) else np.empty(0)

    def explain(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
        """Per raw feature contributions to the margin, plus "bias": they sum to the margin.

        A categorical field gets the sum over its one-hot columns, `pdays` gets
        `contacted_before`, and `day_of_year` is split evenly between `month` and
        `day_of_week`. "bias" is the margin minus the contributions: the intercept (or
        XGBoost's base score), up to XGBoost's float32 rounding (~1e-6).
        """
        X = self._explainable_matrix(records)
        if not len(X):
            return []
        raw = np.asarray(self.classifier.contributions(X), np.float64) @ self.layout.attribution
        bias = np.asarray(self.classifier.margin(X), np.float64) - raw.sum(axis=1)
        return [
            dict(zip(self.layout.fields, map(float, row), strict=True)) | {"bias": float(b)}
            for row, b in zip(raw, bias, strict=True)
        ]

    def _explainable_matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not self.fast:
            raise ExplanationUnavailable(
                f"per-feature contributions are not available for model kind {self.kind!r} "
                f"({self.fallback_reason}); only xgboost and logistic_regression have them"
            )
        return self.layout.matrix(self._record_columns(records), len(records))

    def _record_columns(self, records: Sequence[Mapping[str, Any]]) -> dict[str, list]:
        return {field: [record[field] for record in records] for field in self.layout.fields}

    def _score(self, columns: Columns, rows: int) -> np.ndarray:
        return self.classifier.score(self.layout.matrix(columns, rows)) if rows else np.empty(0)

    def _pipeline_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(frame)[:, 1] if len(frame) else np.empty(0)
