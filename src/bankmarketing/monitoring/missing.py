"""Missing values per input column: the data set's own marker `unknown`, and empty cells.

The loader turns blank cells into `unknown` (schema.MISSING), so the data has no NaN: a count
of empty cells alone is always 0. `monitor` stores these counts per period and column
(`monitoring_missing_values`); `python -m bankmarketing.monitoring.missing` prints them for
the season scenario's periods of the prepared data.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from bankmarketing.data.schema import FEATURES, MISSING


def _missing_text(values: pd.Series) -> pd.Series:
    """True where a value is NaN/None, or its text is `unknown` or blank once stripped."""
    text = values.astype("string").str.strip()
    return values.isna() | text.eq(MISSING).fillna(False) | text.eq("").fillna(False)


def _missing_cells(column: pd.Series) -> np.ndarray:
    """`_missing_text` of a column, decided once per distinct value: a number is missing only
    when NaN, and a text column holds a few distinct values however long it is."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        return column.isna().to_numpy()
    try:
        codes, distinct = pd.factorize(column, use_na_sentinel=True)
    except TypeError:  # unhashable values: value by value
        return _missing_text(column).to_numpy(dtype=bool)
    missing = _missing_text(pd.Series(distinct, dtype=object)).to_numpy(dtype=bool)
    return np.where(codes < 0, True, missing[np.maximum(codes, 0)]) if len(distinct) else codes < 0


def missing_mask(frame: pd.DataFrame) -> pd.DataFrame:
    """True where an input cell is missing: `unknown`, NaN/None, or an empty string."""
    return pd.DataFrame({column: _missing_cells(frame[column]) for column in FEATURES}, index=frame.index)


def missing_by_column(frame: pd.DataFrame) -> list[dict]:
    """One row per input column: `missing` cells and their share of the period's rows."""
    counts = missing_mask(frame).sum()
    return [
        {
            "column_name": column,
            "missing": int(counts[column]),
            "missing_share": float(counts[column] / len(frame)) if len(frame) else 0.0,
        }
        for column in FEATURES
    ]


def missing_values_share(frame: pd.DataFrame, by_column: list[dict] | None = None) -> float:
    """Share of missing cells (as `missing_mask` counts them) among the model's input cells;
    from `missing_by_column(frame)` when given, so the mask is built once."""
    if not len(frame):
        return 0.0
    by_column = by_column if by_column is not None else missing_by_column(frame)
    return sum(row["missing"] for row in by_column) / (len(frame) * len(FEATURES))


def period_table(periods: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows per period, the share of missing input cells, and each column's share that has any."""
    table = pd.DataFrame(
        {
            name: {
                "rows": len(frame),
                "all inputs": missing_values_share(frame),
                **{r["column_name"]: r["missing_share"] for r in missing_by_column(frame)},
            }
            for name, frame in periods.items()
        }
    ).T
    shown = ["rows", "all inputs", *(c for c in FEATURES if table[c].gt(0).any())]
    return table[shown].astype({"rows": int})


def main(argv: list[str] | None = None) -> int:
    """Print the missing-value shares of the season scenario's periods of the prepared data."""
    from bankmarketing.config import Settings
    from bankmarketing.data import DataError
    from bankmarketing.data.prepare import current_manifest, prepared_manifest, read_split
    from bankmarketing.data.split import SEASON_PERIODS

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--prepared-id", help="a prepared data version (default: the current one)")
    parser.add_argument(
        "--periods", nargs="+", default=list(SEASON_PERIODS), help="season periods (default: monitor's)"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        manifest = (
            prepared_manifest(settings, args.prepared_id) if args.prepared_id else current_manifest(settings)
        )
        table = period_table({name: read_split(manifest, name) for name in args.periods})
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"prepared data {manifest['prepared_id']} ({manifest['source']}): missing share per period")
    print(table.to_string(float_format=lambda share: f"{share:.2%}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
