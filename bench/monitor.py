"""`monitor` on a million-row day of the prediction log in Postgres: time, memory, and what sampling costs.

Sets up, in a temporary folder removed at the end: a throwaway PostgreSQL 15
(/usr/lib/postgresql/15/bin, PG_BIN; tests/postgres.py, as bench/serving.py uses it), a real
MLflow server (`bankmarketing mlflow-server`), `prepare` on the real data ($BANK_DATA_PATH,
else ../shared/data/bank-marketing/bank-marketing.csv beside the repository), `train` (hist.
gradient boosting, the kind `make demo` promotes; 1 trial, 2 folds) and `deploy`: a
production version with its reference and threshold, as `monitor` reads them.

The log: --rows rows (default 1,000,000) spread uniformly over --days days (default 1),
loaded by COPY into `prediction_log` of a database of their own. Each row is a customer drawn
(with replacement, seed 0) from the prepared data: a --drift-share of them from the later
months Jun-Nov, the others from the test split (the reference's months), with the
production version's real score of that customer; a --labelled-share of rows (default 0.2)
get their real outcome in `prediction_outcome`. The anchor's day is the first --anchor-rows
rows of the same draw (default 100,000), in a database of its own.

Measured, each in a child process of Mage's environment (where `monitor` runs: Evidently),
so that neither the set-up nor the load counts: wall time from the call to its return and
the child's peak RSS (VmHWM of /proc/self/status; `ru_maxrss` would not do: Linux carries
the parent's high-water mark across fork and exec). The peak after the imports, before the
call, is printed beside it:

* `monitor` itself (`source: log`, the window = the loaded days, `granularity: day`):
  chunked reading, exact aggregates, Evidently's column drift and report on a 50,000-row
  sample per period, everything stored;
* at --anchor-rows too: peak RSS at two sizes shows whether memory grows with rows;
* the anchor, at --anchor-rows: the path `monitor` took before issue 16, all rows selected
  into one frame (`all_rows_periods` below, the old `logged_predictions` and `log_periods`),
  Evidently on every row of the period, the same `store`. Ratio = its time / the new path's
  time on the same rows.

Then, on the measured day (not with --week): what the rule's statistic and decision would be
with sampling, against the whole day. `monitor` computes the rule's statistic, the normed
Wasserstein distance of the score, from a histogram of every row (its error: below); the
other figures compare the day's 1,000,000 scores (read back whole for the comparison only)
with the monitor's own sample and with --seeds other uniform samples of 50,000, and a K-S
p-value beside it. Then the same on mixtures of the pool's two halves from 0 to 100 % later
months, where the distance crosses the threshold (0.1): how often a sample would have
decided otherwise. And Evidently's column drift (15 columns) on the whole day against the
sample's stored figures.

With --spark, the rule's statistic again on Spark (local[*], the engine of batch scoring):
the same rows, written to Parquet at load time, aggregated per (period, version, score bin)
by `bankmarketing.monitoring.spark_rule` (no row leaves Spark), and the rule's decision
compared with the one `monitor` stored.

The last line:

    monitor bench: rows=N seconds=S peak_rss_mb=M

Goal: seconds <= 30 for 1,000,000 rows, and peak RSS that does not grow with rows.

    .venv/app/bin/python bench/monitor.py [--rows 1000000] [--days 1] [--week] [--spark]
        [--anchor-rows 100000] [--drift-share 0.08] [--labelled-share 0.2] [--seeds 20]
        [--no-analysis] [--keep]

--week is --rows 10000000 --days 7 (the window is the week, one period per day). The machine
has 2 cores shared with other work: times are this run's, not a best of several.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/bank-marketing/bank-marketing.csv"
MAGE_PYTHON = REPO / ".venv/mage/bin/python"
MODEL_NAME = "bench-monitor"
#: The first loaded day (a Monday, so weekly periods start with it).
FIRST_DAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
LOAD_CHUNK = 200_000
#: Shares of later months in the mixtures: the threshold is crossed near 6 %.
MIXTURES = (0.0, 0.02, 0.04, 0.05, 0.06, 0.065, 0.07, 0.08, 0.1, 0.25, 0.5, 1.0)


def log(message: str) -> None:
    print(message, flush=True)


# ----------------------------------------------------------------------- set-up (parent)


def production_model(settings) -> dict:
    """prepare -> train (hist. gradient boosting, the kind `make demo` promotes; 1 trial) -> deploy:
    the version `monitor` compares with."""
    from bankmarketing.data.prepare import PrepareOptions, prepare
    from bankmarketing.deployment import DeployOptions, deploy
    from bankmarketing.training.train import TrainOptions, train

    manifest = prepare(settings, PrepareOptions())
    options = TrainOptions(
        candidates=["hist_gradient_boosting"], trials=1, timeout_s=30, cv_folds=2, importance_rows=300
    )
    train(settings, options, manifest)
    deployed = deploy(settings, DeployOptions(build_image=False))
    if deployed["action"] != "promote":
        raise RuntimeError(f"deploy did not promote the model: {deployed}")
    return {"manifest": manifest, "version": deployed["production"]}


def customer_pool(settings, manifest: dict, version: str):
    """The customers rows are drawn from: the test split (reference months) and Jun-Nov, each
    with the production version's score, its outcome and its features' JSON."""
    import numpy as np
    import pandas as pd

    from bankmarketing.data.prepare import read_split
    from bankmarketing.data.schema import FEATURES
    from bankmarketing.data.split import LATER_MONTHS
    from bankmarketing.registry import load_scorer

    scorer = load_scorer(settings.tracking_uri, settings.model_name, version)
    parts = []
    for name in ("test", *LATER_MONTHS):
        frame = read_split(manifest, name)
        parts.append(frame.assign(later=name != "test"))
    pool = pd.concat(parts, ignore_index=True)
    pool["score"] = scorer.score_frame(pool[list(FEATURES)])
    pool["subscribed"] = pool["y"].eq("yes")
    records = pool[list(FEATURES)].to_dict("records")
    pool["json"] = [
        json.dumps({k: v.item() if hasattr(v, "item") else v for k, v in r.items()}, separators=(",", ":"))
        for r in records
    ]
    return pool, np.asarray(pool["later"], dtype=bool)


def draw(pool, later, rows: int, drift_share: float, seed: int = 0):
    """Pool indices of `rows` customers: a `drift_share` from Jun-Nov, the rest from the test split."""
    import numpy as np

    rng = np.random.default_rng(seed)
    later_rows, test_rows = np.flatnonzero(later), np.flatnonzero(~later)
    from_later = rng.random(rows) < drift_share
    picks = np.where(from_later, rng.choice(later_rows, rows), rng.choice(test_rows, rows))
    return picks


def load_log(url: str, pool, picks, days: int, labelled_share: float, parquet: Path | None) -> dict:
    """COPY the drawn rows into prediction_log (and outcomes into prediction_outcome)."""
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    from bankmarketing.database import migrate_database

    migrate_database(url)  # the platform's schema, as `bankmarketing migrate` makes it
    rng = np.random.default_rng(1)
    rows = len(picks)
    seconds = np.sort(rng.uniform(0, days * 86_400, rows))  # the log's ids follow time
    labelled = rng.random(rows) < labelled_share
    texts = pool["json"].to_numpy()
    scores = pool["score"].to_numpy()
    subscribed = pool["subscribed"].to_numpy()
    threshold = None
    started = time.perf_counter()
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        version = pool.attrs["version"]
        threshold = pool.attrs["threshold"]
        for first in range(0, rows, LOAD_CHUNK):
            at_chunk = slice(first, min(rows, first + LOAD_CHUNK))
            part = picks[at_chunk]
            at = pd.Timestamp(FIRST_DAY) + pd.to_timedelta(seconds[at_chunk], unit="s")
            stamps = at.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
            ids = [f"bench-{i}" for i in range(at_chunk.start, at_chunk.stop)]
            score = scores[part]
            decisions = np.where(score >= threshold, "t", "f")
            lines = "".join(
                f"{rid}\t{stamp}\t{MODEL_NAME}\t{version}\t{value!r}\t{decision}\t{text}\n"
                for rid, stamp, value, decision, text in zip(
                    ids, stamps, score.tolist(), decisions, texts[part], strict=True
                )
            )
            cursor.copy_expert(
                "COPY prediction_log (request_id, at, model_name, model_version, score, decision, features) "
                "FROM STDIN",
                io.StringIO(lines.replace("\\", "\\\\")),
            )
            known = labelled[at_chunk]
            outcomes = "".join(
                f"{rid}\t{'t' if outcome else 'f'}\t{stamp}\t{stamp}\tbench\n"
                for rid, outcome, stamp, keep in zip(ids, subscribed[part], stamps, known, strict=True)
                if keep
            )
            cursor.copy_expert(
                "COPY prediction_outcome (request_id, subscribed, observed_at, loaded_at, source) FROM STDIN",
                io.StringIO(outcomes),
            )
            if parquet is not None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                parquet.mkdir(parents=True, exist_ok=True)
                table = pa.table(
                    {
                        "at": pa.array(at.to_numpy(), pa.timestamp("us", tz="UTC")),
                        "model_version": pa.array(np.full(len(part), int(version)), pa.int32()),
                        "score": pa.array(score, pa.float64()),
                    }
                )
                pq.write_table(table, parquet / f"part-{first:09d}.parquet")
        raw.commit()
        cursor.execute("ANALYZE prediction_log")
        cursor.execute("ANALYZE prediction_outcome")
        raw.commit()
    finally:
        raw.close()
    seconds_taken = time.perf_counter() - started
    return {"rows": rows, "labelled": int(labelled.sum()), "seconds": seconds_taken}


# ------------------------------------------------------------------ measured (child, Mage env)


def all_rows_periods(settings, options):
    """The path before issue 16 (the anchor): every row of the window selected into one frame,
    one full frame per (period, version) — the old `logged_predictions` and `log_periods`."""
    import pandas as pd
    import sqlalchemy as sa

    from bankmarketing.data.schema import FEATURES
    from bankmarketing.database import engine_for, prediction_log, prediction_outcome
    from bankmarketing.monitoring.drift import PREDICTION, TARGET
    from bankmarketing.monitoring.periods import GRANULARITY, Period, period_start

    until, since = options.until, options.since
    log_columns = ("at", "model_version", "score", "features", "arm", "shadow_version", "shadow_score")
    query = (
        sa.select(*(prediction_log.c[name] for name in log_columns), prediction_outcome.c.subscribed)
        .select_from(
            prediction_log.outerjoin(
                prediction_outcome, prediction_outcome.c.request_id == prediction_log.c.request_id
            )
        )
        .where(
            (prediction_log.c.model_name == settings.model_name)
            & (prediction_log.c.at >= since)
            & (prediction_log.c.at < until)
        )
    )
    with engine_for(settings.platform_database_url).connect() as connection:
        rows = connection.execute(query).all()
    logged = pd.DataFrame(rows, columns=[*log_columns, "subscribed"]).rename(columns={"score": PREDICTION})
    logged["at"] = pd.to_datetime(logged["at"], utc=True)
    logged["start"] = [period_start(moment, options.granularity) for moment in logged["at"]]
    logged[TARGET] = logged["subscribed"].map({True: 1.0, False: 0.0}).astype(float)
    periods = []
    for (start, version), part in logged.groupby(["start", "model_version"], sort=True):
        features = pd.DataFrame.from_records(part["features"].tolist(), columns=list(FEATURES))
        frame = features.assign(**{PREDICTION: part[PREDICTION].to_numpy()})
        if part[TARGET].notna().any():
            frame[TARGET] = part[TARGET].to_numpy()
        start = start.to_pydatetime()
        name = start.strftime("%Y-%m-%d")
        periods.append(
            Period(name, start, start + GRANULARITY[options.granularity], "log", int(version), frame)
        )
    return periods


def old_monitor(settings, options, run_label: str) -> list[dict]:
    """The anchor: `all_rows_periods`, then `measure` on every row and `store`, as before."""
    import mlflow

    from bankmarketing.monitoring.monitor import load_reference, measure, store

    mlflow.set_tracking_uri(settings.tracking_uri)
    from bankmarketing.registry import client_for

    client = client_for(settings.tracking_uri)
    records = []
    for period in all_rows_periods(settings, options):
        version = client.get_model_version(settings.model_name, str(period.version))
        reference, threshold = load_reference(settings, version), float(version.tags["threshold"])
        report_dir = (settings.data_dir / "monitoring" / "reports" / "anchor").resolve()
        metrics = measure(period, reference, threshold, options, report_dir)
        records.append(
            store(settings, settings.model_name, period, metrics, run_label, options.min_rows, None)
        )
    return records


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args) -> None:
    """Run one path in this process (Mage's environment) and print its figures as JSON."""
    import logging

    from bankmarketing.config import Settings
    from bankmarketing.monitoring import monitor as monitoring
    from bankmarketing.monitoring.monitor import MonitorOptions

    logging.basicConfig(level=logging.WARNING)
    settings = replace(Settings.from_env(), database_url=args.url)
    options = MonitorOptions(
        source="log",
        since=dt.datetime.fromisoformat(args.since),
        until=dt.datetime.fromisoformat(args.until),
        granularity="day",
        alert=False,
    )
    import evidently  # noqa: F401  (imported before the clock starts, as in a running Mage)

    before = vm_hwm_mb()
    started = time.perf_counter()
    if args.child == "new":
        result = monitoring.monitor(settings, options, "bench:monitor")
        records = result["periods"]
        firing = result["firing"]
    else:
        records = old_monitor(settings, options, "bench:anchor")
        firing = monitoring.drift_rule(records, options.prediction_threshold)
    seconds = time.perf_counter() - started
    summary = [
        {
            k: r[k]
            for k in (
                "period",
                "model_version",
                "rows",
                "enough_rows",
                "prediction_drift_score",
                "prediction_drift_detected",
                "prediction_psi",
                "drifted_columns",
            )
        }
        for r in records
    ]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": vm_hwm_mb(),
                "rss_before_mb": before,
                "periods": summary,
                "firing": firing and firing["period"],
            }
        )
    )


