"""Batch scoring of customer files (CSV or Parquet) in chunks, with the production model."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq
from pydantic import Field

from bankmarketing.config import Settings
from bankmarketing.data import DataError
from bankmarketing.data.schema import CATEGORIES, FEATURES, MISSING, RANGES, build_schema
from bankmarketing.explanations import top_reasons
from bankmarketing.options import StageOptions
from bankmarketing.registry import client_for, load_scorer, required_version
from bankmarketing.scoring import ExplanationUnavailable
from bankmarketing.targeting import plan_campaign

log = logging.getLogger(__name__)
SCORE_COLUMNS = ("probability", "decision", "rank", "model_version")
T = TypeVar("T")


class BatchOptions(StageOptions):
    """Parameters of batch scoring (`bankmarketing score`)."""

    input: str = Field(..., description="customer file: .csv or .parquet with the 15 feature columns")
    output: str = Field(..., description="scored file: .csv or .parquet")
    alias: str = Field("production", description="registry alias of the model to score with")
    chunk_rows: int = Field(100_000, ge=1_000, description="rows read and scored at a time")
    engine: Literal["pandas", "spark"] = Field(
        "pandas", description="pandas: chunks in this process; spark: mlflow.pyfunc.spark_udf (SPARK_MASTER)"
    )


def _chunks(path: Path, rows: int, features_only: bool = False) -> Iterator[pd.DataFrame]:
    """The file in frames of `rows`; Parquet can skip the columns the model does not read, and
    then reads its text categories as pandas Categoricals (no Python string per value)."""
    if path.suffix == ".parquet":
        schema = pq.ParquetFile(path).schema_arrow
        missing = [c for c in FEATURES if c not in schema.names]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        columns = list(FEATURES) if features_only else None
        textual = [c for c in CATEGORIES if _is_text(schema.field(c).type)] if features_only else None
        for batch in pq.ParquetFile(path, read_dictionary=textual).iter_batches(
            batch_size=rows, columns=columns
        ):
            yield batch.to_pandas()
    elif path.suffix == ".csv":
        yield from pd.read_csv(
            path,
            chunksize=rows,
            dtype={c: str for c in CATEGORIES},
            keep_default_na=False,
            na_values={c: [""] for c in FEATURES if c not in CATEGORIES},
        )
    else:
        raise DataError(f"{path}: expected a .csv or .parquet file")


def _is_text(kind: pa_arrow.DataType) -> bool:
    return pa_arrow.types.is_string(kind) or pa_arrow.types.is_large_string(kind)


def _prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced up to `depth` ahead by a background thread: Parquet decoding and encoding
    and XGBoost release the GIL, so reading the next chunk overlaps with scoring this one.
    An exception in the producer is raised here; leaving early stops the producer."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop, end = threading.Event(), object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((end, None))
        except BaseException as exc:  # handed to the consumer
            ready.put((end, exc))

    thread = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to put
            with contextlib.suppress(queue.Empty):
                ready.get_nowait()
            thread.join(0.05)


def _scored_frames(
    path: Path, rows: int, scores: np.ndarray, rank: np.ndarray, threshold: float, version: str
) -> Iterator[pd.DataFrame]:
    """The input's chunks with probability, decision, rank and model version."""
    offset = 0
    for chunk in _chunks(path, rows):
        _fill_missing_categories(chunk)
        part = scores[offset : offset + len(chunk)]
        chunk["probability"] = part
        chunk["decision"] = np.where(part >= threshold, "call", "skip")
        chunk["rank"] = rank[offset : offset + len(chunk)]
        chunk["model_version"] = version
        offset += len(chunk)
        yield chunk


def _scored_tables(
    path: Path, rows: int, scores: np.ndarray, rank: np.ndarray, threshold: float, version: str
) -> Iterator[pa_arrow.Table]:
    """Parquet to Parquet without pandas: the input's batches with the four score columns."""
    import pyarrow.compute as pc

    offset = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        table = pa_arrow.Table.from_batches([batch])
        for column in CATEGORIES:
            values = table[column]
            if _is_text(values.type) and pc.any(pc.equal(values, "")).as_py():
                table = table.set_column(
                    table.schema.get_field_index(column),
                    column,
                    pc.if_else(pc.equal(values, ""), MISSING, values),
                )
        part = scores[offset : offset + len(table)]
        decision = pc.if_else(pa_arrow.array(part >= threshold), "call", "skip")
        table = (
            table.append_column("probability", pa_arrow.array(part))
            .append_column("decision", decision)
            .append_column("rank", pa_arrow.array(rank[offset : offset + len(table)]))
            .append_column("model_version", pa_arrow.repeat(pa_arrow.scalar(version), len(table)))
        )
        offset += len(table)
        yield table


