"""Quality benchmark: 5-fold stratified CV on all 45,211 rows, `duration` excluded.

Each outer fold runs the `train` stage's own procedure for each candidate kind (search with
cross-validation on the fold's training part, the selection folds' PR-AUC that `deploy` ranks
by, calibration, scoring of the held-out fold), beside the anchor in the same run: XGBoost on
one-hot raw features, no engineered features, no calibration (the published design, measured
here at ROC-AUC 0.804, PR-AUC 0.462). The kinds are then compared fold by fold against the
best, and the kind the platform's own selection picks in each fold is judged against it:
the run ends with

    quality bench: best=KIND pr_auc=X picks_within_noise=K/5

Each kind's out-of-fold scores are kept (--results), so kinds measured in separate runs on
the same folds are compared too; `--candidate soft_voting` (the ensemble) reads its members'
searched parameters from there.

With --compare-calibration, each fold also fits the other calibration arrangements with the
same searched parameters: one model with a plain isotonic or a sigmoid calibrator, and
scikit-learn's default (`CalibratedClassifierCV(ensemble=True)`: one model and one isotonic
calibrator per inner fold, their probabilities averaged, so a prediction runs `cv_folds`
models). The report gives each arrangement's quality, its per-fold PR-AUC difference to the
ensemble (the noise to judge it by) and the single-row scoring latency of what the predictor
would serve: one model through the compiled scorer, the ensemble through
`pipeline.predict_proba` (the scorer compiles one model only).

    make bench                        # every kind, then the ensemble (about an hour on 2 cores)
    .venv/app/bin/python bench/quality.py --candidate hist_gradient_boosting --compare-calibration
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
from bankmarketing.training.ensemble import ENSEMBLE as SOFT_VOTING
from bankmarketing.training.ensemble import soft_voting_candidate
from bankmarketing.training.evaluation import expected_calibration_error, paired_difference
from bankmarketing.training.train import TrainOptions, fit_calibrated, members_by_selection, searched, xy
from bankmarketing.training.tuning import selection_scores

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
    parser.add_argument(
        "--candidate",
        nargs="+",
        default=list(CANDIDATES),
        choices=[*CANDIDATES, SOFT_VOTING],
        help="the kinds to measure, in this run (default: every kind `train` searches)",
    )
    defaults = TrainOptions()
    parser.add_argument("--trials", type=int, default=defaults.trials, help="as train's")
    parser.add_argument("--timeout-s", type=float, default=defaults.timeout_s, help="as train's")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--ensemble-members",
        type=int,
        default=3,
        help="soft_voting: this many best kinds vote (train's option)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("build/bench/quality"),
        help="each kind's out-of-fold scores are kept here; the comparison covers every kind kept "
        "for the same rows and folds, measured in this run or an earlier one",
    )
    parser.add_argument(
        "--compare-calibration",
        action="store_true",
        help="also fit the other calibration arrangements (one model + isotonic or sigmoid, k-fold ensemble)",
    )
    args = parser.parse_args()

    frame = validate(read_raw(Path(args.data))).clean
    X, y = xy(frame)
    options = TrainOptions(
        trials=args.trials, timeout_s=args.timeout_s, ensemble_members=args.ensemble_members
    )
    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=0).split(X, y))
    anchor = np.zeros(len(y))
    for train, test in folds:
        anchor[test] = anchor_pipeline().fit(X.iloc[train], y[train]).predict_proba(X.iloc[test])[:, 1]
    kinds = sorted(args.candidate, key=lambda kind: kind == SOFT_VOTING)  # the ensemble needs its members
    for kind in kinds:
        started = time.monotonic()
        measured = measure_kind(kind, X, y, folds, options, args.compare_calibration, args.results)
        print(
            f"\n{len(y):,} rows, {args.folds}-fold stratified CV, `duration` excluded, "
            f"candidate {kind}, {time.monotonic() - started:.0f} s"
        )
        report_against_anchor(y, measured["proba"], anchor)
        if args.compare_calibration:
            report_calibration(y, measured["arrangements"], folds, measured["latency"], options.cv_folds)
    report_kinds(y, folds, load_results(args.results, y, folds), anchor)


def measure_kind(kind, X, y, folds, options, every_calibration: bool, results: Path) -> dict:
    """Out-of-fold scores of `train`'s procedure for one kind, per outer fold: the search (or,
    for the ensemble, its members' searched parameters), the selection folds' PR-AUC that
    `deploy` ranks by, calibration, and the held-out fold's scores. Kept in `results`."""
    arrangements = calibration_arrangements(options, everyone=every_calibration)
    compared = {name: np.zeros(len(y)) for name in arrangements}
    latency: dict[str, list[float]] = {name: [] for name in arrangements}
    saved = load_results(results, y, folds)
    kept = {"kind": kind, "trials": [], "params": [], "selection": []}
    for fold, (train, test) in enumerate(folds, start=1):
        X_train, y_train = X.iloc[train], y[train]
        if kind == SOFT_VOTING:
            candidate, params = soft_voting_candidate(), ensemble_params(saved, fold - 1, options)
            trials = 0
        else:
            candidate = CANDIDATES[kind]
            found = searched(candidate, options, X_train, y_train)
            params, trials = found.params, found.trials
        selection = selection_scores(
            candidate, params, X_train, y_train, folds=options.selection_folds, seed=options.seed
        )
        for name, (arrangement, ensemble) in arrangements.items():
            model = fit_calibrated(candidate, params, arrangement, X_train, y_train, ensemble)
            compared[name][test] = model.predict_proba(X.iloc[test])[:, 1]
            if every_calibration:
                latency[name].append(single_row_ms(Scorer.from_pipeline(model), X.iloc[test]))
        kept["trials"].append(trials)
        kept["params"].append(params)
        kept["selection"].append(float(selection.mean()))
        proba = next(iter(compared.values()))
        print(
            f"{kind} fold {fold}/{len(folds)}: {trials} trials, selection CV PR-AUC "
            f"{selection.mean():.4f}, held-out PR-AUC {average_precision_score(y[test], proba[test]):.4f}"
            + "".join(
                f", {name} {average_precision_score(y[test], other[test]):.4f}"
                for name, other in list(compared.items())[1:]
            ),
            flush=True,
        )
    ours = next(iter(compared.values()))  # the first arrangement is what train registers
    results.mkdir(parents=True, exist_ok=True)
    np.savez(
        results / f"{kind}.npz",
        proba=ours,
        rows=len(y),
        fold_signature=fold_signature(folds),
        kept=json.dumps(kept),
    )
    return {"proba": ours, "arrangements": compared, "latency": latency}


