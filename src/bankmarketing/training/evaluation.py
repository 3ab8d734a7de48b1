"""Metrics of a scored set, the decision threshold, and the business value of calling."""

from __future__ import annotations

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
