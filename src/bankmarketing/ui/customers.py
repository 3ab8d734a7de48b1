"""Pure helpers of the UI: CSV rows to customers, rejections to row numbers, result tables."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bankmarketing.data.schema import CATEGORIES, FEATURES, RANGES

#: The form's starting values: a typical customer, never contacted before.
DEFAULT_CUSTOMER: dict[str, Any] = {
    "age": 40,
    "job": "management",
    "marital": "married",
    "education": "secondary",
    "default": "no",
    "balance": 450,
    "housing": "yes",
    "loan": "no",
    "contact": "cellular",
    "day_of_week": 15,
    "month": "may",
    "campaign": 2,
    "pdays": -1,
    "previous": 0,
    "poutcome": "unknown",
}
#: Columns added to a scored file.
SCORE_COLUMNS = ("probability", "decision", "rank", "model_version")
_WHOLE = re.compile(r"[+-]?\d+(\.0*)?")
_ROW_FIELD = re.compile(r"customers\.(\d+)(?:\.(.+))?")


@dataclass(frozen=True)
class RowProblem:
    row: int  # 0-based position among the data rows
    field: str
    message: str

    def __str__(self) -> str:
        return f"{describe_row(self.row)}, {self.field}: {self.message}"


class InvalidRows(ValueError):
    """Rows that cannot become customers; `problems` lists row, field and message."""

    def __init__(self, problems: list[RowProblem], more: int = 0):
        self.problems, self.more = problems, more
        lines = [str(p) for p in problems] + ([f"… and {more} more"] if more else [])
        super().__init__("; ".join(lines))


def describe_row(row: int) -> str:
    """0-based data row → "row 4 (line 5 of the file)" (the header is line 1)."""
    return f"row {row + 1} (line {row + 2} of the file)"


def read_csv(data: bytes | str) -> pd.DataFrame:
    """A CSV (comma, semicolon or tab separated, UTF-8) as a frame of stripped strings."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("The file is not UTF-8 text: save it as a UTF-8 CSV") from None
    header = data.lstrip().split("\n", 1)[0]
    if not header.strip():
        raise ValueError("The file is empty")
    sep = max((",", ";", "\t"), key=header.count)
    try:
        frame = pd.read_csv(io.StringIO(data), sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"The file is not a readable CSV: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.apply(lambda column: column.str.strip()).reset_index(drop=True)


def missing_columns(frame: pd.DataFrame) -> list[str]:
    """The model features the frame lacks, in schema order."""
    return [name for name in FEATURES if name not in frame.columns]


def to_customers(frame: pd.DataFrame, max_problems: int = 10) -> list[dict[str, Any]]:
    """One customer dict per row: the 15 features, whole numbers as int, categories as str.

    Raises InvalidRows naming row and field (numbers that are empty or not whole). Ranges and
    categories are left to the API, which names the field when it rejects them.
    """
    missing = missing_columns(frame)
    if missing:
        raise ValueError(f"Missing column(s): {', '.join(missing)} (expected: {', '.join(FEATURES)})")
    columns = {name: frame[name].tolist() for name in FEATURES}
    customers: list[dict[str, Any]] = []
    problems: list[RowProblem] = []
    found = 0
    for row in range(len(frame)):
        customer: dict[str, Any] = {}
        for name in FEATURES:
            value = columns[name][row]
            text = (
                "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()
            )
            if name in RANGES:
                if _WHOLE.fullmatch(text):
                    customer[name] = int(float(text))
                    continue
                found += 1
                if len(problems) < max_problems:
                    reason = "empty value" if not text else f"{text!r} is not a whole number"
                    problems.append(RowProblem(row, name, reason))
            else:
                customer[name] = text
        customers.append(customer)
    if problems:
        raise InvalidRows(problems, found - len(problems))
    return customers


def rejection_lines(detail: list[dict[str, Any]]) -> list[str]:
    """API error details as lines naming the file row: customers.3.age → "row 4 (line 5 …), age: …"."""
    lines = []
    for item in detail:
        field, message = str(item.get("field", "")), str(item.get("message", ""))
        match = _ROW_FIELD.fullmatch(field)
        if match:
            where = describe_row(int(match[1]))
            lines.append(f"{where}, {match[2]}: {message}" if match[2] else f"{where}: {message}")
        else:
            lines.append(f"{field.removeprefix('customer.')}: {message}")
    return lines


def scored_frame(frame: pd.DataFrame, answer: dict[str, Any]) -> pd.DataFrame:
    """The input rows (all columns) with probability, decision, rank (1 = most likely) and model version."""
    predictions = answer["predictions"]
    if len(predictions) != len(frame):
        raise ValueError(f"{len(predictions)} predictions for {len(frame)} rows")
    scored = frame.drop(columns=[c for c in SCORE_COLUMNS if c in frame.columns]).copy()
    scored["probability"] = [float(p["probability"]) for p in predictions]
    scored["decision"] = [p["decision"] for p in predictions]
    scored["rank"] = scored["probability"].rank(method="first", ascending=False).astype(int)
    scored["model_version"] = [str(p.get("model_version", answer.get("model_version"))) for p in predictions]
    return scored


def contributions_frame(contributions: dict[str, float]) -> pd.DataFrame:
    """Per-feature contributions (log-odds), bias excluded, largest absolute value first."""
    items = [(k, float(v)) for k, v in contributions.items() if k != "bias"]
    frame = pd.DataFrame(items, columns=["feature", "contribution"])
    frame["direction"] = frame["contribution"].map(lambda v: "towards call" if v >= 0 else "towards skip")
    order = frame["contribution"].abs().sort_values(ascending=False, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def allowed_values(name: str) -> list[str]:
    """The categories a field accepts (the API rejects anything else)."""
    return list(CATEGORIES[name])
