"""Reading the prediction log for `monitor`: a window of it in chunks, never held whole, and
per (period, version) and per pair of versions the exact aggregates and a bounded sample
(`aggregates.py`; "A million-row day" in docs/monitoring.md).

Postgres streams the rows by COPY, parsed by Arrow; other databases by a cursor.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from bankmarketing.config import Settings
from bankmarketing.data.schema import CATEGORIES, FEATURES
from bankmarketing.database import engine_for, prediction_log, prediction_outcome
from bankmarketing.monitoring.aggregates import (
    ROW_ID,
    ROW_KEY,
    SAMPLE_ROWS,
    ComparisonAggregate,
    PeriodAggregate,
    request_keys,
)
from bankmarketing.monitoring.drift import PREDICTION, TARGET
from bankmarketing.monitoring.periods import GRANULARITY, Comparison, Period, period_name, period_starts
from bankmarketing.predictions.record import by_role

#: Log rows read from the database at a time: memory holds one chunk and the aggregates.
CHUNK_ROWS = 50_000
_LOG_COLUMNS = ("id", "request_id", "at", "model_version", "score", "arm", "shadow_version", "shadow_score")


@functools.cache
def _feature_schema():
    """The Arrow schema of the `features` JSON (pyarrow is imported on first use)."""
    import pyarrow as pa

    return pa.schema([(c, pa.string() if c in CATEGORIES else pa.int64()) for c in FEATURES])


def _feature_frame(texts) -> pd.DataFrame:
    """The 15 features of each row's `features` JSON (an Arrow string array or a list of str):
    numbers as `DataFrame.from_records` of the parsed objects gives them, texts as pandas
    Categoricals (a key not there: empty). Parsed by Arrow, without a Python object per value."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pa_json

    texts = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
    if not len(texts):
        return pd.DataFrame({c: pd.Series(dtype=object if c in CATEGORIES else "int64") for c in FEATURES})
    lines = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(texts)], pa.int32()), texts), "\n")
    options = pa_json.ParseOptions(explicit_schema=_feature_schema(), unexpected_field_behavior="ignore")
    try:
        table = pa_json.read_json(pa.BufferReader(lines[0].as_buffer()), parse_options=options)
    except pa.ArrowInvalid:  # values of another JSON type than the contract's: as they are
        table = None
    if table is None or table.num_rows != len(texts):  # or a row that is not one JSON object
        records = [json.loads(text) for text in texts.to_pylist()]
        return pd.DataFrame.from_records(records, columns=list(FEATURES))
    return pd.DataFrame(
        {
            c: table.column(c).dictionary_encode().to_pandas()
            if c in CATEGORIES
            else table.column(c).to_pandas()
            for c in FEATURES
        }
    )


def _log_query(model_name: str, since: dt.datetime, until: dt.datetime, at: sa.ColumnElement) -> sa.Select:
    """The window's log rows of the model, each with its outcome (where loaded)."""
    return (
        sa.select(
            *(at.label("at") if name == "at" else prediction_log.c[name] for name in _LOG_COLUMNS),
            sa.cast(prediction_log.c.features, sa.Text).label("features"),
            prediction_outcome.c.subscribed,
        )
        .select_from(
            prediction_log.outerjoin(
                prediction_outcome, prediction_outcome.c.request_id == prediction_log.c.request_id
            )
        )
        .where(
            (prediction_log.c.model_name == model_name)
            & (prediction_log.c.at >= since)
            & (prediction_log.c.at < until)
        )
    )


def _chunk(columns: dict, at: pd.Series, granularity: str) -> pd.DataFrame:
    """A chunk as `read_log` yields it, from its columns (`at` already as UTC instants)."""
    chunk = pd.DataFrame({name: columns[name] for name in _LOG_COLUMNS if name != "at"})
    chunk.insert(2, "at", at.reset_index(drop=True))
    chunk = chunk.rename(columns={"score": PREDICTION})
    chunk["start"] = period_starts(chunk["at"], granularity)
    chunk[TARGET] = pd.Series(columns["subscribed"], dtype=object).map({True: 1.0, False: 0.0}).astype(float)
    return pd.concat([chunk, _feature_frame(columns["features"])], axis=1)