def _fill_missing_categories(chunk: pd.DataFrame) -> None:
    """Empty categorical fields (UCI's data.csv layout) are the category 'unknown'."""
    for column in CATEGORIES:
        values = chunk[column]
        if isinstance(values.dtype, pd.CategoricalDtype):  # per category, not per value
            if "" in values.cat.categories:
                chunk[column] = (
                    values.where(values != "", MISSING)
                    if MISSING in values.cat.categories
                    else values.cat.rename_categories({"": MISSING})
                )
            continue
        empty = values == ""
        if empty.any():
            chunk.loc[empty, column] = MISSING


def _conforms(chunk: pd.DataFrame) -> bool:
    """A vectorised pass over the contract's rules; pandera runs only to explain a failure."""
    numeric = [c for c in FEATURES if c in RANGES]
    return (
        all(pd.api.types.is_integer_dtype(chunk[c]) and chunk[c].between(*RANGES[c]).all() for c in numeric)
        and all(chunk[c].isin(CATEGORIES[c]).all() for c in CATEGORIES)
        and not ((chunk["pdays"] == -1) & (chunk["previous"] > 0)).any()
    )


def _checked(chunk: pd.DataFrame, first_line: int, schema: pa.DataFrameSchema, source: Path) -> pd.DataFrame:
    """The chunk with typed feature columns; a DataError names the first bad line and rule."""
    missing = [c for c in FEATURES if c not in chunk.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}")
    _fill_missing_categories(chunk)
    if _conforms(chunk):
        return chunk
    categorical = [c for c in CATEGORIES if isinstance(chunk[c].dtype, pd.CategoricalDtype)]
    chunk = chunk.astype(dict.fromkeys(categorical, object))  # the contract's types, to explain
    try:
        return schema.validate(chunk, lazy=True)
    except pa.errors.SchemaErrors as errors:
        case = errors.failure_cases.iloc[0]
        where = f"row {int(case['index']) + first_line}" if pd.notna(case["index"]) else "column"
        raise DataError(
            f"{source}: {where}, column {case['column']!r}: {case['failure_case']!r} fails {case['check']}"
            f" ({len(errors.failure_cases)} problems; nothing was written)"
        ) from None


class _Writer:
    """Appends DataFrames (or Arrow tables, for Parquet) to a CSV or Parquet file."""

    def __init__(self, path: Path):
        self.path, self.parquet, self.started = path, None, False

    def write(self, part: pd.DataFrame | pa_arrow.Table) -> None:
        if self.path.suffix == ".parquet":
            table = (
                part
                if isinstance(part, pa_arrow.Table)
                else pa_arrow.Table.from_pandas(part, preserve_index=False)
            )
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.path, table.schema)
            self.parquet.write_table(table)
        else:
            part.to_csv(self.path, mode="a" if self.started else "w", header=not self.started, index=False)
        self.started = True

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()


def score_file(settings: Settings, options: BatchOptions) -> dict:
    """Score every customer in chunks: probability, decision, rank (1 = call first), version.

    Memory holds one chunk plus one float per row; the output appears only when complete.
    """
    source, target = Path(options.input), Path(options.output)
    if not source.is_file():
        raise DataError(f"customer file not found: {source}")
    if target.suffix not in (".csv", ".parquet"):
        raise DataError(f"{target}: the output must end in .csv or .parquet")
    started = time.monotonic()
    client = client_for(settings.tracking_uri)
    version = required_version(client, settings.model_name, options.alias)
    if options.engine == "spark":
        return score_file_with_spark(settings, options, version.version, float(version.tags["threshold"]))
    scorer = load_scorer(settings.tracking_uri, settings.model_name, version.version)
    threshold = float(version.tags["threshold"])
    schema = build_schema(FEATURES)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}{target.suffix}")
    # Pass 1 validates and scores; pass 2 reads the file again to write it with the ranks,
    # which need every score. Memory: one chunk plus two numbers per row.
    probabilities, line = [], 2
    for chunk in _prefetched(_chunks(source, options.chunk_rows, features_only=True)):
        chunk = _checked(chunk.reset_index(drop=True), line, schema, source)
        line += len(chunk)
        probabilities.append(scorer.score_frame(chunk))
    if not probabilities:
        raise DataError(f"{source} has no customer rows")
    everything = np.concatenate(probabilities)
    del probabilities
    rank = np.empty(len(everything), dtype=np.int64)
    rank[np.argsort(-everything, kind="stable")] = np.arange(1, len(everything) + 1)
    try:
        writer = _Writer(partial)
        scored = _scored_tables if source.suffix == target.suffix == ".parquet" else _scored_frames
        parts = scored(source, options.chunk_rows, everything, rank, threshold, version.version)
        for part in _prefetched(parts):
            writer.write(part)
        writer.close()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    return {
        "input": str(source),
        "output": str(target),
        "rows": int(len(everything)),
        "model_name": settings.model_name,
        "model_version": version.version,
        "threshold": threshold,
        "calls": int((everything >= threshold).sum()),
        "seconds": round(seconds, 2),
        "rows_per_second": round(len(everything) / seconds),
        "fast_path": scorer.fast,
    }


