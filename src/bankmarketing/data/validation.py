"""Validate the canonical frame with pandera; bad rows go to quarantine with their reason."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from bankmarketing.data import DataError
from bankmarketing.data.schema import COLUMNS, RANGES, build_schema


@dataclass(frozen=True)
class ValidationResult:
    clean: pd.DataFrame  # typed rows that passed every rule
    quarantine: pd.DataFrame  # raw rows that failed, with `line` and `reason`


def _types_schema() -> pa.DataFrameSchema:
    """First pass: only that the integer columns parse, so range checks see numbers."""
    return pa.DataFrameSchema({name: pa.Column("int64", coerce=True) for name in RANGES})


def _row_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Failure cases (column, check, value, index) of rows; column-level failures raise."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return pd.DataFrame(columns=["column", "check", "failure_case", "index"])
    whole_column = cases[cases["index"].isna()]
    if not whole_column.empty:
        first = whole_column.iloc[0]
        raise DataError(f"column {first['column']!r} fails rule {first['check']}: {first['failure_case']}")
    # A value that does not parse is reported once as coerce_dtype; drop the echo as dtype.
    return cases[~cases["check"].astype(str).str.startswith("dtype(")]


def _reasons(cases: pd.DataFrame) -> pd.Series:
    described = cases.apply(
        lambda c: f"{c['column'] or 'row'}: {c['failure_case']!r} fails {c['check']}", axis=1
    )
    return described.groupby(cases["index"].astype(int)).agg("; ".join)


def validate(raw: pd.DataFrame) -> ValidationResult:
    """Split rows into clean (typed) rows and quarantined rows with their reasons."""
    reasons = []
    truncated = raw.isna().any(axis=1)
    if truncated.any():
        present = raw[truncated].notna().sum(axis=1)
        reasons.append(present.map(lambda n: f"truncated line: {n} of {len(COLUMNS)} fields"))
    remaining = raw[~truncated]
    for schema in (_types_schema(), build_schema()):
        cases = _row_failures(schema, remaining)
        if not cases.empty:
            row_reasons = _reasons(cases)
            reasons.append(row_reasons)
            remaining = remaining.drop(index=row_reasons.index)
    reason = pd.concat(reasons) if reasons else pd.Series(dtype=str)
    quarantine = raw.loc[reason.index].assign(reason=reason).rename_axis("line").sort_index().reset_index()
    clean = build_schema().validate(remaining) if len(remaining) else remaining
    return ValidationResult(clean=clean, quarantine=quarantine)


def check_bad_share(result: ValidationResult, limit: float) -> None:
    """Stop when more than `limit` of the rows failed, naming the rules that failed most."""
    quarantine = result.quarantine
    share = len(quarantine) / (len(quarantine) + len(result.clean))
    if share <= limit:
        return
    first_reasons = quarantine["reason"].str.split("; ").explode()
    rule_counts = first_reasons.str.replace(r": .* fails ", " fails ", regex=True).value_counts()
    top = "; ".join(f"{rule} ({count} rows)" for rule, count in rule_counts.head(3).items())
    first = quarantine.iloc[0]
    raise DataError(
        f"{share:.1%} of rows failed validation (limit {limit:.1%}): {top}. "
        f"First bad row: line {first['line']}: {first['reason']}"
    )