def run_child(kind: str, url: str, since: dt.datetime, until: dt.datetime, env: dict) -> dict:
    command = [
        str(MAGE_PYTHON),
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--url",
        url,
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
    ]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed: {done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------- what sampling does (parent)


def sampled_statistics(reference, scores, keys, seeds: int, sample_rows: int, threshold: float) -> dict:
    """The rule's statistic on the whole day, from the histogram, on the monitor's sample and on
    `seeds` other uniform samples; a K-S p-value on the whole day and on the sample."""
    import numpy as np
    from scipy import stats

    from bankmarketing.monitoring.aggregates import ScoreHistogram, wasserstein_normed

    norm = max(np.std(reference), 0.001)
    whole = stats.wasserstein_distance(reference, scores) / norm
    histogram = ScoreHistogram()
    histogram.add(scores)
    binned = wasserstein_normed(reference, histogram)
    own = np.argsort(keys, kind="stable")[:sample_rows]
    on_own = stats.wasserstein_distance(reference, scores[own]) / norm
    rng = np.random.default_rng(7)
    others = np.array(
        [
            stats.wasserstein_distance(reference, scores[rng.choice(len(scores), sample_rows, replace=False)])
            / norm
            for _ in range(seeds)
        ]
    )
    return {
        "whole": whole,
        "histogram": binned,
        "sample": on_own,
        "samples_sd": float(others.std()),
        "samples_max_abs_diff": float(np.abs(others - whole).max()),
        "samples_deciding_otherwise": int(((others >= threshold) != (whole >= threshold)).sum()),
        "ks_p_whole": float(stats.ks_2samp(reference, scores).pvalue),
        "ks_p_sample": float(stats.ks_2samp(reference, scores[own]).pvalue),
    }


def mixture_table(reference, pool, later, rows: int, seeds: int, sample_rows: int, threshold: float):
    """For mixtures of 0-100 % later months: the whole-day statistic, the histogram's, and how
    many of `seeds` uniform samples would decide otherwise."""
    import numpy as np
    from scipy import stats

    from bankmarketing.monitoring.aggregates import ScoreHistogram, wasserstein_normed

    norm = max(np.std(reference), 0.001)
    scores_of = pool["score"].to_numpy()
    table = []
    for share in MIXTURES:
        scores = scores_of[draw(pool, later, rows, float(share), seed=11)]
        whole = stats.wasserstein_distance(reference, scores) / norm
        histogram = ScoreHistogram()
        histogram.add(scores)
        rng = np.random.default_rng(3)
        samples = np.array(
            [
                stats.wasserstein_distance(reference, rng.choice(scores, sample_rows, replace=False)) / norm
                for _ in range(seeds)
            ]
        )
        table.append(
            {
                "later_share": float(share),
                "whole": whole,
                "histogram_error": abs(wasserstein_normed(reference, histogram) - whole),
                "sample_sd": float(samples.std()),
                "deciding_otherwise": int(((samples >= threshold) != (whole >= threshold)).sum()),
                "ks_p": float(stats.ks_2samp(reference, scores).pvalue),
            }
        )
    return table


def whole_day(url: str):
    """The day's scores and request keys, read back whole (for the comparison only)."""
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    from bankmarketing.monitoring.aggregates import request_keys

    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        frame = pd.read_sql(sa.text("SELECT request_id, score FROM prediction_log"), connection)
    engine.dispose()
    return frame["score"].to_numpy(dtype=float), np.asarray(request_keys(frame["request_id"]))


def column_drift_child(args) -> None:
    """Evidently's column drift on every row of the day against the stored (sample's) figures."""
    import mlflow
    import pandas as pd
    import sqlalchemy as sa

    from bankmarketing.config import Settings
    from bankmarketing.data.schema import FEATURES
    from bankmarketing.database import monitoring_column_drift
    from bankmarketing.monitoring.drift import DriftSettings, period_metrics
    from bankmarketing.monitoring.monitor import load_reference

    settings = replace(Settings.from_env(), database_url=args.url)
    mlflow.set_tracking_uri(settings.tracking_uri)
    from bankmarketing.registry import client_for

    version = client_for(settings.tracking_uri).get_model_version_by_alias(MODEL_NAME, "production")
    reference = load_reference(settings, version)
    engine = sa.create_engine(args.url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT CAST(features AS TEXT), score FROM prediction_log")).all()
        stored = {r.column_name: r for r in connection.execute(sa.select(monitoring_column_drift)).all()}
    frame = pd.DataFrame.from_records([json.loads(text) for text, _ in rows], columns=list(FEATURES))
    frame["prediction"] = [score for _, score in rows]
    started = time.perf_counter()
    whole = period_metrics(reference, frame, float(version.tags["threshold"]), DriftSettings())
    seconds = time.perf_counter() - started
    columns = [
        {
            "column": c["column_name"],
            "stattest": c["stattest"],
            "whole": c["drift_score"],
            "sample": stored[c["column_name"]].drift_score,
            "whole_detected": c["drift_detected"],
            "sample_detected": stored[c["column_name"]].drift_detected,
        }
        for c in whole.column_drift
    ]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": len(frame),
                "columns": columns,
                "drifted_whole": whole.drifted_columns,
                "dataset_drift_whole": whole.dataset_drift_detected,
            }
        )
    )


