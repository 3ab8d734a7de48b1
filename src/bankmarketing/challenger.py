"""A challenger version beside production: who it answers for, and how the two compare live.

Serving (`PREDICTOR_CHALLENGER_MODE`): in `shadow` mode the registry's `challenger` version
scores every request and its score is only logged; in `split` mode a share of customers gets
its answer instead. The assignment is sticky: a hash of the customer id (and the challenger's
version, so each new challenger draws a new group) decides it. Both scores are logged either way.

Monitoring: `compare_versions` measures the two versions on the same labelled customers, with
DeLong's test of their ROC AUC difference (paired: both scored every customer). Periods judged
together are one family of tests: `correct_for_periods` adjusts their p-values by Holm's method
and bases each period's verdict on the adjusted p (`stored_comparisons` does so per family).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections import defaultdict
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
#: Two-sided significance level of the comparison's verdict (family-wise over the periods judged together).
SIGNIFICANCE = 0.05
NO_DIFFERENCE = "no significant difference"
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
    DeLong's 95 % interval and p-value; `verdict` names the better version when p < 0.05 — the
    verdict of this period alone: `correct_for_periods` re-judges it within its family of periods.
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
    return result | {"verdict": verdict_of(test["roc_auc_difference"], test["p_value"])}


def verdict_of(difference: float, p_value: float) -> str:
    """The better version when `p_value` (raw for one period, adjusted for a family) is below 0.05."""
    if p_value >= SIGNIFICANCE:
        return NO_DIFFERENCE
    return "challenger better" if difference > 0 else "production better"


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given.

    With the m p-values sorted ascending, the i-th smallest (i = 1 … m) becomes the largest of
    min(1, (m − j + 1) · p(j)) over j ≤ i. Calling a period different where its adjusted p is
    below 0.05 keeps the chance of any false verdict in the family at or below 0.05, whatever
    the dependence between the tests.
    """
    p = np.asarray(p_values, dtype=float)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1]: {p_values}")
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty(len(p))
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


def _tested(comparison: dict) -> bool:
    p = comparison.get("p_value")
    return p is not None and not math.isnan(p)


def correct_for_periods(comparisons: Sequence[dict]) -> list[dict]:
    """One family's comparisons with `p_adjusted` (Holm) and the verdict from it.

    The family is the periods passed: those judged together for one production/challenger pair.
    `p_value` stays the period's own (raw) p. Periods that were not comparable (one class only)
    are not tests: they keep their verdict and get no adjusted p.
    """
    corrected = [dict(c) | {"p_adjusted": None} for c in comparisons]
    tested = [c for c in corrected if _tested(c)]
    for comparison, adjusted in zip(tested, holm_adjusted([c["p_value"] for c in tested]), strict=True):
        comparison["p_adjusted"] = adjusted
        comparison["verdict"] = verdict_of(comparison["roc_auc_difference"], adjusted)
    return corrected


def correct_stored_family(
    connection: sa.Connection, model_name: str, production_version: int, challenger_version: int, source: str
) -> None:
    """Store `p_adjusted` and the corrected verdict for every stored period of one family."""
    table = monitoring_challenger
    family = (
        (table.c.model_name == model_name)
        & (table.c.production_version == production_version)
        & (table.c.challenger_version == challenger_version)
        & (table.c.source == source)
    )
    rows = [
        dict(r) for r in connection.execute(sa.select(table).where(family).order_by(table.c.id)).mappings()
    ]
    for row in correct_for_periods(rows):
        connection.execute(
            sa.update(table)
            .where(table.c.id == row["id"])
            .values(p_adjusted=row["p_adjusted"], verdict=row["verdict"])
        )


def stored_comparisons(database_url: str, model_name: str, limit: int | None = None) -> list[dict]:
    """The comparisons `monitor` stored for a model, newest period first (datetimes as ISO text).

    Verdicts are Holm-corrected per family: the stored periods of one production/challenger
    pair from one source (batch or log), i.e. the periods a `monitor` run compares and the
    chart, `GET /challenger` and Streamlit show side by side. Each row keeps its raw `p_value`
    and gains `p_adjusted`. The family is formed before `limit` cuts the list.
    """
    table = monitoring_challenger
    query = (
        sa.select(table)
        .where(table.c.model_name == model_name)
        .order_by(table.c.period_start.desc(), table.c.id.desc())
    )
    with engine_for(database_url).connect() as connection:
        found = [
            {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in row.items() if k != "id"}
            for row in connection.execute(query).mappings()
        ]
    families: defaultdict[tuple, list[int]] = defaultdict(list)
    for i, row in enumerate(found):
        families[(row["production_version"], row["challenger_version"], row["source"])].append(i)
    for members in families.values():
        for i, corrected in zip(members, correct_for_periods([found[i] for i in members]), strict=True):
            found[i] = corrected
    return found if limit is None else found[:limit]


def plot_comparisons(comparisons: list[dict], path: Path, title: str) -> None:
    """Both versions' ROC AUC per period, and the difference with its 95 % interval."""
    from bankmarketing.training.plots import plt, save_figure  # matplotlib only when charting

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
    right.set_title("challenger − production, 95 % interval (green/red: Holm-adjusted p < 0.05)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    save_figure(figure, path, title)
