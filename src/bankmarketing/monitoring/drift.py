"""Evidently 0.4 metrics of one period against the reference (Mage environment only).

Evidently is imported inside the functions: the app environment does not install it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from bankmarketing.data.schema import CATEGORICAL_FEATURES, FEATURES, MISSING, NUMERIC_FEATURES
from bankmarketing.fairness import fairness_rows
from bankmarketing.monitoring.missing import missing_by_column, missing_values_share

PREDICTION, TARGET = "prediction", "target"


@dataclass(frozen=True)
class DriftSettings:
    """Statistical tests and thresholds (Mage variables of `monitor`)."""

    prediction_stattest: str = "wasserstein"  # normed Wasserstein distance: 0 = same, 0.1 = drift
    prediction_threshold: float = 0.1
    dataset_drift_share: float = 0.5  # the dataset drifts when this share of columns drift


@dataclass
class PeriodMetrics:
    """Everything `monitor` stores for one period and model version."""

    rows: int
    missing_values_share: float  # missing input cells (`unknown`, empty) among all input cells
    prediction_drift_score: float | None = None
    prediction_stattest: str | None = None
    prediction_drift_threshold: float | None = None
    prediction_drift_detected: bool | None = None
    prediction_psi: float | None = None
    columns: int | None = None
    drifted_columns: int | None = None
    drifted_columns_share: float | None = None
    dataset_drift_share: float | None = None
    dataset_drift_detected: bool | None = None
    column_drift: list[dict] = field(default_factory=list)
    missing_by_column: list[dict] = field(default_factory=list)  # per input column
    performance: dict | None = None
    fairness: list[dict] = field(default_factory=list)  # per (dimension, group), labelled rows only


def performance(target: np.ndarray, score: np.ndarray, threshold: float, quality: dict) -> dict:
    """Live performance: Evidently's classification quality plus PR-AUC (average precision)."""
    both_classes = len(np.unique(target)) == 2
    decision = score >= threshold
    return {
        "labelled_rows": int(len(target)),
        "positives": int(target.sum()),
        "roc_auc": float(quality["roc_auc"]) if both_classes else None,
        "pr_auc": float(average_precision_score(target, score)) if both_classes else None,
        "precision": float(quality["precision"]),
        "recall": float(quality["recall"]),
        "f1": float(quality["f1"]),
        "threshold": float(threshold),
        "predicted_positive_share": float(decision.mean()),
    }


def _column_mapping(labelled: bool):
    from evidently import ColumnMapping

    return ColumnMapping(
        target=TARGET if labelled else None,
        prediction=PREDICTION,
        numerical_features=list(NUMERIC_FEATURES),
        categorical_features=list(CATEGORICAL_FEATURES),
        pos_label=1,
    )


def _run(metrics: list, reference: pd.DataFrame | None, current: pd.DataFrame, labelled: bool):
    from evidently.report import Report

    columns = [*FEATURES, PREDICTION, *([TARGET] if labelled else [])]
    report = Report(metrics=metrics)
    report.run(
        reference_data=None if reference is None else reference[columns],
        current_data=current[columns],
        column_mapping=_column_mapping(labelled),
    )
    return report


def live_performance(current: pd.DataFrame, threshold: float) -> dict | None:
    """Quality on the rows whose outcome is known (`target` not empty); None without any."""
    from evidently.metrics import ClassificationQualityMetric

    if TARGET not in current:
        return None
    labelled = current[current[TARGET].notna()].astype({TARGET: int})
    if labelled.empty:
        return None
    report = _run([ClassificationQualityMetric(probas_threshold=threshold)], None, labelled, True)
    quality = report.as_dict()["metrics"][0]["result"]["current"]
    return performance(labelled[TARGET].to_numpy(), labelled[PREDICTION].to_numpy(), threshold, quality)


def period_metrics(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    threshold: float,
    settings: DriftSettings,
    report_path: Path | None = None,
) -> PeriodMetrics:
    """Run Evidently on `current` against `reference`; read its metrics by name.

    Both frames hold the raw features and `prediction` (the model's score); `current` may
    hold `target` (0/1, empty where unknown) for live performance. Saves the drift report
    as HTML when `report_path` is given.
    """
    from evidently.metrics import ColumnDriftMetric, DataDriftTable, DatasetMissingValuesMetric

    report = _run(
        [
            ColumnDriftMetric(
                column_name=PREDICTION,
                stattest=settings.prediction_stattest,
                stattest_threshold=settings.prediction_threshold,
            ),
            ColumnDriftMetric(column_name=PREDICTION, stattest="psi"),
            DataDriftTable(columns=list(FEATURES)),
            # the report counts the data set's own marker too, as the stored figures do
            DatasetMissingValuesMetric(missing_values=[MISSING], replace=False),
        ],
        reference,
        current,
        labelled=False,
    )
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report.save_html(str(report_path))
    prediction, psi, table, _missing = (m["result"] for m in report.as_dict()["metrics"])
    drifted, total = table["number_of_drifted_columns"], table["number_of_columns"]
    missing = missing_by_column(current)
    return PeriodMetrics(
        rows=len(current),
        missing_values_share=missing_values_share(current, missing),
        prediction_drift_score=float(prediction["drift_score"]),
        prediction_stattest=prediction["stattest_name"],
        prediction_drift_threshold=float(prediction["stattest_threshold"]),
        prediction_drift_detected=bool(prediction["drift_detected"]),
        prediction_psi=float(psi["drift_score"]),
        columns=int(total),
        drifted_columns=int(drifted),
        drifted_columns_share=float(table["share_of_drifted_columns"]),
        dataset_drift_share=settings.dataset_drift_share,
        dataset_drift_detected=bool(drifted >= settings.dataset_drift_share * total),
        column_drift=[
            {
                "column_name": name,
                "stattest": column["stattest_name"],
                "drift_score": float(column["drift_score"]),
                "threshold": float(column["stattest_threshold"]),
                "drift_detected": bool(column["drift_detected"]),
            }
            for name, column in table["drift_by_columns"].items()
        ],
        missing_by_column=missing,
        performance=live_performance(current, threshold),
    )


def labelled_fairness(frame: pd.DataFrame, threshold: float) -> list[dict]:
    """Fairness rows of the period's customers whose outcome is known (none without outcomes)."""
    if TARGET not in frame:
        return []
    labelled = frame[frame[TARGET].notna()]
    if labelled.empty:
        return []
    y, proba = labelled[TARGET].to_numpy(dtype=int), labelled[PREDICTION].to_numpy()
    rows = fairness_rows(labelled, y, proba, threshold)
    return [{"group_name": row.pop("group"), **row} for row in rows]
