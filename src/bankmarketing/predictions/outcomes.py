"""Call outcomes for past predictions: loaded when known, joined to the log by request id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from bankmarketing.config import Settings
from bankmarketing.data import DataError
from bankmarketing.data.schema import FEATURES
from bankmarketing.database import engine_for, prediction_log, prediction_outcome
from bankmarketing.options import StageOptions


class OutcomesOptions(StageOptions):
    """Parameters of `outcomes`."""

    path: str = Field(description="CSV or Parquet file: request_id, subscribed (yes/no), observed_at")


_ANSWERS = {"yes": True, "no": False, "true": True, "false": False, "1": True, "0": False}


def read_outcomes(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file of `request_id`, `subscribed` (yes/no) and optional `observed_at`.

    Raises DataError naming the file line and field of every bad value; nothing is loaded then.
    """
    if not path.is_file():
        raise DataError(f"outcome file {path} does not exist")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV or Parquet file: {exc}") from None
    missing = {"request_id", "subscribed"} - set(frame.columns)
    if missing:
        raise DataError(f"{path} lacks column(s) {sorted(missing)}; it has {list(frame.columns)}")
    line = pd.RangeIndex(2, len(frame) + 2) if path.suffix != ".parquet" else pd.RangeIndex(1, len(frame) + 1)
    frame.index = line
    problems = []
    request_id = frame["request_id"].astype("string").str.strip()
    for at in request_id[request_id.isna() | (request_id == "") | (request_id.str.len() > 64)].index:
        problems.append(f"row {at}: request_id must be 1-64 characters")
    for at, _ in repeated_request_ids(request_id.tolist()):
        problems.append(f"row {frame.index[at]}: request_id {request_id.iloc[at]!r} appears twice")
    answer = frame["subscribed"].astype("string").str.strip().str.lower().map(_ANSWERS)
    for at in answer[answer.isna()].index:
        problems.append(f"row {at}: subscribed is {frame['subscribed'][at]!r}, expected yes or no")
    observed = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    if "observed_at" in frame:
        given = frame["observed_at"].notna() & (frame["observed_at"].astype("string").str.strip() != "")
        observed = pd.to_datetime(frame["observed_at"].where(given), utc=True, errors="coerce")
        for at in observed[given & observed.isna()].index:
            problems.append(f"row {at}: observed_at {frame['observed_at'][at]!r} is not a date-time")
    if problems:
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DataError(f"{path}: {len(problems)} bad value(s), nothing loaded: {shown}")
    return pd.DataFrame(
        {"request_id": request_id, "subscribed": answer.astype(bool), "observed_at": observed}
    )


def load_outcomes(settings: Settings, path: Path | OutcomesOptions) -> dict:
    """Upsert a file's outcomes (a reloaded request id replaces its outcome) in one transaction."""
    path = Path(path.path) if isinstance(path, OutcomesOptions) else path
    return store_outcomes(settings, list(read_outcomes(path).itertuples()), str(path))


def _moment(value) -> dt.datetime | None:
    """A timezone-aware datetime (naive ones are taken as UTC), or None."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    moment = value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def repeated_request_ids(request_ids: Sequence[str | None]) -> list[tuple[int, int]]:
    """(position, position of its first occurrence) of every request id given again."""
    first: dict[str, int] = {}
    repeated = []
    for at, request_id in enumerate(request_ids):
        if request_id is None or request_id is pd.NA:
            continue
        if request_id in first:
            repeated.append((at, first[request_id]))
        else:
            first[request_id] = at
    return repeated


def store_outcomes(settings: Settings, outcomes: Sequence, source: str) -> dict:
    """Upsert validated outcomes (items with `request_id`, `subscribed`, `observed_at`: file rows
    or API objects); count the predictions they label."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "request_id": r.request_id,
            "subscribed": bool(r.subscribed),
            "observed_at": _moment(r.observed_at),
            "loaded_at": now,
            "source": source[-200:],
        }
        for r in outcomes
    ]
    ids = [r.request_id for r in outcomes]
    matched = 0
    with engine_for(settings.platform_database_url).begin() as connection:
        for start in range(0, len(ids), 5_000):
            chunk = ids[start : start + 5_000]
            connection.execute(
                sa.delete(prediction_outcome).where(prediction_outcome.c.request_id.in_(chunk))
            )
            matched += connection.execute(
                sa.select(sa.func.count(sa.distinct(prediction_log.c.request_id))).where(
                    prediction_log.c.request_id.in_(chunk)
                )
            ).scalar_one()
            connection.execute(sa.insert(prediction_outcome), rows[start : start + 5_000])
    return {"loaded": len(rows), "matched_predictions": matched}


def labelled_predictions(settings: Settings) -> pd.DataFrame:
    """Logged predictions whose outcome is known, as data rows: the 15 features and `y` (yes/no).

    One row per request id (its last logged prediction); what `retrain` adds to its window.
    """
    query = (
        sa.select(prediction_log.c.request_id, prediction_log.c.features, prediction_outcome.c.subscribed)
        .join(prediction_outcome, prediction_outcome.c.request_id == prediction_log.c.request_id)
        .order_by(prediction_log.c.id)
    )
    with engine_for(settings.platform_database_url).connect() as connection:
        found = pd.DataFrame(connection.execute(query).all(), columns=["request_id", "features", "known"])
    found = found.drop_duplicates("request_id", keep="last")
    rows = pd.DataFrame.from_records(found["features"].tolist(), columns=list(FEATURES))
    return rows.assign(y=np.where(found["known"].to_numpy(dtype=bool), "yes", "no"))
