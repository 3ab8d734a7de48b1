"""Row identity: which customer a labelled row is, across data versions, splits and the log.

The data set has no customer id, so a row's identity is a content hash of its model features
(the 15 fields a prediction is made from; not `duration` or the outcome). The same customer
logged by the predictor and later labelled gets the same identity as their row of the data
set, and two rows with identical features are one customer for every split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pandas as pd

from bankmarketing.data.schema import FEATURES

#: The column that carries a row's identity in prepared data.
ROW_ID = "row_id"
_SEPARATOR = "\x1f"


def row_ids(frame: pd.DataFrame) -> pd.Series:
    """Each row's identity: 16 hex digits of the BLAKE2b hash of its features, in schema order,
    each as its text (integers without a decimal point); indexed like `frame`."""
    text = frame[FEATURES[0]].astype(str)
    for field in FEATURES[1:]:
        text = text + _SEPARATOR + frame[field].astype(str)
    return pd.Series(
        [hashlib.blake2b(row.encode(), digest_size=8).hexdigest() for row in text],
        index=frame.index,
        name=ROW_ID,
        dtype="string",
    )


def with_row_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its `row_id` column (computed from the features; any old one replaced)."""
    return frame.assign(**{ROW_ID: row_ids(frame)})


def identity_digest(ids: Iterable[str]) -> str:
    """One sha256 for a set of identities (order and repeats ignored): a version's training set."""
    return hashlib.sha256("\n".join(sorted(set(ids))).encode()).hexdigest()
