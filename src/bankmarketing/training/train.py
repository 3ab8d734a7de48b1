"""The `train` stage: tune, calibrate, evaluate and register every candidate in MLflow."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from typing import Literal

import matplotlib.pyplot as plt
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from pydantic import Field, field_validator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.inspection import permutation_importance
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from bankmarketing.config import Settings
from bankmarketing.data.identity import with_row_ids
from bankmarketing.data.prepare import current_manifest, read_split, xy
from bankmarketing.monitoring.reference import log_reference, reference_frame
from bankmarketing.options import StageOptions, only_known
from bankmarketing.registry import (
    IDENTITIES_TAG,
    log_training_identities,
    register_candidate,
    require_tracking_server,
    use_tracking_server,
)
from bankmarketing.scoring import BACKGROUND_ATTRIBUTE, Scorer, single_row_ms
from bankmarketing.scoring.shapley import BACKGROUND_ROWS
from bankmarketing.training import evaluation
from bankmarketing.training.calibration import center_isotonic_calibrators
from bankmarketing.training.candidates import CANDIDATES, Candidate
from bankmarketing.training.ensemble import MEMBER_KINDS, soft_voting_candidate
from bankmarketing.training.plots import evaluation_figures
from bankmarketing.training.tuning import SearchResult, search, selection_scores

log = logging.getLogger(__name__)
MODEL_ARTIFACT = "model"
#: Tag set on the training (parent) run as its last step, after every candidate is registered.
TRAINING_COMPLETE_TAG = "training_complete"
#: Version tag: the candidate's PR-AUC on each selection fold (JSON list; the same folds for
#: every candidate of a run, so `deploy` compares them fold by fold).
CV_FOLDS_TAG = "cv_pr_auc_folds"


class TrainOptions(StageOptions):
    """Parameters of `train` (Mage variables / CLI flags of the same names)."""

    candidates: list[str] = Field(list(CANDIDATES), min_length=1)
    trials: int = Field(25, ge=1, description="search trials per candidate")
    timeout_s: float = Field(60.0, gt=0, description="search time budget per candidate")
    cv_folds: int = Field(3, ge=2, le=10)
    selection_folds: int = Field(
        5, ge=2, le=10, description="fresh folds on which the searched candidates are compared"
    )
    calibration: Literal["centered_isotonic", "isotonic", "sigmoid"] = Field(
        "centered_isotonic", description="the calibrator (training.calibration)"
    )
    threshold_objective: Literal["f1", "profit"] = "f1"
    cost_per_call: float = Field(5.0, ge=0)
    value_per_subscription: float = Field(50.0, gt=0)
    ensemble_members: int = Field(
        0,
        ge=0,
        le=len(MEMBER_KINDS),
        description="also register a soft-voting ensemble of this many best kinds by selection "
        "PR-AUC (0: none; members are kinds with probabilities, not svc)",
    )
    importance_rows: int = Field(2000, ge=100)
    seed: int = 42

    @field_validator("candidates")
    @classmethod
    def _known_candidates(cls, names: list[str]) -> list[str]:
        return only_known(names, CANDIDATES, "candidate")


def git_commit() -> str:
    """The commit the code runs from (GIT_COMMIT wins, for images built without .git)."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def calibrated(candidate: Candidate, params: dict, options: TrainOptions, ensemble: bool = False) -> Pipeline:
    """The candidate pipeline whose classifier is calibrated by cross-validation: one model fitted
    on all rows and one calibrator fitted on its out-of-fold responses (`ensemble`: scikit-learn's
    default instead, one model and calibrator per fold, averaged; bench/quality.py compares).
    Fit it with `fit_calibrated`, which also centres an isotonic calibrator's plateaus."""
    pipeline = candidate.pipeline(params, options.seed)
    pipeline.steps[-1] = (
        "model",
        CalibratedClassifierCV(
            pipeline.steps[-1][1],
            method="sigmoid" if options.calibration == "sigmoid" else "isotonic",
            ensemble=ensemble,
            cv=StratifiedKFold(options.cv_folds, shuffle=True, random_state=options.seed),
        ),
    )
    return pipeline