class CampaignOptions(StageOptions):
    """Parameters of `bankmarketing campaign`: a call list from a scored file and a budget."""

    input: str = Field(..., description="a scored file from `bankmarketing score` (.csv or .parquet)")
    output: str = Field(..., description="the ranked call list (.csv or .parquet)")
    max_calls: int | None = Field(None, ge=0, description="budget as a number of calls")
    budget: float | None = Field(None, ge=0, description="budget as money (with cost_per_call)")
    cost_per_call: float = Field(5.0, ge=0)
    value_per_subscription: float = Field(50.0, ge=0)
    stop_when_unprofitable: bool = Field(True, description="never call where p·value < cost")
    reasons: int = Field(
        0, ge=0, le=5, description="add each customer's top N reasons (the scoring version's contributions)"
    )


def campaign(settings: Settings, options: CampaignOptions) -> dict:
    """The ranked call list within the budget, with expected subscriptions, profit and lift."""
    source, target = Path(options.input), Path(options.output)
    if not source.is_file():
        raise DataError(f"scored file not found: {source}")
    scored = (
        pd.read_parquet(source)
        if source.suffix == ".parquet"
        else pd.read_csv(source, float_precision="round_trip")
    )
    try:
        plan = plan_campaign(
            scored,
            max_calls=options.max_calls,
            budget=options.budget,
            cost_per_call=options.cost_per_call,
            value_per_subscription=options.value_per_subscription,
            stop_when_unprofitable=options.stop_when_unprofitable,
        )
    except ValueError as exc:
        raise DataError(str(exc)) from None
    call_list = plan.call_list
    if options.reasons and len(call_list):
        call_list = with_reasons(settings, call_list, options.reasons)
    writer = _Writer(target)
    writer.write(call_list)
    writer.close()
    return {"output": str(target), **plan.summary}


def with_reasons(
    settings: Settings, call_list: pd.DataFrame, count: int, chunk_rows: int = 10_000
) -> pd.DataFrame:
    """The call list with columns reason_1..count: the fields that raise each customer's score most."""
    versions = call_list["model_version"].astype(str).unique()
    if len(versions) != 1:
        raise DataError(f"the scored file mixes model versions {sorted(versions)}: score it again in one run")
    scorer = load_scorer(settings.tracking_uri, settings.model_name, versions[0])
    records = call_list[list(FEATURES)].to_dict("records")
    reasons: list[list[str]] = []
    try:
        for start in range(0, len(records), chunk_rows):
            part = records[start : start + chunk_rows]
            reasons.extend(top_reasons(part, scorer.explain(part), count))
    except ExplanationUnavailable as exc:
        raise DataError(f"version {versions[0]} cannot give reasons: {exc}") from None
    columns = {f"reason_{i + 1}": [r[i] if i < len(r) else "" for r in reasons] for i in range(count)}
    return call_list.assign(**columns)


def score_file_with_spark(settings: Settings, options: BatchOptions, version: str, threshold: float) -> dict:
    """The same scoring through Spark: `mlflow.pyfunc.spark_udf` on the registered version.

    For files larger than one machine. The output is a Spark folder of part files
    (`--output scored.parquet` → `scored.parquet/part-*.parquet`).
    """
    import mlflow.pyfunc
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType

    source, target = Path(options.input), Path(options.output)
    started = time.monotonic()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need this environment's packages
    spark = (
        SparkSession.builder.master(os.environ.get("SPARK_MASTER", "local[*]"))
        .appName("bankmarketing-score")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    frame = (
        spark.read.parquet(str(source))
        if source.suffix == ".parquet"
        else spark.read.csv(str(source), header=True)
    )
    missing = [c for c in FEATURES if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}")
    for column in FEATURES:
        frame = frame.withColumn(
            column,
            F.coalesce(F.nullif(F.col(column).cast("string"), F.lit("")), F.lit(MISSING))
            if column in CATEGORIES
            else F.col(column).cast("long"),
        )
    udf = mlflow.pyfunc.spark_udf(
        spark,
        f"models:/{settings.model_name}/{version}",
        result_type=ArrayType(DoubleType()),
        env_manager="local",
    )
    scored = frame.withColumn("probability", udf(F.struct(*[F.col(c) for c in FEATURES]))[1])
    scored = (
        scored.withColumn("decision", F.when(F.col("probability") >= threshold, "call").otherwise("skip"))
        .withColumn("rank", F.row_number().over(Window.orderBy(F.desc("probability"))))
        .withColumn("model_version", F.lit(version))
    )
    writer = scored.write.mode("overwrite")
    (writer.parquet if target.suffix == ".parquet" else lambda p: writer.csv(p, header=True))(str(target))
    rows = spark.read.parquet(str(target)).count() if target.suffix == ".parquet" else scored.count()
    seconds = time.monotonic() - started
    return {
        "input": str(source),
        "output": str(target),
        "rows": rows,
        "engine": "spark",
        "model_name": settings.model_name,
        "model_version": version,
        "threshold": threshold,
        "seconds": round(seconds, 2),
    }
