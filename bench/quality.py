"""Quality benchmark: 5-fold stratified CV on all 45,211 rows, `duration` excluded.

Each outer fold runs the `train` stage's own procedure for one candidate (search with
cross-validation on the fold's training part, calibration, scoring of the held-out fold),
beside the anchor in the same run: XGBoost on one-hot raw features, no engineered
features, no calibration (the published design, measured here at ROC-AUC 0.804, PR-AUC 0.462).

With --compare-calibration, each fold also fits the other calibration arrangements with the
same searched parameters: one model with a plain isotonic or a sigmoid calibrator, and
scikit-learn's default (`CalibratedClassifierCV(ensemble=True)`: one model and one isotonic
calibrator per inner fold, their probabilities averaged, so a prediction runs `cv_folds`
models). The report gives each arrangement's quality, its per-fold PR-AUC difference to the
ensemble (the noise to judge it by) and the single-row scoring latency of what the predictor
would serve: one model through the compiled scorer, the ensemble through
`pipeline.predict_proba` (the scorer compiles one model only).

    make bench                        # or: .venv/app/bin/python bench/quality.py --help
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from xgboost import XGBClassifier

from bankmarketing.data.loading import read_raw
from bankmarketing.data.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from bankmarketing.data.validation import validate
from bankmarketing.scoring import Scorer, single_row_ms
from bankmarketing.training.candidates import CANDIDATES
from bankmarketing.training.evaluation import expected_calibration_error
from bankmarketing.training.train import TrainOptions, fit_calibrated, xy
from bankmarketing.training.tuning import search

ANCHOR = {"roc_auc": 0.804, "pr_auc": 0.462}  # tuned XGBoost, measured on this machine
TARGET = {"roc_auc": 0.81, "pr_auc": 0.48, "ece": 0.02}


def anchor_pipeline() -> Pipeline:
    """The published design: one-hot raw columns into XGBoost, no calibration."""
    return Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
                        ("numeric", "passthrough", list(NUMERIC_FEATURES)),
                    ]
                ),
            ),
            (
                "model",
                XGBClassifier(
                    n_estimators=400,
                    learning_rate=0.05,
                    max_depth=5,
                    subsample=0.8,
                    colsample_bytree=0.8,
                    min_child_weight=5,
                    tree_method="hist",
                    n_jobs=-1,
                ),
            ),
        ]
    )


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": roc_auc_score(y, proba),
        "pr_auc": average_precision_score(y, proba),
        "ece": expected_calibration_error(y, proba),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default=os.environ.get("BANK_DATA_PATH", "../shared/data/bank-marketing/bank-marketing.csv")
    )
    parser.add_argument("--candidate", default="xgboost", choices=list(CANDIDATES))
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--timeout-s", type=float, default=60)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--compare-calibration",
        action="store_true",
        help="also fit the other calibration arrangements (one model + isotonic or sigmoid, k-fold ensemble)",
    )
    args = parser.parse_args()

    frame = validate(read_raw(Path(args.data))).clean
    X, y = xy(frame)
    options = TrainOptions(trials=args.trials, timeout_s=args.timeout_s)
    outer = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    arrangements = calibration_arrangements(options, everyone=args.compare_calibration)
    compared = {name: np.zeros(len(y)) for name in arrangements}
    ours, anchor = next(iter(compared.values())), np.zeros(len(y))  # the first is what train registers
    latency: dict[str, list[float]] = {name: [] for name in arrangements}
    started = time.monotonic()
    for fold, (train, test) in enumerate(outer.split(X, y), start=1):
        found = search(
            CANDIDATES[args.candidate],
            X.iloc[train],
            y[train],
            trials=options.trials,
            timeout_s=options.timeout_s,
            cv_folds=options.cv_folds,
            seed=options.seed,
        )
        for name, (arrangement, ensemble) in arrangements.items():
            model = fit_calibrated(
                CANDIDATES[args.candidate], found.params, arrangement, X.iloc[train], y[train], ensemble
            )
            compared[name][test] = model.predict_proba(X.iloc[test])[:, 1]
            if args.compare_calibration:
                latency[name].append(single_row_ms(Scorer.from_pipeline(model), X.iloc[test]))
        anchor[test] = anchor_pipeline().fit(X.iloc[train], y[train]).predict_proba(X.iloc[test])[:, 1]
        print(
            f"fold {fold}/{args.folds}: {found.trials} trials, "
            f"ours PR-AUC {average_precision_score(y[test], ours[test]):.4f}, "
            f"anchor PR-AUC {average_precision_score(y[test], anchor[test]):.4f}"
            + "".join(
                f", {name} PR-AUC {average_precision_score(y[test], proba[test]):.4f}"
                for name, proba in list(compared.items())[1:]
            ),
            flush=True,
        )
    ours_scores, anchor_scores = scores(y, ours), scores(y, anchor)
    print(
        f"\n{len(y):,} rows, {args.folds}-fold stratified CV, `duration` excluded, "
        f"candidate {args.candidate}, {time.monotonic() - started:.0f} s"
    )
    print(
        f"{'metric':<8} {'ours':>7} {'anchor (this run)':>18} {'ratio':>6} "
        f"{'anchor (published)':>19} {'ratio':>6} {'target':>7}"
    )
    for metric in ("roc_auc", "pr_auc", "ece"):
        o, a = ours_scores[metric], anchor_scores[metric]
        published = ANCHOR.get(metric)
        print(
            f"{metric:<8} {o:7.4f} {a:18.4f} {o / a:6.3f} "
            f"{published if published else float('nan'):19.3f} "
            f"{o / published if published else float('nan'):6.3f} {TARGET[metric]:7.2f}"
        )
    if args.compare_calibration:
        report_calibration(y, compared, list(outer.split(X, y)), latency, options.cv_folds)


ENSEMBLE = "k-fold ensemble, isotonic"


def calibration_arrangements(options: TrainOptions, everyone: bool) -> dict[str, tuple[TrainOptions, bool]]:
    """Name -> (options, ensemble) of each arrangement; the first is what `train` registers, the
    others (`everyone`) the ones it is compared with."""
    ours = {f"one model + {options.calibration.replace('_', ' ')} (train)": (options, False)}
    if not everyone:
        return ours
    others = {
        f"one model + {method.replace('_', ' ')}": (options.model_copy(update={"calibration": method}), False)
        for method in ("centered_isotonic", "isotonic", "sigmoid")
        if method != options.calibration
    }
    return ours | others | {ENSEMBLE: (options.model_copy(update={"calibration": "isotonic"}), True)}


def report_calibration(
    y, compared: dict[str, np.ndarray], folds, latency: dict[str, list[float]], k: int
) -> None:
    """Each calibration arrangement: quality, its per-fold PR-AUC difference to the ensemble, cost."""
    ensemble = compared[ENSEMBLE]
    print(f"\ncalibration arrangements (same searched parameters per fold, {k} inner folds)")
    print(
        f"{'arrangement':<38} {'roc_auc':>8} {'pr_auc':>8} {'ece':>7} {'models':>7} {'1-row ms':>9} "
        f"{'PR-AUC - ensemble, per fold (mean +- sd)':>42}"
    )
    for name, proba in compared.items():
        s = scores(y, proba)
        differences = [
            average_precision_score(y[test], proba[test]) - average_precision_score(y[test], ensemble[test])
            for _, test in folds
        ]
        mean, sd = np.mean(differences), np.std(differences, ddof=1)
        verdict = (
            "-"
            if name == ENSEMBLE
            else f"{mean:+.4f} +- {sd:.4f} " + ("within noise" if abs(mean) <= 2 * sd else "BEYOND noise")
        )
        print(
            f"{name:<38} {s['roc_auc']:8.4f} {s['pr_auc']:8.4f} {s['ece']:7.4f} "
            f"{k if name == ENSEMBLE else 1:>7} {np.median(latency[name]):9.3f} {verdict:>42}"
        )
    print("within noise: |mean| <= 2 sd of the per-fold differences")


if __name__ == "__main__":
    main()
