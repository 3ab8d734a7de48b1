"""The model card: a markdown page per promoted version, logged with it.

Every figure on the card is measured on the held-out test split. The decision threshold was
chosen on the validation split, so F1, precision and recall there are optimistic; the card
reports the test split's and shows validation's only in the threshold section, labelled as
the split that chose the threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from sklearn.metrics import average_precision_score, roc_auc_score

from bankmarketing.data.schema import FEATURES, LEAKY_COLUMNS, TARGET
from bankmarketing.fairness import AGE_BANDS, AGE_LABELS, fairness_gaps, fairness_rows
from bankmarketing.training.evaluation import classification_metrics, expected_calibration_error

#: Metrics measured at the decision threshold (name: label): reported on the test split.
AT_THRESHOLD = {"f1": "F1", "precision": "precision", "recall": "recall", "accuracy": "accuracy"}


def segment_table(test: pd.DataFrame, proba: np.ndarray, threshold: float, by: pd.Series) -> pd.DataFrame:
    """Rows, subscription rate, mean score, selection rate, ROC-AUC and PR-AUC per segment."""
    y = (test[TARGET] == "yes").to_numpy(dtype=int)
    rows = []
    for segment, index in pd.Series(range(len(test)), index=by.to_numpy()).groupby(level=0):
        ys, ps = y[index.to_numpy()], proba[index.to_numpy()]
        both = 0 < ys.sum() < len(ys)
        rows.append(
            {
                "segment": str(segment),
                "rows": len(ys),
                "subscription rate": ys.mean(),
                "mean score": ps.mean(),
                "called at threshold": (ps >= threshold).mean(),
                "ROC-AUC": roc_auc_score(ys, ps) if both else np.nan,
                "PR-AUC": average_precision_score(ys, ps) if both else np.nan,
            }
        )
    return pd.DataFrame(rows)


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = [
        "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def calibration_table(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> pd.DataFrame:
    edges = np.quantile(proba, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges[1:-1], proba, side="right"), 0, bins - 1)
    return pd.DataFrame(
        [
            {
                "score decile": b + 1,
                "rows": int((which == b).sum()),
                "mean score": float(proba[which == b].mean()),
                "observed rate": float(y[which == b].mean()),
            }
            for b in range(bins)
            if (which == b).any()
        ]
    )


def _explanation_section(explanation: dict | None) -> str:
    if explanation is None:
        return "This version has no per-feature contributions (its kind is not compiled by the scorer)."
    importance = pd.DataFrame(explanation["importance"][:10])
    dependence = [
        f"### {field}\n{_markdown(pd.DataFrame(rows))}" for field, rows in explanation["dependence"].items()
    ]
    return "\n\n".join(
        [
            f"Mean absolute contribution to the {explanation.get('output', 'log-odds')} before "
            f"calibration per field over {explanation['rows']:,} test customers "
            f"({explanation.get('method', 'the model’s own contributions')}), the ten largest; then "
            "the mean score and the field's mean contribution by value.",
            _markdown(importance),
            *dependence,
        ]
    )


def _serving_section(tags: dict) -> str:
    if "serving_ms" not in tags:
        return "Not measured (trained before serving cost was recorded)."
    path = "the compiled fast path" if tags.get("fast_path") == "true" else "the pipeline (no fast path)"
    return (
        f"One customer scored in **{float(tags['serving_ms']):.3f} ms** (median over validation "
        f"customers, in process, by {path}, measured at training); explanations by "
        f"{tags.get('explanation_method', 'none')}."
    )


def _fairness_section(test: pd.DataFrame, y: np.ndarray, proba: np.ndarray, threshold: float) -> str:
    rows = fairness_rows(test, y, proba, threshold)
    table, gaps = pd.DataFrame(rows), fairness_gaps(rows)
    shown = table.assign(counted=table["counted"].map({True: "yes", False: "no (too few)"}))
    return "\n\n".join(
        [
            "Selection rate (called at the threshold), true-positive rate (subscribers called) and "
            "calibration (mean score − observed rate) per group. Gaps: the largest difference "
            "between two groups of a dimension (calibration: the group furthest off), over groups "
            "with at least 100 customers and 20 subscribers.",
            _markdown(gaps.fillna("")),
            _markdown(shown.drop(columns=["mean_score", "observed_rate"])),
        ]
    )


def _threshold_section(tags: dict, measured: dict[str, float]) -> str:
    """The threshold, where it was chosen, and the figures at it: test split, then validation's."""
    threshold = float(tags["threshold"])
    lines = [
        f"Decision threshold **{threshold:.4f}**: customers scoring at or above it are called. "
        "`train` chose it on the **validation split** (maximum F1, or maximum expected profit: "
        "`threshold_objective`). Figures at the threshold are reported on the test split, which "
        "played no part in choosing it."
    ]
    rows = [{"at the threshold": "share called", "test split": measured["called_share"]}]
    rows += [
        {"at the threshold": label, "test split": measured[name]} for name, label in AT_THRESHOLD.items()
    ]
    selection = [tags.get(f"val_{name}") for name in AT_THRESHOLD]
    if all(value is not None for value in selection):
        column = "validation split (chose the threshold)"
        rows[0][column] = "–"
        for row, value in zip(rows[1:], selection, strict=True):
            row[column] = float(value)
        lines.append(
            "The validation column is the split the threshold was fitted to: its figures are "
            "optimistic by construction and shown only for comparison."
        )
    return "\n\n".join([lines[0], _markdown(pd.DataFrame(rows)), *lines[1:]])


