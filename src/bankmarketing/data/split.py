"""Stratified train/validation/test split and the season scenario for monitoring."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from bankmarketing.data.identity import ROW_ID
from bankmarketing.data.schema import TARGET

#: Months the production model learns from; later months arrive as new periods.
REFERENCE_MONTHS = ("dec", "jan", "feb", "mar", "apr", "may")
#: Later periods, month by month, grouped into the two seasons after the reference.
LATER_SEASONS = {"jun-aug": ("jun", "jul", "aug"), "sep-nov": ("sep", "oct", "nov")}
LATER_MONTHS = tuple(m for months in LATER_SEASONS.values() for m in months)
#: The scenario's twelve months in the order production lives through them.
CALENDAR = (*REFERENCE_MONTHS, *LATER_MONTHS)
#: The periods `monitor` measures by default: the held-out test split, then each later month.
SEASON_PERIODS = ("test", *LATER_MONTHS)


def split_train_validation_test(
    frame: pd.DataFrame, validation_share: float, test_share: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Three parts with the same share of subscribers in each, disjoint by identity: every row
    of one customer (`row_id`) goes to the same part."""
    customers = frame.drop_duplicates(ROW_ID)
    rest, test = train_test_split(
        customers[ROW_ID], test_size=test_share, stratify=customers[TARGET], random_state=seed
    )
    rest_outcomes = customers.loc[rest.index, TARGET]
    train, validation = train_test_split(
        rest,
        test_size=validation_share / (1 - test_share),
        stratify=rest_outcomes,
        random_state=seed,
    )
    ids = {"train": train, "validation": validation, "test": test}
    return {name: frame[frame[ROW_ID].isin(part)] for name, part in ids.items()}


def season_scenario(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The reference window (Dec-May) and each later month as its own period."""
    parts = {"reference": frame[frame["month"].isin(REFERENCE_MONTHS)]}
    for months in LATER_SEASONS.values():
        for month in months:
            parts[month] = frame[frame["month"] == month]
    return parts