def _streamed_chunks(connection: sa.Connection, query: sa.Select, chunk_rows: int) -> Iterator[dict]:
    """Any database: a server-side cursor (where the driver has one), `chunk_rows` at a time."""
    names = [*_LOG_COLUMNS, "features", "subscribed"]
    result = connection.execution_options(stream_results=True, max_row_buffer=chunk_rows).execute(query)
    while rows := result.fetchmany(chunk_rows):
        columns = {
            name: pd.Series(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)
        }
        columns["features"] = columns["features"].tolist()
        yield columns


#: COPY's CSV read by Arrow, this many bytes at a time (about 40,000 log rows).
COPY_BLOCK_BYTES = 16 << 20


class _Paced:
    """A pipe's reading end that Arrow's background reader may read at most `ahead` blocks
    ahead of the batches taken (left alone it reads up to 32 blocks ahead, 500 MB when the
    database writes faster than `monitor` aggregates)."""

    def __init__(self, raw, ahead: int = 3):
        self.raw, self.slots, self.stopped = raw, threading.Semaphore(ahead), False

    def read(self, size: int = -1) -> bytes:
        self.slots.acquire()
        return b"" if self.stopped else self.raw.read(size)

    def took_batch(self) -> None:
        self.slots.release()

    def stop(self) -> None:
        """Every waiting or later read ends (as at the end of the data)."""
        self.stopped = True
        self.slots.release(64)

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def readable(self) -> bool:
        return True


def _copied_chunks(connection: sa.Connection, query: sa.Select) -> Iterator[dict]:
    """Postgres: `COPY (query) TO STDOUT` as CSV, written into a pipe by a thread and parsed by
    Arrow block by block, so no Python object per value is made. Leaving early (an error
    downstream) closes the pipe, which ends the COPY; the connection is then discarded."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    driver = connection.connection.driver_connection
    compiled = query.compile(dialect=connection.dialect)
    with driver.cursor() as cursor:
        select = cursor.mogrify(str(compiled), compiled.params).decode()
    types = {
        "id": pa.int64(),
        "request_id": pa.string(),
        "at": pa.int64(),
        "model_version": pa.int64(),
        "score": pa.float64(),
        "arm": pa.string(),
        "shadow_version": pa.float64(),
        "shadow_score": pa.float64(),
        "features": pa.string(),
        "subscribed": pa.bool_(),
    }
    convert = pa_csv.ConvertOptions(
        column_types=types, true_values=["t"], false_values=["f"], quoted_strings_can_be_null=False
    )
    reading, writing = os.pipe()
    failure: list[BaseException] = []

    def copy() -> None:
        try:
            with os.fdopen(writing, "wb") as sink, driver.cursor() as cursor:
                cursor.copy_expert(f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER true)", sink)
        except BaseException as exc:  # handed to the reader
            failure.append(exc)

    thread = threading.Thread(target=copy, name="monitor-copy", daemon=True)
    thread.start()
    finished = False
    try:
        with os.fdopen(reading, "rb") as pipe:
            source = _Paced(pipe)
            try:
                reader = pa_csv.open_csv(
                    source,
                    read_options=pa_csv.ReadOptions(block_size=COPY_BLOCK_BYTES),
                    convert_options=convert,
                )
                for batch in reader:  # the features stay Arrow strings, for `_feature_frame`
                    source.took_batch()
                    yield {
                        name: batch.column(name) if name == "features" else batch.column(name).to_pandas()
                        for name in types
                    }
            finally:
                source.stop()
        finished = True
    except pa.ArrowInvalid:
        if not failure:  # the CSV itself is bad, not cut short by a failed COPY
            raise
    finally:
        thread.join()
        if not finished or failure:
            connection.invalidate()  # a COPY cut short leaves the session unusable
    if failure:
        raise failure[0]


def read_log(
    settings: Settings,
    model_name: str,
    since: dt.datetime,
    until: dt.datetime,
    granularity: str,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """The window's logged predictions with their outcome (where loaded), a chunk at a time.

    Postgres streams them by COPY (`_copied_chunks`), other databases by a cursor,
    `chunk_rows` at a time; memory holds one chunk either way. Each chunk has the log's `id`,
    `request_id`, `at`, `model_version`, `prediction` (the score), `arm`, `shadow_version`,
    `shadow_score`, `target` (1/0, NaN without an outcome), the period `start`, and the 15
    features.
    """
    with engine_for(settings.platform_database_url).connect() as connection:
        if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg2":
            # the instant as integer microseconds since the epoch (Postgres' numeric is exact)
            micros = sa.cast(sa.extract("epoch", prediction_log.c.at) * 1_000_000, sa.BigInteger)
            query = _log_query(model_name, since, until, micros)
            for columns in _copied_chunks(connection, query):
                at = pd.Series(pd.to_datetime(columns["at"], unit="us", utc=True))
                yield _chunk(columns, at, granularity)
        else:
            query = _log_query(model_name, since, until, prediction_log.c.at)
            for columns in _streamed_chunks(connection, query, chunk_rows):
                yield _chunk(columns, pd.to_datetime(columns["at"], utc=True), granularity)


_SAMPLED = [*FEATURES, PREDICTION, TARGET, ROW_ID, ROW_KEY]
_PAIRED = [*FEATURES, TARGET, "production", "challenger", "by_challenger", ROW_ID, ROW_KEY]


@dataclass
class LogScan:
    """The window's aggregates: per (period start, version), per (start, production, challenger)."""

    periods: dict[tuple[pd.Timestamp, int], PeriodAggregate]
    comparisons: dict[tuple[pd.Timestamp, int, int], ComparisonAggregate]
    rows: int


