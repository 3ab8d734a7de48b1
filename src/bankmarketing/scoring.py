"""One scorer for raw customer records, shared by the predictor, batch scoring and the UI.

A saved pipeline (features ColumnTransformer, CalibratedClassifierCV around XGBoost or logistic
regression) compiles to numpy: records -> model matrix through maps read from the fitted
transformers, no DataFrame per request, checked against the pipeline on synthetic rows.
Anything else falls back to `pipeline.predict_proba`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
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


def _day_of_year(columns: Columns) -> np.ndarray:
    months = columns["month"]
    month = np.fromiter(map(MONTH_NUMBER.get, months, repeat(np.nan)), np.float64, len(months))
    return (month - 1) * 31 + np.asarray(columns["day_of_week"], dtype=np.float64)


#: `features.add_engineered`, column by column: name -> (raw fields it derives from, values).
ENGINEERED: dict[str, tuple[tuple[str, ...], Callable[[Columns], np.ndarray]]] = {
    "contacted_before": (("pdays",), lambda c: (np.asarray(c["pdays"]) != -1).astype(np.float64)),
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
        X = np.zeros((rows, self.width))
        if self.onehot:
            index = np.fromiter(
                chain.from_iterable(
                    map(codes.get, columns[field], repeat(-1)) for field, codes in self.onehot
                ),
                np.intp,
                rows * len(self.onehot),
            ).reshape(len(self.onehot), rows)
            known = index >= 0  # unknown categories stay all zero (handle_unknown="ignore")
            X[np.nonzero(known)[1], index[known]] = 1.0
        if self.dense:
            values = np.array([np.asarray(get(columns), np.float64) for _, get in self.dense])
            X[:, self.dense_columns] = (values.T - self.means) / self.scales
        return X


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

    def isotonic(T: np.ndarray) -> np.ndarray:  # IsotonicRegression._transform
        T = np.asarray(T, dtype=dtype)
        return interpolate(np.clip(T, low, high) if clip else T).astype(dtype)

    return isotonic


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

    def predict(X: np.ndarray, predict_type: str) -> np.ndarray:
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
        columns = {field: frame[field].to_numpy() for field in self.layout.fields}
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
