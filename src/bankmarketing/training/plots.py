"""Evaluation plots logged with every candidate (matplotlib, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve  # noqa: E402


def save_figure(figure: Figure, path: Path, title: str) -> None:
    """Give a chart its title, lay it out, write it as PNG (creating folders) and free it."""
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _axes(title: str, xlabel: str, ylabel: str):
    figure, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return figure, ax


def evaluation_figures(
    y_true: np.ndarray, proba: np.ndarray, threshold: float, importance: dict[str, float], label: str
) -> dict[str, Figure]:
    """ROC, PR, calibration, cumulative gains, confusion matrix and feature importance."""
    figures = {}
    fig, ax = _axes(f"ROC — {label}", "false positive rate", "true positive rate")
    fpr, tpr, _ = roc_curve(y_true, proba)
    ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax.legend(loc="lower right")
    figures["roc.png"] = fig

    fig, ax = _axes(f"Precision-recall — {label}", "recall", "precision")
    precision, recall, _ = precision_recall_curve(y_true, proba)
    ax.plot(recall, precision, label=label)
    ax.axhline(y_true.mean(), linestyle="--", color="grey", label="base rate")
    ax.legend(loc="upper right")
    figures["precision_recall.png"] = fig

    fig, ax = _axes(f"Calibration — {label}", "mean predicted probability", "observed subscription rate")
    observed, predicted = calibration_curve(y_true, proba, n_bins=10, strategy="quantile")
    ax.plot(predicted, observed, "o-", label=label)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    ax.legend(loc="upper left")
    figures["calibration.png"] = fig

    fig, ax = _axes(
        f"Cumulative gains — {label}", "share of customers called", "share of subscribers reached"
    )
    order = np.argsort(-proba, kind="stable")
    gains = np.concatenate([[0], np.cumsum(y_true[order]) / y_true.sum()])
    ax.plot(np.linspace(0, 1, len(gains)), gains, label=label)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax.legend(loc="lower right")
    figures["cumulative_gains.png"] = fig

    fig, ax = _axes(f"Confusion matrix at {threshold:.3f}", "predicted", "actual")
    matrix = confusion_matrix(y_true, proba >= threshold, labels=[0, 1])
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{count:,}", ha="center", va="center")
    ax.set_xticks([0, 1], ["no call", "call"])
    ax.set_yticks([0, 1], ["no", "yes"])
    figures["confusion_matrix.png"] = fig

    top = sorted(importance.items(), key=lambda kv: kv[1])[-15:]
    fig, ax = plt.subplots(figsize=(7, 5), dpi=100)
    ax.barh([name for name, _ in top], [value for _, value in top])
    ax.set(title=f"Permutation importance — {label}", xlabel="mean drop in validation PR-AUC")
    fig.tight_layout()
    figures["feature_importance.png"] = fig
    return figures