def fit_calibrated(
    candidate: Candidate,
    params: dict,
    options: TrainOptions,
    X: pd.DataFrame,
    y: np.ndarray,
    ensemble: bool = False,
) -> Pipeline:
    """The calibrated pipeline fitted on (X, y), keeping `BACKGROUND_ROWS` random rows of X as
    the background customers its model-agnostic explanations compare against."""
    model = calibrated(candidate, params, options, ensemble).fit(X, y)
    if options.calibration == "centered_isotonic":
        center_isotonic_calibrators(model.steps[-1][1])
    background = X.sample(min(BACKGROUND_ROWS, len(X)), random_state=options.seed).reset_index(drop=True)
    setattr(model, BACKGROUND_ATTRIBUTE, background)
    return model


def searched(candidate: Candidate, options: TrainOptions, X: pd.DataFrame, y: np.ndarray) -> SearchResult:
    """The search of one candidate within the options' budget."""
    return search(
        candidate,
        X,
        y,
        trials=options.trials,
        timeout_s=options.timeout_s,
        cv_folds=options.cv_folds,
        seed=options.seed,
    )


def flat_params(params: dict, prefix: str) -> dict:
    """{"a": {"b": 1}} -> {"prefix__a__b": 1}: the ensemble's members' parameters, one MLflow param each."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}__{key}"
        flat |= flat_params(value, name) if isinstance(value, dict) else {name: value}
    return flat


def members_by_selection(selection: dict[str, float], options: TrainOptions) -> list[str]:
    """The ensemble's members: the `ensemble_members` best kinds by selection PR-AUC among those
    that can vote (`MEMBER_KINDS`); none when fewer than two are there."""
    voters = sorted((kind for kind in selection if kind in MEMBER_KINDS), key=lambda kind: -selection[kind])
    members = voters[: options.ensemble_members]
    return members if len(members) >= 2 else []


def _permutation_importances(model, X_val: pd.DataFrame, y_val: np.ndarray, options: TrainOptions) -> dict:
    """Each feature's permutation importance (PR-AUC) on a sample of the validation rows."""
    sample = X_val.sample(min(options.importance_rows, len(X_val)), random_state=options.seed)
    importance = permutation_importance(
        model,
        sample,
        y_val[X_val.index.get_indexer(sample.index)],
        scoring="average_precision",
        n_repeats=3,
        random_state=options.seed,
    )
    return dict(zip(sample.columns, importance.importances_mean, strict=True))


def _log_evaluation(
    candidate: str, params: dict, options: TrainOptions, metrics: dict, common_tags: dict, importances: dict
) -> None:
    """The candidate run's parameters, validation metrics, tags and feature importances."""
    mlflow.log_params(
        flat_params(params, "model")
        | {
            "candidate": candidate,
            "calibration": options.calibration,
            "threshold_objective": options.threshold_objective,
            "cv_folds": options.cv_folds,
        }
    )
    mlflow.log_metrics({f"val_{k}": v for k, v in metrics.items()})
    mlflow.set_tags(common_tags | {"candidate": candidate})
    mlflow.log_dict({k: float(v) for k, v in importances.items()}, "feature_importance.json")


