"""Season backtest: the stale model against the model retrained after each drift alert.

Walks the season scenario month by month, as production lives through it. The production
model is trained on the reference months Dec–May. From Jun on, every month's data drifts
past the prediction-drift rule (docs/monitoring.md), so after month m−1 has been monitored
its alert starts `retrain`, which trains on Dec–May plus every later month through m−1.
Each month m is then scored twice, by the stale Dec–May model and by that retrained one, and
the table gives both ROC-AUCs and their difference.

Jun is not scored: no alert precedes it (the first fires on Jun itself), so its "retrained"
model would be the stale one and its delta 0 by construction, not a measurement. The months
scored are Jul–Nov; the mean delta is their unweighted mean (Sep and Oct are small, ~600
rows each). Six models are trained: Dec–May, then Dec–Jun … Dec–Oct.

Each model is trained as the `train` stage trains one kind (`--candidate`; default XGBoost,
the kind the platform's selection picks: `make bench`, 5 of 5 outer folds): the stage's
Optuna search with cross-validation (25 trials or 60 s, 3 folds, seed 42), then one model and
a centered isotonic calibrator (`fit_calibrated`), on every row of its months (the stage
trains on the window's train split; here no validation or test rows are needed, since the
later months are the test).
The gate is not modelled: each retrained model is scored whether or not the gate would
have promoted it. `duration` is never a feature.

Rows neither model trained on: a row's identity is the hash of its model features
(`bankmarketing.data.identity.row_ids`). Rows of the scored month whose identity is in
either model's training rows are dropped before scoring, and overlap_rows counts what is
left of such rows after that (0, computed, not assumed). With the data set as it is, no row
is dropped: `month` is one of the hashed features, so two months never share an identity.

    make season                     # or: .venv/app/bin/python bench/season.py --help
    .venv/app/bin/python bench/season.py --quick      # 5 trials or 20 s per model
    .venv/app/bin/python bench/season.py --without-calendar --chart images/season-backtest-no-calendar.png
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from bankmarketing.data.identity import row_ids
from bankmarketing.data.loading import read_raw
from bankmarketing.data.split import LATER_MONTHS as LATER
from bankmarketing.data.split import REFERENCE_MONTHS
from bankmarketing.data.validation import validate
from bankmarketing.training.candidates import CANDIDATES
from bankmarketing.training.train import TrainOptions, fit_calibrated, searched, xy

COLUMNS = ("month", "rows", "stale_roc_auc", "retrained_roc_auc", "delta", "overlap_rows")
#: Each column's alignment, width and number format in the table.
CELLS = (("<", 5, ""), (">", 6, ","), (">", 13, ".4f"), (">", 17, ".4f"), (">+", 7, ".4f"), (">", 12, ""))
GOAL = 0.02  # issue 13: mean delta ROC-AUC at least +0.02, overlap 0


#: --without-calendar: every row's call date, in training and scoring alike (no calendar signal).
ONE_DAY = {"month": "may", "day_of_week": 15}


def model_inputs(frame: pd.DataFrame, calendar: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """`xy(frame)`; without `calendar`, every row called on the same day (`ONE_DAY`)."""
    X, y = xy(frame)
    return (X if calendar else X.assign(**ONE_DAY)), y


def train_model(candidate: str, frame: pd.DataFrame, options: TrainOptions, calendar: bool = True):
    """The `train` stage's search and calibrated fit of one candidate on all rows of `frame`."""
    X, y = model_inputs(frame, calendar)
    found = searched(CANDIDATES[candidate], options, X, y)
    return fit_calibrated(CANDIDATES[candidate], found.params, options, X, y), found.trials


def unseen(scored: pd.DataFrame, seen: set[str]) -> pd.DataFrame:
    """The rows of `scored` whose identity is not in `seen`."""
    return scored[~row_ids(scored).isin(seen).to_numpy()]


def backtest(
    frame: pd.DataFrame,
    candidate: str = "xgboost",
    options: TrainOptions | None = None,
    log: Callable[[str], None] = print,
    calendar: bool = True,
) -> list[dict]:
    """One row per month Jul–Nov (COLUMNS, plus `dropped_rows`, the scored month's rows
    dropped because a model trained on their identity); without `calendar`, the models never
    see the call date (`ONE_DAY`)."""
    options = options or TrainOptions()
    reference = frame[frame["month"].isin(REFERENCE_MONTHS)]

    def trained(months: str, rows: pd.DataFrame):
        started = time.monotonic()
        model, trials = train_model(candidate, rows, options, calendar)
        log(f"trained on {months}: {len(rows):,} rows, {trials} trials, {time.monotonic() - started:.0f} s")
        return model

    stale = trained(f"{REFERENCE_MONTHS[0]}–{REFERENCE_MONTHS[-1]}", reference)
    results = []
    for previous, month in zip(LATER, LATER[1:], strict=False):
        window = frame[frame["month"].isin((*REFERENCE_MONTHS, *LATER[: LATER.index(previous) + 1]))]
        retrained = trained(f"{REFERENCE_MONTHS[0]}–{previous} (after {previous}'s alert)", window)
        everything = frame[frame["month"] == month]
        seen = set(row_ids(reference)) | set(row_ids(window))  # the stale and the retrained model's rows
        scored = unseen(everything, seen)
        X, y = model_inputs(scored, calendar)
        stale_auc = roc_auc_score(y, stale.predict_proba(X)[:, 1])
        retrained_auc = roc_auc_score(y, retrained.predict_proba(X)[:, 1])
        results.append(
            {
                "month": month,
                "rows": len(scored),
                "stale_roc_auc": stale_auc,
                "retrained_roc_auc": retrained_auc,
                "delta": retrained_auc - stale_auc,
                "overlap_rows": int(row_ids(scored).isin(seen).sum()),
                "dropped_rows": len(everything) - len(scored),
            }
        )
    return results