def fold_signature(folds) -> str:
    """What identifies the rows and folds a result was measured on."""
    return hashlib.sha256(b"".join(test.astype(np.int64).tobytes() for _, test in folds)).hexdigest()


def load_results(results: Path, y: np.ndarray, folds) -> dict[str, dict]:
    """Kind -> kept result, for the results measured on these rows and folds."""
    loaded, signature = {}, fold_signature(folds)
    for path in sorted(results.glob("*.npz")) if results.is_dir() else []:
        with np.load(path) as stored:
            if int(stored["rows"]) == len(y) and str(stored["fold_signature"]) == signature:
                loaded[path.stem] = json.loads(str(stored["kept"])) | {"proba": stored["proba"]}
    return loaded


def ensemble_params(saved: dict[str, dict], fold: int, options: TrainOptions) -> dict:
    """The ensemble's parameters in one outer fold, as `train` builds them: the best members by
    their selection score, each with its searched parameters."""
    members = members_by_selection({kind: saved[kind]["selection"][fold] for kind in saved}, options)
    if len(members) < 2:
        raise SystemExit(
            f"{SOFT_VOTING} needs two measured member kinds first: bench/quality.py --candidate ..."
        )
    return {"members": {kind: saved[kind]["params"][fold] for kind in members}}


def report_against_anchor(y, ours: np.ndarray, anchor: np.ndarray) -> None:
    """Ours beside the anchor measured in this run, the published anchor and the target."""
    ours_scores, anchor_scores = scores(y, ours), scores(y, anchor)
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


def report_kinds(y, folds, results: dict[str, dict], anchor: np.ndarray) -> None:
    """Every measured kind side by side, each against the best fold by fold, and the kind the
    platform's own selection (`deploy`'s ranking by selection-fold PR-AUC) picks in each fold."""
    if not results:
        return
    per_fold = {
        kind: np.array([average_precision_score(y[test], kept["proba"][test]) for _, test in folds])
        for kind, kept in results.items()
    }
    per_fold["anchor"] = np.array([average_precision_score(y[test], anchor[test]) for _, test in folds])
    best = max(results, key=lambda kind: scores(y, results[kind]["proba"])["pr_auc"])
    print(f"\nevery measured kind, same {len(folds)} outer folds (PR-AUC difference to the best, {best})")
    print(
        f"{'kind':<24} {'roc_auc':>8} {'pr_auc':>8} {'ece':>7} {'trials':>7} "
        f"{'PR-AUC - best, per fold (mean +- sd)':>38}"
    )
    for kind in sorted(per_fold, key=lambda k: -per_fold[k].mean()):
        measured = scores(y, anchor if kind == "anchor" else results[kind]["proba"])
        mean, sd, close = paired_difference(per_fold[kind], per_fold[best])
        trials = "-" if kind == "anchor" else f"{np.mean(results[kind]['trials']):.0f}"
        verdict = "-" if kind == best else f"{mean:+.4f} +- {sd:.4f} {'within' if close else 'BEYOND'} noise"
        print(
            f"{kind:<24} {measured['roc_auc']:8.4f} {measured['pr_auc']:8.4f} {measured['ece']:7.4f} "
            f"{trials:>7} {verdict:>38}"
        )
    print("within noise: |mean| <= 2 sd of the per-fold differences")
    picks = [max(results, key=lambda kind: results[kind]["selection"][fold]) for fold in range(len(folds))]
    fair = [paired_difference(per_fold[pick], per_fold[best])[2] or pick == best for pick in picks]
    print(f"the platform's pick per outer fold (best selection-fold PR-AUC): {', '.join(picks)}")
    print(
        f"quality bench: best={best} pr_auc={scores(y, results[best]['proba'])['pr_auc']:.4f} "
        f"picks_within_noise={sum(fair)}/{len(picks)}"
    )


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