def spark_check(parquet: Path, reference, threshold: float, min_rows: int, monitored: dict) -> dict:
    """The rule's statistic per (period, version) on Spark, and its decision beside `monitor`'s."""
    from pyspark.sql import SparkSession

    from bankmarketing.monitoring.alerting import drift_rule
    from bankmarketing.monitoring.spark_rule import rule_statistics

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(os.environ.get("SPARK_MASTER", "local[*]"))
        .appName("bankmarketing-monitor-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    try:
        started = time.perf_counter()
        frame = spark.read.parquet(str(parquet))
        version = int(monitored["periods"][0]["model_version"])
        records = rule_statistics(frame, {version: reference}, "day", min_rows)
        seconds = time.perf_counter() - started
    finally:
        spark.stop()
    firing = drift_rule(records, threshold)
    by_period = {(r["period"], r["model_version"]): r for r in monitored["periods"]}
    differences = [
        abs(
            r["prediction_drift_score"]
            - by_period[(r["period"], r["model_version"])]["prediction_drift_score"]
        )
        for r in records
    ]
    return {
        "seconds": seconds,
        "records": records,
        "firing": firing and firing["period"],
        "max_abs_diff": max(differences),
        "same_periods": sorted(by_period) == sorted((r["period"], r["model_version"]) for r in records),
    }


# ------------------------------------------------------------------------------ main


def main() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--week", action="store_true", help="--rows 10000000 --days 7")
    parser.add_argument("--anchor-rows", type=int, default=100_000)
    parser.add_argument("--drift-share", type=float, default=0.08, help="share of rows from Jun-Nov")
    parser.add_argument("--labelled-share", type=float, default=0.2, help="share of rows with an outcome")
    parser.add_argument("--seeds", type=int, default=20, help="other uniform samples per comparison")
    parser.add_argument("--no-analysis", action="store_true", help="skip what-sampling-does")
    parser.add_argument("--spark", action="store_true", help="the rule's statistic on Spark too")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("BANK_DATA_PATH") or DEFAULT_DATA))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child", choices=["new", "old", "columns"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--since", help=argparse.SUPPRESS)
    parser.add_argument("--until", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "columns":
        column_drift_child(args)
        return
    if args.child:
        child(args)
        return
    if args.week:
        args.rows, args.days = 10_000_000, 7
    if not MAGE_PYTHON.exists():
        sys.exit(f"{MAGE_PYTHON} is missing: run `make setup` (monitor needs Evidently)")
    if not args.data.is_file():
        sys.exit(f"the data file {args.data} is missing: set BANK_DATA_PATH")

    sys.path.insert(0, str(REPO / "bench"))  # bench/serving.py's set-up (and its tests.postgres)
    from serving import bench_settings, mlflow_server

    from tests.postgres import Postgres

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    postgres = server = None
    try:
        postgres = Postgres()
        server, uri = mlflow_server(root / "mlflow")
        settings = bench_settings(root, args.data, uri, MODEL_NAME)
        model = production_model(settings)

        from bankmarketing.registry import client_for

        version = client_for(uri).get_model_version(MODEL_NAME, model["version"])
        threshold = float(version.tags["threshold"])
        pool, later = customer_pool(settings, model["manifest"], model["version"])
        pool.attrs.update(version=model["version"], threshold=threshold)
        log(
            f"set-up: {time.perf_counter() - started:.0f} s (Postgres, MLflow server, prepare, train, "
            f"deploy: {MODEL_NAME} v{model['version']}, threshold {threshold:.4f}); pool of "
            f"{len(pool):,} customers, {later.sum():,} of Jun-Nov"
        )

        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "BANK_DATA_PATH": str(args.data),
            "BANK_DATA_DIR": str(settings.data_dir),
            "MLFLOW_TRACKING_URI": uri,
            "MODEL_NAME": MODEL_NAME,
            "MLFLOW_EXPERIMENT": MODEL_NAME,
            "OMP_WAIT_POLICY": "PASSIVE",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        picks = draw(pool, later, args.rows, args.drift_share)
        days = {}
        for name, rows, span in (("anchor", args.anchor_rows, 1), ("main", args.rows, args.days)):
            url = postgres.create_database(f"log_{name}")
            parquet = root / f"log_{name}.parquet" if args.spark and name == "main" else None
            # the anchor's day: the first rows of the same draw, spread over one day
            loaded = load_log(url, pool, picks[:rows], span, args.labelled_share, parquet)
            days[name] = {"url": url, "rows": rows, "days": span, "parquet": parquet}
            log(
                f"load {name}: {rows:,} rows over {span} day(s), {loaded['labelled']:,} with an outcome, "
                f"COPY in {loaded['seconds']:.1f} s ({rows / loaded['seconds']:,.0f} rows/s)"
            )

        results = {}
        for name, kind in (("anchor", "old"), ("anchor", "new"), ("main", "new")):
            day = days[name]
            until = FIRST_DAY + dt.timedelta(days=day["days"])
            result = run_child(kind, day["url"], FIRST_DAY, until, env)
            results[(name, kind)] = result
            what = "anchor (all rows in memory, before issue 16)" if kind == "old" else "monitor"
            log(
                f"{what}: {day['rows']:,} rows in {result['seconds']:.1f} s "
                f"({day['rows'] / result['seconds']:,.0f} rows/s), peak RSS {result['peak_rss_mb']:.0f} MB "
                f"(after imports {result['rss_before_mb']:.0f} MB); periods "
                + ", ".join(
                    f"{p['period']} {p['rows']:,} rows W1={p['prediction_drift_score']:.4f}"
                    for p in result["periods"]
                )
                + f"; firing: {result['firing']}"
            )
        old, small, main_run = (
            results[("anchor", "old")],
            results[("anchor", "new")],
            results[("main", "new")],
        )
        same = [
            (
                a["period"],
                abs(a["prediction_drift_score"] - b["prediction_drift_score"]),
                a["drifted_columns"],
                b["drifted_columns"],
            )
            for a, b in zip(old["periods"], small["periods"], strict=True)
        ]
        log(
            f"anchor vs new on the same {args.anchor_rows:,} rows: time ratio "
            f"{old['seconds'] / small['seconds']:.1f}x, rule statistic |diff| "
            + ", ".join(f"{p} {d:.2e} (drifted columns {x} vs {y})" for p, d, x, y in same)
        )
        log(
            f"throughput: new at {args.rows:,} rows {args.rows / main_run['seconds']:,.0f} rows/s vs "
            f"anchor at {args.anchor_rows:,} {args.anchor_rows / old['seconds']:,.0f} rows/s: ratio "
            f"{(args.rows / main_run['seconds']) / (args.anchor_rows / old['seconds']):.1f}"
        )
        log(
            f"memory: peak RSS {small['peak_rss_mb']:.0f} MB at {args.anchor_rows:,} rows, "
            f"{main_run['peak_rss_mb']:.0f} MB at {args.rows:,} rows (anchor: {old['peak_rss_mb']:.0f} MB "
            f"at {args.anchor_rows:,})"
        )

        from bankmarketing.monitoring.monitor import load_reference

        reference = load_reference(settings, version)["prediction"].to_numpy()
        if not args.no_analysis and args.days == 1:
            from bankmarketing.monitoring.aggregates import SAMPLE_ROWS

            scores, keys = whole_day(days["main"]["url"])
            figures = sampled_statistics(reference, scores, keys, args.seeds, SAMPLE_ROWS, 0.1)
            stored = main_run["periods"][0]["prediction_drift_score"]
            log(
                "rule statistic (normed Wasserstein, threshold 0.1) on the day: whole day "
                f"{figures['whole']:.5f}, "
                f"stored by monitor {stored:.5f} (|diff| {abs(stored - figures['whole']):.1e}), "
                f"monitor's sample of {SAMPLE_ROWS:,} {figures['sample']:.5f}, {args.seeds} other samples: "
                f"sd {figures['samples_sd']:.5f}, max |diff| {figures['samples_max_abs_diff']:.5f}, "
                f"{figures['samples_deciding_otherwise']} deciding otherwise; K-S p-value whole day "
                f"{figures['ks_p_whole']:.2e}, sample {figures['ks_p_sample']:.2e}"
            )
            log(
                "mixtures of the later months (whole-day statistic; histogram |error|; sample sd; samples "
                f"of {SAMPLE_ROWS:,} deciding otherwise of {args.seeds}; K-S p whole day):"
            )
            for row in mixture_table(reference, pool, later, args.rows, args.seeds, SAMPLE_ROWS, 0.1):
                log(
                    f"  {row['later_share']:6.1%} later: W1 {row['whole']:.4f}  "
                    f"|err| {row['histogram_error']:.1e}  "
                    f"sd {row['sample_sd']:.4f}  {row['deciding_otherwise']:2d}/{args.seeds}  "
                    f"K-S p {row['ks_p']:.1e}"
                )
            done = subprocess.run(
                [
                    str(MAGE_PYTHON),
                    str(Path(__file__).resolve()),
                    "--child",
                    "columns",
                    "--url",
                    days["main"]["url"],
                ],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if done.returncode != 0:
                log(f"column drift on the whole day failed: {done.stderr[-2000:]}")
            else:
                columns = json.loads(done.stdout.strip().splitlines()[-1])
                agree = sum(c["whole_detected"] == c["sample_detected"] for c in columns["columns"])
                worst = max(columns["columns"], key=lambda c: abs(c["whole"] - c["sample"]))
                log(
                    f"column drift, Evidently on all {columns['rows']:,} rows ({columns['seconds']:.0f} s) "
                    f"vs the sample: {agree}/{len(columns['columns'])} columns decided alike, drifted "
                    f"{columns['drifted_whole']} vs {main_run['periods'][0]['drifted_columns']}; "
                    "largest |diff| "
                    f"{abs(worst['whole'] - worst['sample']):.4f} ({worst['column']}, {worst['stattest']}: "
                    f"{worst['whole']:.4f} whole, {worst['sample']:.4f} sample)"
                )
        if args.spark:
            checked = spark_check(days["main"]["parquet"], reference, 0.1, 200, main_run)
            log(
                f"spark: {len(checked['records'])} period(s) in {checked['seconds']:.1f} s (aggregations); "
                f"max |diff| to monitor's statistic {checked['max_abs_diff']:.1e}; rule fires on "
                f"{checked['firing']} (monitor: {main_run['firing']}); "
                f"{'same decision' if checked['firing'] == main_run['firing'] else 'DIFFERENT decision'}"
            )
        log(f"total: {time.perf_counter() - started:.0f} s")
        log(
            f"monitor bench: rows={args.rows} seconds={main_run['seconds']:.1f} "
            f"peak_rss_mb={main_run['peak_rss_mb']:.0f}"
        )
    finally:
        if server is not None:
            server.stop()
        if postgres is not None:
            postgres.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
