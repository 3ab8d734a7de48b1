"""Metrics of a scored set, the decision threshold, and the business value of calling."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate − mean score| over equal-width score bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(proba, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(y_true[in_bin].mean() - proba[in_bin].mean())
    return float(error)


def lift_at(y_true: np.ndarray, proba: np.ndarray, share: float = 0.1) -> float:
    """Subscription rate among the top `share` by score, over the overall rate."""
    top = max(1, int(round(len(proba) * share)))
    order = np.argsort(-proba, kind="stable")[:top]
    return float(y_true[order].mean() / y_true.mean())


def profit(
    y_true: np.ndarray, called: np.ndarray, cost_per_call: float, value_per_subscription: float
) -> float:
    """Money made by calling the `called` customers."""
    return float(called.sum() * -cost_per_call + (called & (y_true == 1)).sum() * value_per_subscription)


def choose_threshold(
    y_true: np.ndarray,
    proba: np.ndarray,
    objective: str,
    cost_per_call: float = 5.0,
    value_per_subscription: float = 50.0,
) -> float:
    """The score above which to call: maximum F1, or maximum expected profit."""
    if objective == "profit":
        candidates = np.unique(proba)
        gains = [profit(y_true, proba >= t, cost_per_call, value_per_subscription) for t in candidates]
        return float(candidates[int(np.argmax(gains))])
    precision, recall, thresholds = precision_recall_curve(y_true, proba)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking, calibration and decision metrics, with the majority-class baseline beside them."""
    y_true = np.asarray(y_true).astype(int)
    decision = (proba >= threshold).astype(int)
    majority = max(y_true.mean(), 1 - y_true.mean())
    return {
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "pr_auc": float(average_precision_score(y_true, proba)),
        "pr_auc_baseline": float(y_true.mean()),
        "f1": float(f1_score(y_true, decision, zero_division=0)),
        "precision": float(precision_score(y_true, decision, zero_division=0)),
        "recall": float(recall_score(y_true, decision, zero_division=0)),
        "brier": float(brier_score_loss(y_true, proba)),
        "ece": expected_calibration_error(y_true, proba),
        "lift_top_decile": lift_at(y_true, proba, 0.1),
        "accuracy": float(accuracy_score(y_true, decision)),
        "accuracy_majority_baseline": float(majority),
        "threshold": float(threshold),
    }


def paired_difference(scores: np.ndarray, reference: np.ndarray) -> tuple[float, float, bool]:
    """(mean, sd, within noise) of the per-fold differences `scores - reference` on shared folds;
    within noise: |mean| <= 2 sd, where one split could have ordered the two either way."""
    differences = np.asarray(scores, float) - np.asarray(reference, float)
    mean, sd = float(differences.mean()), float(differences.std(ddof=1)) if len(differences) > 1 else 0.0
    return mean, sd, abs(mean) <= 2 * sd


#: The metrics `metric_function` computes without the rest of `classification_metrics`.
_ALONE: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "pr_auc": lambda y, proba, _: float(average_precision_score(y, proba)),
    "roc_auc": lambda y, proba, _: float(roc_auc_score(y, proba)),
    "f1": lambda y, proba, threshold: float(f1_score(y, proba >= threshold, zero_division=0)),
    "lift_top_decile": lambda y, proba, _: lift_at(y, proba, 0.1),
}


def bootstrap_difference_sd(
    y: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    metric: str,
    thresholds: tuple[float, float],
    resamples: int = 200,
    seed: int = 0,
) -> float:
    """Standard deviation of metric(first) - metric(second) over paired bootstrap resamples of
    the rows (each scored by both models, each at its own threshold): how much the difference
    would move on another draw of the same customers."""
    measure = _ALONE[metric]
    y = np.asarray(y).astype(int)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        if 0 < y[rows].sum() < len(rows):
            differences.append(
                measure(y[rows], first[rows], thresholds[0]) - measure(y[rows], second[rows], thresholds[1])
            )
    return float(np.std(differences, ddof=1))
