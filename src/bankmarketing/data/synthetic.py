"""Synthetic customers with the real schema, only on explicit request, always labelled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bankmarketing.data.schema import CATEGORIES, COLUMNS, MONTHS

SYNTHETIC_TAG = "synthetic"


def generate(rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows that satisfy the schema; `y` follows a plausible logit. Every row is synthetic."""
    rng = np.random.default_rng(seed)
    frame = {name: rng.choice(allowed, rows) for name, allowed in CATEGORIES.items()}
    frame["month"] = rng.choice(MONTHS, rows)
    contacted_before = rng.random(rows) < 0.18
    frame |= {
        "age": rng.integers(18, 96, rows),
        "balance": rng.normal(1_300, 3_000, rows).round().astype(int),
        "day_of_week": rng.integers(1, 32, rows),
        "duration": rng.exponential(250, rows).round().astype(int),
        "campaign": rng.geometric(0.4, rows).clip(1, 60),
        "pdays": np.where(contacted_before, rng.integers(1, 400, rows), -1),
        "previous": np.where(contacted_before, rng.integers(1, 10, rows), 0),
    }
    frame["poutcome"] = np.where(contacted_before, frame["poutcome"], "unknown")
    logit = (
        -2.6
        + 1.8 * (frame["poutcome"] == "success")
        + 0.6 * (frame["contact"] == "cellular")
        - 0.1 * frame["campaign"]
        + 0.015 * (frame["age"] - 40).clip(0)
    )
    frame["y"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame(frame)[list(COLUMNS)]
