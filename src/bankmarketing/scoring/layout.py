"""Raw customer records -> the model matrix, through maps read from the fitted ColumnTransformer.

No DataFrame per request: one-hot columns by dictionary lookup, numeric and engineered columns
with StandardScaler's own arithmetic, in the transformer's column order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from bankmarketing.data.schema import RANGES
from bankmarketing.features import MONTH_NUMBER, add_engineered
from bankmarketing.scoring.errors import require as _require

Columns = Mapping[str, Sequence[Any]]  # raw field -> its values, one per row


def _lookup(values: Any, mapping: Mapping[Any, Any], default: Any, dtype: Any) -> np.ndarray:
    """`mapping.get(value, default)` for every value; a pandas Categorical looks up its categories
    once (a missing value, code -1, gets the default)."""
    if isinstance(values, pd.Categorical):
        table = np.array([mapping.get(c, default) for c in values.categories] + [default], dtype)
        return table[values.codes]
    return np.fromiter(map(mapping.get, values, repeat(default)), dtype, len(values))


def frame_column(series: pd.Series) -> Any:
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


def synthetic_columns(layout: Layout, rows: int) -> dict[str, list]:
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
