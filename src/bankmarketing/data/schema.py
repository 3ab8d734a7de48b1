"""The data contract: columns, categories, ranges and the pandera schema."""

from __future__ import annotations

import pandera.pandas as pa

TARGET = "y"
#: Known only after the call has ended, so it is never a model feature.
LEAKY_COLUMNS = ("duration",)

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MISSING = "unknown"

CATEGORIES: dict[str, tuple[str, ...]] = {
    "job": (
        "admin.",
        "blue-collar",
        "entrepreneur",
        "housemaid",
        "management",
        "retired",
        "self-employed",
        "services",
        "student",
        "technician",
        "unemployed",
        MISSING,
    ),
    "marital": ("divorced", "married", "single", MISSING),
    "education": ("primary", "secondary", "tertiary", MISSING),
    "default": ("no", "yes", MISSING),
    "housing": ("no", "yes", MISSING),
    "loan": ("no", "yes", MISSING),
    "contact": ("cellular", "telephone", MISSING),
    "month": MONTHS,
    "poutcome": ("failure", "other", "success", MISSING),
}

#: Inclusive ranges of the integer columns (None: unbounded on that side).
RANGES: dict[str, tuple[int | None, int | None]] = {
    "age": (18, 100),
    "balance": (-1_000_000, 10_000_000),
    "day_of_week": (1, 31),
    "duration": (0, 10_000),
    "campaign": (1, 100),
    "pdays": (-1, 1_000),
    "previous": (0, 1_000),
}

#: Column order of the canonical frame (the layout of UCI's data.csv).
COLUMNS = (
    "age",
    "job",
    "marital",
    "education",
    "default",
    "balance",
    "housing",
    "loan",
    "contact",
    "day_of_week",
    "month",
    "duration",
    "campaign",
    "pdays",
    "previous",
    "poutcome",
    TARGET,
)
NUMERIC_FEATURES = tuple(c for c in RANGES if c not in LEAKY_COLUMNS)
CATEGORICAL_FEATURES = tuple(CATEGORIES)
FEATURES = tuple(c for c in COLUMNS if c != TARGET and c not in LEAKY_COLUMNS)


def _not_contacted_means_no_previous(df):
    """pdays == -1 (never contacted before) must come with previous == 0."""
    return ~((df["pdays"] == -1) & (df["previous"] > 0))


def build_schema(names: tuple[str, ...] = COLUMNS) -> pa.DataFrameSchema:
    """The pandera schema of the data's rows (or of a subset of columns, e.g. FEATURES)."""
    columns = {
        name: pa.Column("int64", pa.Check.in_range(low, high), coerce=True, nullable=False)
        for name, (low, high) in RANGES.items()
    }
    columns |= {
        name: pa.Column(str, pa.Check.isin(allowed), nullable=False) for name, allowed in CATEGORIES.items()
    }
    columns[TARGET] = pa.Column(str, pa.Check.isin(("no", "yes")), nullable=False)
    return pa.DataFrameSchema(
        {name: column for name, column in columns.items() if name in names},
        checks=[
            pa.Check(_not_contacted_means_no_previous, element_wise=False, name="pdays=-1 implies previous=0")
        ],
        strict=False,
        ordered=False,
    )