def table(results: list[dict]) -> str:
    """The printed table, one line per month."""
    cells = dict(zip(COLUMNS, CELLS, strict=True))
    lines = [" ".join(f"{name:{align[0]}{width}}" for name, (align, width, _) in cells.items())]
    for r in results:
        lines.append(" ".join(f"{r[name]:{a}{w}{spec}}" for name, (a, w, spec) in cells.items()))
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    """The final line: mean delta over the months, how many, total overlap."""
    mean = round(float(np.mean([r["delta"] for r in results])), 3) + 0.0  # never "-0.000"
    overlap = sum(r["overlap_rows"] for r in results)
    return f"season backtest: mean_delta_roc_auc={mean:.3f} months={len(results)} overlap_rows={overlap}"


def plot(results: list[dict], path: Path, title: str) -> None:
    """Stale and retrained ROC-AUC per month, and their difference."""
    from bankmarketing.training.plots import plt, save_figure  # matplotlib only when charting

    months = [r["month"] for r in results]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
    left.plot(months, [r["stale_roc_auc"] for r in results], marker="o", label="stale (Dec–May)")
    left.plot(
        months, [r["retrained_roc_auc"] for r in results], marker="o", label="retrained after the last alert"
    )
    left.set_ylabel("ROC AUC")
    left.set_title("ROC AUC per month (rows neither model trained on)")
    left.legend()
    deltas = [r["delta"] for r in results]
    bars = right.bar(months, deltas, color=["tab:green" if d > 0 else "tab:red" for d in deltas])
    right.bar_label(bars, labels=[f"{r['rows']:,} rows" for r in results], fontsize=8, padding=2)
    right.axhline(0, color="black", linewidth=0.8)
    right.axhline(GOAL, color="tab:gray", linestyle="--", linewidth=0.8, label=f"goal of the mean (+{GOAL})")
    right.set_title("retrained − stale")
    right.legend()
    for axis in (left, right):
        axis.grid(alpha=0.3)
    save_figure(figure, path, title)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default=os.environ.get("BANK_DATA_PATH", "../shared/data/bank-marketing/bank-marketing.csv")
    )
    parser.add_argument("--candidate", default="xgboost", choices=list(CANDIDATES))
    parser.add_argument("--trials", type=int, default=TrainOptions().trials, help="search trials per model")
    parser.add_argument(
        "--timeout-s", type=float, default=TrainOptions().timeout_s, help="search time budget per model"
    )
    parser.add_argument("--quick", action="store_true", help="5 trials or 20 s per model instead")
    parser.add_argument(
        "--without-calendar",
        action="store_true",
        help="every row called on the same day, in training and scoring: how much the models' use "
        "of the call date costs a model retrained on months it will not see again",
    )
    parser.add_argument("--chart", type=Path, default=Path("images/season-backtest.png"))
    args = parser.parse_args()

    options = (
        TrainOptions(trials=5, timeout_s=20)
        if args.quick
        else TrainOptions(trials=args.trials, timeout_s=args.timeout_s)
    )
    frame = validate(read_raw(Path(args.data))).clean
    started = time.monotonic()
    results = backtest(
        frame,
        args.candidate,
        options,
        log=lambda line: print(line, flush=True),
        calendar=not args.without_calendar,
    )
    blind = ", without the call date" if args.without_calendar else ""
    print(
        f"\n{args.candidate}{blind}, search {options.trials} trials or {options.timeout_s:.0f} s per model, "
        f"{time.monotonic() - started:.0f} s; rows dropped as trained on: "
        f"{sum(r['dropped_rows'] for r in results)}"
    )
    print(table(results))
    line = summary(results)
    plot(
        results,
        args.chart,
        f"Season backtest, {args.candidate}{blind}: {line.removeprefix('season backtest: ')}",
    )
    print(f"chart: {args.chart}")
    print(line)


if __name__ == "__main__":
    main()
