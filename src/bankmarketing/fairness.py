"""Fairness by segment: selection rate, true-positive rate and calibration per group, and the gaps.

Groups are age bands, marital status and job groups. A gap is the largest difference between
two groups of one dimension; groups with fewer than `min_rows` customers (or, for the
true-positive rate, fewer than `min_positives` subscribers) are reported but left out of the
gaps, whose noise would otherwise dominate them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from bankmarketing.config import Settings
from bankmarketing.data.prepare import prepared_manifest, read_split
from bankmarketing.data.schema import FEATURES, TARGET
from bankmarketing.options import StageOptions
from bankmarketing.registry import client_for, load_scorer, required_version

AGE_BANDS = [17, 25, 35, 45, 55, 65, 120]
AGE_LABELS = ["18-25", "26-35", "36-45", "46-55", "56-65", "66+"]
#: The data's twelve job values in four groups of similar work and income.
JOB_GROUPS = {
    "admin.": "office",
    "management": "office",
    "entrepreneur": "office",
    "self-employed": "office",
    "blue-collar": "manual and services",
    "services": "manual and services",
    "housemaid": "manual and services",
    "technician": "manual and services",
    "retired": "not working",
    "student": "not working",
    "unemployed": "not working",
    "unknown": "unknown",
}
DIMENSIONS = ("age band", "marital", "job group")
#: The measures whose gaps the promotion gate can bound.
GAP_MEASURES = ("selection_rate", "true_positive_rate", "calibration")


def groups(customers: pd.DataFrame) -> dict[str, pd.Series]:
    """Each customer's group in every dimension (strings)."""
    return {
        "age band": pd.cut(customers["age"], AGE_BANDS, labels=AGE_LABELS).astype(str),
        "marital": customers["marital"].astype(str),
        "job group": customers["job"].map(JOB_GROUPS).fillna("unknown").astype(str),
    }


def fairness_rows(
    customers: pd.DataFrame,
    y: np.ndarray,
    proba: np.ndarray,
    threshold: float,
    min_rows: int = 100,
    min_positives: int = 20,
) -> list[dict]:
    """One row per (dimension, group): customers, subscribers, selection rate at the threshold,
    true-positive rate (None without subscribers), mean score, observed rate, calibration
    (mean score - observed rate), and whether the group is large enough to count in the gaps."""
    y, proba = np.asarray(y, dtype=int), np.asarray(proba, dtype=float)
    selected = proba >= threshold
    rows = []
    for dimension, labels in groups(customers).items():
        for group, index in pd.Series(np.arange(len(y)), index=labels.to_numpy()).groupby(level=0):
            at = index.to_numpy()
            positives = int(y[at].sum())
            rows.append(
                {
                    "dimension": dimension,
                    "group": str(group),
                    "rows": len(at),
                    "positives": positives,
                    "selection_rate": float(selected[at].mean()),
                    "true_positive_rate": float(selected[at][y[at] == 1].mean()) if positives else None,
                    "mean_score": float(proba[at].mean()),
                    "observed_rate": float(y[at].mean()),
                    "calibration": float(proba[at].mean() - y[at].mean()),
                    "counted": len(at) >= min_rows and positives >= min_positives,
                }
            )
    return rows


def fairness_gaps(groups_rows: list[dict]) -> pd.DataFrame:
    """Per dimension: the gap of each measure over the groups that count (`fairness_rows`), and
    the groups at its ends."""
    table = pd.DataFrame(groups_rows).astype({"true_positive_rate": float})
    rows = []
    for dimension, part in table[table["counted"]].groupby("dimension", sort=False):
        for measure in GAP_MEASURES:
            values = part.set_index("group")[measure].dropna()
            if values.empty:
                continue
            if measure == "calibration":  # how far the worst-calibrated group is off either way
                gap, low, high = values.abs().max(), None, values.abs().idxmax()
            else:
                gap, low, high = values.max() - values.min(), values.idxmin(), values.idxmax()
            ends = {"lowest": low, "highest": high}
            rows.append({"dimension": dimension, "measure": measure, "gap": float(gap), **ends})
    return pd.DataFrame(rows, columns=["dimension", "measure", "gap", "lowest", "highest"])


def largest_gap(gaps: pd.DataFrame, measure: str) -> tuple[float, str]:
    """The largest gap of one measure over the dimensions, and the dimension it is in."""
    part = gaps[gaps["measure"] == measure]
    if part.empty:
        return 0.0, "none"
    row = part.loc[part["gap"].idxmax()]
    return float(row["gap"]), str(row["dimension"])


# --- the report: a registered version on the test split and the later months ---------------

SEASON_SPLITS = ["test", "jun", "jul", "aug", "sep", "oct", "nov"]


class FairnessOptions(StageOptions):
    """Parameters of `fairness` (CLI flags of the same names)."""

    alias: str = Field("production", description="registry alias of the version to examine")
    splits: list[str] = Field(SEASON_SPLITS, description="splits of its prepared data, in order")
    chart: str | None = Field(None, description="write a PNG chart of the gaps per split here")


def fairness_report(settings: Settings, options: FairnessOptions) -> dict:
    """The version's gaps per split (each measure, each dimension); a chart if asked for."""
    client = client_for(settings.tracking_uri)
    version = required_version(client, settings.model_name, options.alias)
    manifest = prepared_manifest(settings, version.tags["prepared_id"])
    scorer = load_scorer(settings.tracking_uri, version.name, version.version)
    threshold = float(version.tags["threshold"])
    frames = []
    for split in options.splits:
        rows = read_split(manifest, split)
        y = (rows[TARGET] == "yes").to_numpy(dtype=int)
        gaps = fairness_gaps(fairness_rows(rows, y, scorer.score_frame(rows[list(FEATURES)]), threshold))
        frames.append(gaps.assign(split=split))
    report = pd.concat(frames, ignore_index=True)
    if options.chart:
        plot_gaps(report, options.splits, Path(options.chart), f"{version.name} v{version.version}")
    return {
        "model_name": version.name,
        "model_version": version.version,
        "gaps": report[["split", "dimension", "measure", "gap", "lowest", "highest"]].to_dict("records"),
        "chart": options.chart,
    }


def plot_gaps(report: pd.DataFrame, splits: list[str], path: Path, title: str) -> None:
    """One panel per measure: the gap of each dimension across the splits."""
    from bankmarketing.training.plots import plt, save_figure  # matplotlib only when charting

    figure, axes = plt.subplots(1, len(GAP_MEASURES), figsize=(14, 4), sharey=True)
    for axis, measure in zip(axes, GAP_MEASURES, strict=True):
        part = report[report["measure"] == measure]
        for dimension in DIMENSIONS:
            line = part[part["dimension"] == dimension].set_index("split")["gap"].reindex(splits)
            axis.plot(splits, line.to_numpy(), marker="o", label=dimension)
        name = measure.replace("_", " ")
        axis.set_title(f"{name}: furthest group off" if measure == "calibration" else f"{name} gap")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("gap between groups")
    axes[0].legend()
    save_figure(figure, path, f"Fairness gaps by split — {title}")
