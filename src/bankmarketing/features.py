"""The feature pipeline: raw customer records in, model matrix out (saved with the model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from bankmarketing.data.schema import CATEGORICAL_FEATURES, CATEGORIES, MONTHS, NUMERIC_FEATURES

MONTH_NUMBER = {month: number for number, month in enumerate(MONTHS, start=1)}
#: Derived from the raw columns inside the model, so callers send raw records only.
ENGINEERED_FEATURES = ("contacted_before", "day_of_year")


def add_engineered(frame: pd.DataFrame) -> pd.DataFrame:
    """Whether the customer was contacted in an earlier campaign, and the call's day of year."""
    month = frame["month"].map(MONTH_NUMBER).astype(float)
    return pd.DataFrame(
        {
            "contacted_before": (frame["pdays"] != -1).astype(float),
            "day_of_year": (month - 1) * 31 + frame["day_of_week"].astype(float),
        },
        index=frame.index,
    )


def _engineered_names(_transformer, _input_features) -> np.ndarray:
    return np.array(ENGINEERED_FEATURES)


def build_features(scale_numeric: bool) -> ColumnTransformer:
    """One-hot categories (fixed vocabularies) beside numeric and engineered columns."""
    numeric = StandardScaler() if scale_numeric else "passthrough"
    engineered = Pipeline(
        [
            ("derive", FunctionTransformer(add_engineered, feature_names_out=_engineered_names)),
            ("scale", StandardScaler() if scale_numeric else "passthrough"),
        ]
    )
    return ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(
                    categories=[list(CATEGORIES[c]) for c in CATEGORICAL_FEATURES],
                    handle_unknown="ignore",
                    sparse_output=False,
                    dtype=np.float64,
                ),
                list(CATEGORICAL_FEATURES),
            ),
            ("numeric", numeric, list(NUMERIC_FEATURES)),
            ("engineered", engineered, ["pdays", "month", "day_of_week"]),
        ],
        verbose_feature_names_out=False,
    )
