"""Stratified train/validation/test split and the season scenario for monitoring."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from bankmarketing.data.schema import TARGET

#: Months the production model learns from; later months arrive as new periods.
REFERENCE_MONTHS = ("dec", "jan", "feb", "mar", "apr", "may")
#: Later periods, month by month, grouped into the two seasons after the reference.
LATER_SEASONS = {"jun-aug": ("jun", "jul", "aug"), "sep-nov": ("sep", "oct", "nov")}


def split_train_validation_test(
    frame: pd.DataFrame, validation_share: float, test_share: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Three disjoint parts with the same share of subscribers in each."""
    rest, test = train_test_split(frame, test_size=test_share, stratify=frame[TARGET], random_state=seed)
    train, validation = train_test_split(
        rest,
        test_size=validation_share / (1 - test_share),
        stratify=rest[TARGET],
        random_state=seed,
    )
    return {"train": train, "validation": validation, "test": test}


def season_scenario(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The reference window (Dec-May) and each later month as its own period."""
    parts = {"reference": frame[frame["month"].isin(REFERENCE_MONTHS)]}
    for months in LATER_SEASONS.values():
        for month in months:
            parts[month] = frame[frame["month"] == month]
    return parts
