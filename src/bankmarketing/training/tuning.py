"""Hyperparameter search with cross-validation on the training split only."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import StratifiedKFold, cross_val_score

from bankmarketing.training.candidates import Candidate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    params: dict[str, Any]
    cv_pr_auc: float  # the best trial's: a maximum over trials, so biased upwards
    trials: int


def search(
    candidate: Candidate,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    trials: int,
    timeout_s: float,
    cv_folds: int,
    seed: int,
) -> SearchResult:
    """TPE search maximising cross-validated PR-AUC within a trial and time budget."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = StratifiedKFold(cv_folds, shuffle=True, random_state=seed)
    ratio = float((y == 0).sum() / max((y == 1).sum(), 1))

    def objective(trial: optuna.Trial) -> float:
        params = candidate.suggest(trial, ratio)
        fold_scores = cross_val_score(
            candidate.pipeline(params, seed), X, y, cv=folds, scoring="average_precision"
        )
        return float(fold_scores.mean())

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    if candidate.first_trial:  # a known-good start: the best is good under any budget
        study.enqueue_trial(candidate.first_trial)
    study.optimize(objective, n_trials=trials, timeout=timeout_s)
    best = study.best_trial
    params = candidate.suggest(optuna.trial.FixedTrial(best.params), ratio)
    log.info("%s: %d trials, best CV PR-AUC %.4f", candidate.name, len(study.trials), best.value)
    return SearchResult(params, float(best.value), len(study.trials))


def selection_scores(
    candidate: Candidate, params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, *, folds: int, seed: int
) -> np.ndarray:
    """PR-AUC of the searched parameters on each of `folds` fresh folds (not the search's, whose
    best score is a maximum over trials and favours the kinds searched longest). Every candidate
    of a run gets the same folds, so two candidates' scores compare fold by fold."""
    split = StratifiedKFold(folds, shuffle=True, random_state=seed + 1)
    return cross_val_score(candidate.pipeline(params, seed), X, y, cv=split, scoring="average_precision")
