"""Latency and throughput benchmark: `bankmarketing.scoring.Scorer` against the pipeline.

Trains one calibrated XGBoost pipeline on the real data (or loads one with --model-uri), then
measures, in one run and in-process:

* one-row latency (median of --calls calls, each a different record): `Scorer.score_records`
  against the anchor `pipeline.predict_proba(pd.DataFrame([record]))` (a frame per request);
* batch throughput on the data repeated --repeat times: `score_frame` and `score_records`
  against `pipeline.predict_proba` on the same rows (a ready frame), and for records also
  against building that frame from the records first.

Anchors measured on this machine: raw booster `inplace_predict` of one row 0.2 ms; pipeline
`predict_proba` on 180k rows 184k rows/s.

    OMP_WAIT_POLICY=PASSIVE .venv/app/bin/python bench/scoring.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bankmarketing.data.loading import read_raw
from bankmarketing.data.schema import FEATURES
from bankmarketing.data.validation import validate
from bankmarketing.scoring import Scorer
from bankmarketing.training.candidates import CANDIDATES, REFERENCE_XGBOOST_PARAMS
from bankmarketing.training.train import TrainOptions, fit_calibrated, xy

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/bank-marketing/bank-marketing.csv"


def median_ms(call: Callable[[int], object], calls: int) -> float:
    """Median wall time of call(i) for i in range(calls), in milliseconds (after warm-up)."""
    for i in range(min(50, calls)):
        call(i)
    times = []
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def best_rows_per_s(call: Callable[[], np.ndarray], rows: int, runs: int) -> tuple[float, np.ndarray]:
    """Best of `runs` throughputs, and the scores."""
    best, scores = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        scores = call()
        best = min(best, time.perf_counter() - started)
    return rows / best, scores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("BANK_DATA_PATH", DEFAULT_DATA)))
    parser.add_argument("--model-uri", help="an MLflow model URI instead of training one")
    parser.add_argument("--calls", type=int, default=2000, help="one-row calls per method")
    parser.add_argument("--repeat", type=int, default=4, help="copies of the data in the batch")
    parser.add_argument("--runs", type=int, default=3, help="batch runs per method (best kept)")
    args = parser.parse_args()

    frame = validate(read_raw(args.data)).clean
    if args.model_uri:
        import mlflow.sklearn

        pipeline = mlflow.sklearn.load_model(args.model_uri)
        source = args.model_uri
    else:
        started = time.perf_counter()
        pipeline = fit_calibrated(CANDIDATES["xgboost"], REFERENCE_XGBOOST_PARAMS, TrainOptions(), *xy(frame))
        source = (
            f"xgboost {REFERENCE_XGBOOST_PARAMS['n_estimators']} trees + isotonic, trained in "
            f"{time.perf_counter() - started:.1f} s on {len(frame):,} rows"
        )
    started = time.perf_counter()
    scorer = Scorer.from_pipeline(pipeline)
    print(f"model: {source}")
    print(
        f"scorer: kind={scorer.kind} fast={scorer.fast}, compiled in "
        f"{(time.perf_counter() - started) * 1e3:.1f} ms"
    )

    records = frame[list(FEATURES)].to_dict("records")
    n = len(records)
    fast_ms = median_ms(lambda i: scorer.score_records([records[i % n]]), args.calls)
    frame_ms = median_ms(lambda i: pipeline.predict_proba(pd.DataFrame([records[i % n]])), args.calls)
    print(f"\none row, median of {args.calls:,} calls:")
    print(f"  Scorer.score_records                       {fast_ms:8.3f} ms")
    print(f"  pipeline.predict_proba(DataFrame([record])) {frame_ms:7.3f} ms  (anchor)")
    print(f"  speed-up vs anchor                         {frame_ms / fast_ms:8.1f} x")
    if scorer.fast and scorer.kind == "xgboost":
        booster = pipeline.named_steps["model"].calibrated_classifiers_[0].estimator.get_booster()
        rows = [scorer.layout.matrix({f: [r[f]] for f in scorer.layout.fields}, 1) for r in records[:200]]
        raw_ms = median_ms(lambda i: booster.inplace_predict(rows[i % 200]), args.calls)
        print(
            f"  raw booster inplace_predict (prebuilt row) {raw_ms:8.3f} ms  (0.2 ms measured before; "
            "the scorer walks the trees in numpy instead for a few rows)"
        )

    batch = pd.concat([frame] * args.repeat, ignore_index=True)
    batch_records = batch[list(FEATURES)].to_dict("records")
    rows = len(batch)
    pipeline_rate, expected = best_rows_per_s(lambda: pipeline.predict_proba(batch)[:, 1], rows, args.runs)
    frame_rate, from_frame = best_rows_per_s(lambda: scorer.score_frame(batch), rows, args.runs)
    records_rate, from_records = best_rows_per_s(lambda: scorer.score_records(batch_records), rows, args.runs)
    via_frame_rate, _ = best_rows_per_s(
        lambda: pipeline.predict_proba(pd.DataFrame(batch_records))[:, 1], rows, args.runs
    )
    print(f"\nbatch of {rows:,} rows (data x{args.repeat}), best of {args.runs} runs:")
    print(f"  pipeline.predict_proba   {pipeline_rate:12,.0f} rows/s  (anchor; 184k rows/s measured before)")
    print(f"  Scorer.score_frame       {frame_rate:12,.0f} rows/s  {frame_rate / pipeline_rate:5.1f} x")
    print(f"  Scorer.score_records     {records_rate:12,.0f} rows/s  {records_rate / pipeline_rate:5.1f} x")
    print(
        f"  pipeline.predict_proba(DataFrame(records)) {via_frame_rate:,.0f} rows/s "
        f"(records -> frame -> pipeline); score_records is {records_rate / via_frame_rate:.1f} x"
    )
    print(
        f"  max |score - pipeline|   frame {np.max(np.abs(from_frame - expected)):.2e}, "
        f"records {np.max(np.abs(from_records - expected)):.2e}"
    )


if __name__ == "__main__":
    main()