def scan_log(
    chunks: Iterator[pd.DataFrame], threshold_of: Callable[[int], float], sample_rows: int = SAMPLE_ROWS
) -> LogScan:
    """Aggregate the log's chunks per period and version (and per pair of versions)."""
    periods: dict[tuple[pd.Timestamp, int], PeriodAggregate] = {}
    comparisons: dict[tuple[pd.Timestamp, int, int], ComparisonAggregate] = {}
    rows = 0
    for chunk in chunks:
        rows += len(chunk)
        chunk[ROW_ID], chunk[ROW_KEY] = chunk["id"], request_keys(chunk["request_id"])
        for (start, version), part in chunk.groupby(["start", "model_version"], sort=False):
            key = (start, int(version))
            if key not in periods:
                periods[key] = PeriodAggregate(threshold_of(int(version)), sample_rows)
            periods[key].add(part[_SAMPLED])
        paired = by_role(chunk, score=PREDICTION)
        keys = ["start", "production_version", "challenger_version"]
        for (start, production, challenger), part in paired.groupby(keys, sort=False):
            key = (start, int(production), int(challenger))
            comparisons.setdefault(key, ComparisonAggregate(sample_rows)).add(part[_PAIRED])
    return LogScan(periods, comparisons, rows)


def log_periods(scan: LogScan, granularity: str) -> list[Period]:
    """Slices of the prediction log per answering model version, with outcomes where known:
    each with its aggregates and its sample (the whole slice when it is small)."""
    periods = []
    for (start, version), aggregate in sorted(scan.periods.items()):
        columns = [*FEATURES, PREDICTION, *([TARGET] if aggregate.labelled else [])]
        start = start.to_pydatetime()
        name = period_name(start, granularity)
        end = start + GRANULARITY[granularity]
        periods.append(Period(name, start, end, "log", version, aggregate.sample.rows(columns), aggregate))
    return periods


def log_comparisons(scan: LogScan, granularity: str) -> list[Comparison]:
    """Per period, production's and the challenger's scores of the labelled customers both
    scored (a sample when many), with the count of all they both scored."""
    comparisons = []
    for (start, production, challenger), aggregate in sorted(scan.comparisons.items()):
        part = aggregate.sample.rows([*FEATURES, TARGET, "production", "challenger"])
        start = start.to_pydatetime()
        comparisons.append(
            Comparison(
                period_name(start, granularity),
                start,
                start + GRANULARITY[granularity],
                "log",
                production,
                challenger,
                part[list(FEATURES)],
                part[TARGET].to_numpy(dtype=float),
                part["production"].to_numpy(dtype=float),
                part["challenger"].to_numpy(dtype=float),
                aggregate.by_challenger / aggregate.rows,
                aggregate.rows,
            )
        )
    return comparisons
