"""A challenger version beside production: who it answers for, and how the two compare live.

Serving (`PREDICTOR_CHALLENGER_MODE`): in `shadow` mode the registry's `challenger` version
scores every request and its score is only logged; in `split` mode a share of customers gets
its answer instead. The assignment is sticky: a hash of the customer id (and the challenger's
version, so each new challenger draws a new group) decides it. Both scores are logged either way.

Monitoring: `compare_versions` measures the two versions on the same labelled customers, with
DeLong's test of their ROC AUC difference (paired: both scored every customer).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy.stats import norm, rankdata
from sklearn.metrics import average_precision_score, brier_score_loss

from bankmarketing.database import engine_for, monitoring_challenger

CHALLENGER = "challenger"
ChallengerMode = Literal["off", "shadow", "split"]
CHALLENGER_MODES: tuple[str, ...] = ("off", "shadow", "split")
#: Two-sided significance level of the comparison's verdict.
SIGNIFICANCE = 0.05
_BUCKETS = float(1 << 64)


def challenger_bucket(key: str, challenger_version: str) -> float:
    """A customer's fixed place in [0, 1) for this challenger version (uniform over customers)."""
    digest = hashlib.blake2b(f"{challenger_version}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _BUCKETS


def assigned_to_challenger(keys: Sequence[str], challenger_version: str, share: float) -> list[bool]:
    """Which customers the challenger answers for in split mode: those whose bucket is below `share`."""
    return [challenger_bucket(key, challenger_version) < share for key in keys]


def _structural_components(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """ROC AUC and DeLong's placement values of each positive and each negative (midranks)."""
    m, n = len(positives), len(negatives)
    both = rankdata(np.concatenate([positives, negatives]))
    within_positives, within_negatives = rankdata(positives), rankdata(negatives)
    auc = (both[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (both[:m] - within_positives) / n  # share of negatives each positive outranks
    v01 = 1.0 - (both[m:] - within_negatives) / m  # share of positives outranking each negative
    return float(auc), v10, v01


def delong_test(y: np.ndarray, first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """DeLong's test that two scores of the same customers have the same ROC AUC.

    Returns both AUCs, the difference (second − first), its standard error, a 95 % interval
    and the two-sided p-value (1.0 when the two scores rank every pair alike).
    """
    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        raise ValueError("DeLong's test needs subscribers and non-subscribers among the customers")
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    auc_1, v10_1, v01_1 = _structural_components(first[y], first[~y])
    auc_2, v10_2, v01_2 = _structural_components(second[y], second[~y])
    s10 = np.cov(np.vstack([v10_1, v10_2]))
    s01 = np.cov(np.vstack([v01_1, v01_2]))
    covariance = s10 / y.sum() + s01 / (~y).sum()
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = auc_2 - auc_1
    se = math.sqrt(max(variance, 0.0))
    if se == 0.0:
        p_value = 1.0 if difference == 0 else 0.0
    else:
        p_value = float(2 * norm.sf(abs(difference) / se))
    half = norm.ppf(1 - SIGNIFICANCE / 2) * se
    return {
        "first_roc_auc": auc_1,
        "second_roc_auc": auc_2,
        "roc_auc_difference": difference,
        "standard_error": se,
        "ci_low": difference - half,
        "ci_high": difference + half,
        "p_value": p_value,
    }


def _side(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    called = scores >= threshold
    subscribers = y.sum()
    return {
        "pr_auc": float(average_precision_score(y, scores)),
        "brier": float(brier_score_loss(y, scores)),
        "precision": float(y[called].mean()) if called.any() else 0.0,
        "recall": float((called & (y == 1)).sum() / subscribers),
        "called_share": float(called.mean()),
    }


def compare_versions(
    y: np.ndarray,
    production: np.ndarray,
    challenger: np.ndarray,
    production_threshold: float,
    challenger_threshold: float,
) -> dict:
    """Production and challenger on the same labelled customers, and which is better (if either).

    Each side's ranking (ROC AUC, PR AUC), calibration (Brier) and decisions at its own threshold
    (precision, recall, share called); `roc_auc_difference` is challenger − production with
    DeLong's 95 % interval and p-value; `verdict` names the better version when p < 0.05.
    Periods with one class only get counts and no metrics.
    """
    y = np.asarray(y).astype(int)
    result: dict = {"labelled_rows": int(len(y)), "positives": int(y.sum())}
    if len(y) == 0 or y.all() or not y.any():
        return result | {"verdict": "not comparable: subscribers and non-subscribers are both needed"}
    test = delong_test(y, production, challenger)
    result |= {
        "production_roc_auc": test["first_roc_auc"],
        "challenger_roc_auc": test["second_roc_auc"],
        **{f"production_{k}": v for k, v in _side(y, np.asarray(production), production_threshold).items()},
        **{f"challenger_{k}": v for k, v in _side(y, np.asarray(challenger), challenger_threshold).items()},
        "roc_auc_difference": test["roc_auc_difference"],
        "ci_low": test["ci_low"],
        "ci_high": test["ci_high"],
        "p_value": test["p_value"],
    }
    result["pr_auc_lift"] = result["challenger_pr_auc"] / result["production_pr_auc"] - 1
    if test["p_value"] >= SIGNIFICANCE:
        verdict = "no significant difference"
    else:
        verdict = "challenger better" if test["roc_auc_difference"] > 0 else "production better"
    return result | {"verdict": verdict}


def stored_comparisons(database_url: str, model_name: str, limit: int | None = None) -> list[dict]:
    """The comparisons `monitor` stored for a model, newest period first (datetimes as ISO text)."""
    table = monitoring_challenger
    query = (
        sa.select(table)
        .where(table.c.model_name == model_name)
        .order_by(table.c.period_start.desc(), table.c.id.desc())
        .limit(limit)
    )
    with engine_for(database_url).connect() as connection:
        found = connection.execute(query).mappings().all()
    return [
        {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in row.items() if k != "id"}
        for row in found
    ]


def plot_comparisons(comparisons: list[dict], path: Path, title: str) -> None:
    """Both versions' ROC AUC per period, and the difference with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(comparisons).dropna(subset=["roc_auc_difference"]).sort_values("period_start")
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
    for side in ("production", "challenger"):
        version = int(frame[f"{side}_version"].iloc[0])
        left.plot(frame["period"], frame[f"{side}_roc_auc"], marker="o", label=f"{side} v{version}")
    left.set_ylabel("ROC AUC")
    left.set_title("ROC AUC per period (same customers)")
    left.legend()
    difference = frame["roc_auc_difference"].to_numpy()
    errors = [difference - frame["ci_low"].to_numpy(), frame["ci_high"].to_numpy() - difference]
    colours = [
        "tab:green" if v == "challenger better" else "tab:red" if v == "production better" else "tab:gray"
        for v in frame["verdict"]
    ]
    right.bar(frame["period"], difference, yerr=errors, color=colours, capsize=4)
    right.axhline(0, color="black", linewidth=0.8)
    right.set_title("challenger − production, 95 % interval (green/red: p < 0.05)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
