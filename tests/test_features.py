"""The feature pipeline: raw records in, a fixed set of model columns out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bankmarketing.data.schema import CATEGORIES, FEATURES
from bankmarketing.features import add_engineered, build_features

RECORD = {
    "age": 41,
    "job": "technician",
    "marital": "married",
    "education": "secondary",
    "default": "no",
    "balance": 120,
    "housing": "yes",
    "loan": "no",
    "contact": "cellular",
    "day_of_week": 5,
    "month": "may",
    "campaign": 2,
    "pdays": -1,
    "previous": 0,
    "poutcome": "unknown",
}


def test_engineered_features():
    frame = pd.DataFrame([RECORD, RECORD | {"pdays": 90, "previous": 2, "month": "jan", "day_of_week": 31}])
    derived = add_engineered(frame)
    assert derived["contacted_before"].tolist() == [0.0, 1.0]
    assert derived["day_of_year"].tolist() == [4 * 31 + 5, 31]


def test_output_columns_are_fixed_by_the_schema_not_the_data():
    with_duration = pd.DataFrame([RECORD | {"duration": 300}] * 3)  # known only after the call
    features = build_features(scale_numeric=False).fit(with_duration)
    names = list(features.get_feature_names_out())
    assert len(names) == sum(len(v) for v in CATEGORIES.values()) + 6 + 2
    assert "month_nov" in names and not [n for n in names if "duration" in n]
    assert features.transform(with_duration).shape[1] == len(names)
    assert all(f in FEATURES for f in RECORD)


def test_unseen_category_encodes_as_all_zero_not_an_error():
    features = build_features(scale_numeric=True).fit(pd.DataFrame([RECORD] * 3))
    matrix = features.transform(pd.DataFrame([RECORD | {"job": "astronaut"}]))
    names = list(features.get_feature_names_out())
    job_columns = [i for i, n in enumerate(names) if n.startswith("job_")]
    assert np.all(matrix[0, job_columns] == 0)