def _metric_rows(measured: dict, y: np.ndarray) -> pd.DataFrame:
    """The test split's metrics, each beside the baseline it has to beat."""
    model = "model (test split)"
    return pd.DataFrame(
        [
            {"metric": "ROC-AUC", model: measured["roc_auc"], "baseline": 0.5},
            {"metric": "PR-AUC", model: measured["pr_auc"], "baseline": measured["pr_auc_baseline"]},
            {
                "metric": "accuracy at the threshold",
                model: measured["accuracy"],
                "baseline": measured["accuracy_majority_baseline"],
            },
            {"metric": "F1 at the threshold", model: measured["f1"], "baseline": 0.0},
            {
                "metric": "precision at the threshold",
                model: measured["precision"],
                "baseline": measured["pr_auc_baseline"],
            },
            {"metric": "recall at the threshold", model: measured["recall"], "baseline": 0.0},
            {"metric": "lift in top decile", model: measured["lift_top_decile"], "baseline": 1.0},
            {
                "metric": "Brier score",
                model: measured["brier"],
                "baseline": float(y.mean() * (1 - y.mean())),
            },
            {"metric": "expected calibration error", model: measured["ece"], "baseline": 0.0},
        ]
    )


def model_card(
    version: ModelVersion,
    test: pd.DataFrame,
    proba: np.ndarray,
    explanation: dict | None = None,
) -> str:
    """Markdown: data, intended use, features, metrics beside baselines, threshold, calibration,
    segments, serving, explanations, fairness, limits.

    `proba` are the version's scores for the rows of `test` (the held-out test split); every
    metric is measured from them, so no validation figure reaches the card's headline.
    """
    y = (test[TARGET] == "yes").to_numpy(dtype=int)
    threshold = float(version.tags["threshold"])
    tags = version.tags
    measured = classification_metrics(y, proba, threshold)
    measured["called_share"] = float((np.asarray(proba) >= threshold).mean())
    segments = {
        "age band": pd.cut(test["age"], AGE_BANDS, labels=AGE_LABELS).astype(str),
        "job": test["job"],
        "contact": test["contact"],
    }
    metric_rows = _metric_rows(measured, y)
    sections = [
        f"# Model card — {version.name} version {version.version}",
        f"Candidate `{tags.get('candidate')}` from training run `{tags.get('training_run_id')}`, "
        f"MLflow run `{version.run_id}`, git commit `{tags.get('git_commit')}`.",
        "## Data",
        f"- Data version (sha256 of the validated rows): `{tags.get('data_version')}`"
        f"{' — **synthetic data**' if tags.get('synthetic') == 'true' else ''}",
        f"- Prepared data: `{tags.get('prepared_id')}`; metrics below are on its held-out test "
        f"split ({len(test):,} customers, {y.mean():.1%} subscribed).",
        "## Intended use",
        "Rank customers of a retail bank by their probability of subscribing to a term deposit "
        "if called in a telemarketing campaign, to decide whom to call first. The score is a "
        "calibrated probability; the decision threshold "
        f"**{threshold:.4f}** was chosen on the validation split. Not for credit, pricing or any "
        "decision about a customer's eligibility for a product.",
        "## Features",
        "Raw customer and campaign attributes known before the call: "
        + ", ".join(f"`{f}`" for f in FEATURES)
        + ". Derived inside the model: "
        "`contacted_before` (pdays ≠ −1) and `day_of_year`.",
        f"Excluded: {', '.join(f'`{c}`' for c in LEAKY_COLUMNS)} — the length of the call is only "
        "known after the call has ended, so it cannot inform whom to call.",
        "## Metrics on the test split",
        _markdown(metric_rows),
        "## Threshold",
        _threshold_section(tags, measured),
        "## Calibration",
        f"Expected calibration error {expected_calibration_error(y, proba):.4f}; "
        f"mean score {proba.mean():.4f} vs observed rate {y.mean():.4f}.",
        _markdown(calibration_table(y, proba)),
        "## Performance by segment",
        *[
            f"### {label}\n{_markdown(segment_table(test, proba, threshold, by))}"
            for label, by in segments.items()
        ],
        "## Serving",
        _serving_section(tags),
        "## What drives the score",
        _explanation_section(explanation),
        "## Fairness by segment",
        _fairness_section(test, y, proba, threshold),
        "## Limits",
        "- Trained on campaigns of one Portuguese bank, May 2008 – Nov 2010; the data has no "
        "year, and success rates moved strongly with the month (season and economic context).",
        "- Months absent from the training window are scored without any month effect: "
        "monitor drift and retrain when later periods arrive.",
        "- Segments with few customers (see the tables) have unreliable metrics.",
        "- Scores rank customers for calls; they do not say why a customer subscribes.",
    ]
    return "\n\n".join(sections) + "\n"
