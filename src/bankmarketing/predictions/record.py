"""The prediction record: one `prediction_log` row per scored customer, and the one place where
"two versions scored this customer" is written into it and read back out of it.

The predictor builds a `PredictionRow` per customer (`serving/predictor.py`) and hands it to
the writer (`predictions/log.py`); `monitor` (`monitoring/log_scan.py`), the outcomes
join and retraining (`predictions/outcomes.py`) read the rows back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypedDict

import numpy as np
import pandas as pd

#: Which of two versions answered the customer (`arm`).
PRODUCTION_ARM, CHALLENGER_ARM = "production", "challenger"


class PredictionRow(TypedDict):
    """A row of `prediction_log` as the predictor writes it (a dict at run time: no cost per row)."""

    request_id: str  # the request's id; `<id>:<i>` for the i-th customer of a batch
    at: dt.datetime
    model_name: str
    model_version: int  # the version that answered
    score: float
    decision: bool
    features: dict[str, Any]
    arm: str | None  # with a second version: the role of the one that answered, else None
    shadow_version: int | None  # the other version
    shadow_score: float | None  # its score of the same customer


def prediction_row(
    request_id: str,
    at: dt.datetime,
    model_name: str,
    version: int,
    score: float,
    decision: bool,
    features: dict[str, Any],
    other: tuple[int, float, bool] | None = None,
) -> PredictionRow:
    """The row of one scored customer; `other` is (the other version, its score, whether the
    answering version is the challenger) when two versions scored the customer."""
    other_version, other_score, by_challenger = other if other is not None else (None, None, False)
    return {
        "request_id": request_id,
        "at": at,
        "model_name": model_name,
        "model_version": version,
        "score": score,
        "decision": decision,
        "features": features,
        "arm": None if other is None else (CHALLENGER_ARM if by_challenger else PRODUCTION_ARM),
        "shadow_version": other_version,
        "shadow_score": other_score,
    }


def by_role(rows: pd.DataFrame, score: str = "score") -> pd.DataFrame:
    """The rows two versions scored, with each version's role: `production_version`,
    `challenger_version`, their scores `production` and `challenger`, and `by_challenger`
    (whether the challenger answered). `score` names the column of the answering score."""
    paired = rows[rows["shadow_version"].notna()].copy()
    by_challenger = (paired["arm"] == CHALLENGER_ARM).to_numpy()
    served, shadow = paired["model_version"].to_numpy(), paired["shadow_version"].to_numpy(dtype=int)
    scores, shadow_scores = paired[score].to_numpy(), paired["shadow_score"].to_numpy(dtype=float)
    paired["production_version"] = np.where(by_challenger, shadow, served)
    paired["challenger_version"] = np.where(by_challenger, served, shadow)
    paired["production"] = np.where(by_challenger, shadow_scores, scores)
    paired["challenger"] = np.where(by_challenger, scores, shadow_scores)
    paired["by_challenger"] = by_challenger
    return paired