def _train_candidate(candidate, options, data, common_tags, settings, params: dict | None = None) -> dict:
    """Search (unless `params` are given, as for the ensemble), calibrate, evaluate, register."""
    (X_train, y_train), (X_val, y_val) = data["train"], data["validation"]
    started = time.monotonic()
    with mlflow.start_run(run_name=candidate.name, nested=True) as run:
        if params is None:
            found = searched(candidate, options, X_train, y_train)
            params = found.params
            search_metrics = {"search_cv_pr_auc": found.cv_pr_auc, "search_trials": found.trials}
        else:
            search_metrics = {"search_trials": 0}
        folds = selection_scores(
            candidate, params, X_train, y_train, folds=options.selection_folds, seed=options.seed
        )
        model = fit_calibrated(candidate, params, options, X_train, y_train)
        scorer = Scorer.from_pipeline(model)  # what the predictor will run, and its cost per customer
        serving = {
            "serving_ms": round(single_row_ms(scorer, X_val), 4),
            "fast_path": str(scorer.fast).lower(),
            "explanation_method": scorer.explanation_method or "none",
        }
        proba = model.predict_proba(X_val)[:, 1]
        threshold = evaluation.choose_threshold(
            y_val,
            proba,
            options.threshold_objective,
            options.cost_per_call,
            options.value_per_subscription,
        )
        metrics = evaluation.classification_metrics(y_val, proba, threshold)
        metrics |= {
            "cv_pr_auc": float(folds.mean()),
            "cv_pr_auc_std": float(folds.std(ddof=1)),
            **search_metrics,
            "train_seconds": time.monotonic() - started,
        }
        importances = _permutation_importances(model, X_val, y_val, options)
        _log_evaluation(candidate.name, params, options, metrics, common_tags, importances)
        log_reference(reference_frame(X_val, y_val, proba))
        for name, figure in evaluation_figures(y_val, proba, threshold, importances, candidate.name).items():
            mlflow.log_figure(figure, f"plots/{name}")
            plt.close(figure)
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            pyfunc_predict_fn="predict_proba",
            signature=infer_signature(X_val.head(50), proba[:50]),
            input_example=X_val.head(3),
            metadata={"threshold": threshold, "data_version": common_tags["data_version"]},
        )
        version = register_candidate(
            info.model_uri,
            settings.model_name,
            common_tags
            | {
                "candidate": candidate.name,
                "run_id": run.info.run_id,
                "threshold": threshold,
                CV_FOLDS_TAG: json.dumps([round(float(v), 6) for v in folds]),
            }
            | serving
            | {f"val_{k}": round(v, 6) for k, v in metrics.items()},
        )
    log.info(
        "%s -> version %s: val PR-AUC %.4f ROC-AUC %.4f",
        candidate.name,
        version,
        metrics["pr_auc"],
        metrics["roc_auc"],
    )
    return {
        "candidate": candidate.name,
        "run_id": run.info.run_id,
        "version": version,
        "metrics": metrics,
        "params": params,
    }


def train(settings: Settings, options: TrainOptions, manifest: dict | None = None) -> dict:
    """Train every candidate on prepared data (default: the current); return runs and versions."""
    manifest = manifest or current_manifest(settings)
    parts = {name: read_split(manifest, name) for name in ("train", "validation")}
    data = {name: xy(part) for name, part in parts.items()}
    require_tracking_server(settings.tracking_uri)
    use_tracking_server(settings.tracking_uri)
    mlflow.set_experiment(settings.experiment)
    common_tags = {
        "data_version": manifest["data_version"],
        "prepared_id": manifest["prepared_id"],
        "synthetic": str(manifest["synthetic"]).lower(),
        "git_commit": git_commit(),
    }
    with mlflow.start_run(run_name=f"train-{manifest['prepared_id']}") as parent:
        mlflow.set_tags(common_tags | {"stage": "train"})
        mlflow.log_params(
            {
                "train_rows": len(data["train"][1]),
                "validation_rows": len(data["validation"][1]),
                **{k: v for k, v in options.model_dump().items() if k != "candidates"},
                "candidates": ",".join(options.candidates),
            }
        )
        common_tags["training_run_id"] = parent.info.run_id
        seen = pd.concat([with_row_ids(part).assign(split=name) for name, part in parts.items()])
        common_tags[IDENTITIES_TAG] = log_training_identities(seen)
        results = [
            _train_candidate(CANDIDATES[name], options, data, common_tags, settings)
            for name in options.candidates
        ]
        members = members_by_selection({r["candidate"]: r["metrics"]["cv_pr_auc"] for r in results}, options)
        if members:
            chosen = {r["candidate"]: r["params"] for r in results if r["candidate"] in members}
            params = {"members": {kind: chosen[kind] for kind in members}}
            results.append(
                _train_candidate(soft_voting_candidate(), options, data, common_tags, settings, params)
            )
        best = max(results, key=lambda r: r["metrics"]["cv_pr_auc"])
        mlflow.log_metrics(
            {
                "best_cv_pr_auc": best["metrics"]["cv_pr_auc"],
                "best_val_pr_auc": best["metrics"]["pr_auc"],
                "best_val_roc_auc": best["metrics"]["roc_auc"],
            }
        )
        mlflow.set_tag("best_candidate", best["candidate"])
        # Last: deploy stages only versions of runs that ended FINISHED after this point.
        mlflow.set_tag(TRAINING_COMPLETE_TAG, "true")
    return {
        "training_run_id": parent.info.run_id,
        "model_name": settings.model_name,
        "data_version": manifest["data_version"],
        "candidates": results,
        "best": best["candidate"],
    }
