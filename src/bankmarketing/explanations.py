"""Explanations at scale: what drives a version's scores overall, and each customer's top reasons.

Both come from the version's per-field contributions (`Scorer.explain`: exact TreeSHAP for tree
ensembles, a linear model's terms, permutation Shapley values for MLP and SVC) to its output
before calibration (`Scorer.explained_output`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bankmarketing.data.schema import FEATURES
from bankmarketing.scoring import Scorer

#: The fields whose effect on the score is shown in detail (the issue's "dependence").
DEPENDENCE_FIELDS = ("age", "balance", "poutcome")
#: The artifact each promoted version carries (on its MLflow run) and the predictor serves.
EXPLANATION_ARTIFACT = "explanation.json"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame[list(FEATURES)].to_dict("records")


#: Customers a global explanation averages over: exact contributions are cheap; a Shapley
#: estimate costs a few hundred model evaluations per customer.
EXACT_SAMPLE_ROWS, SAMPLED_SAMPLE_ROWS = 5_000, 200


def global_explanation(
    scorer: Scorer, customers: pd.DataFrame, sample_rows: int | None = None, seed: int = 0
) -> dict:
    """Mean absolute contribution per field (largest first), and the score's dependence on
    age, balance and the previous campaign's outcome, over a sample of `customers`.

    Raises `ExplanationUnavailable` for a version without contributions.
    """
    if sample_rows is None:
        sample_rows = EXACT_SAMPLE_ROWS if scorer.exact_explanations else SAMPLED_SAMPLE_ROWS
    sample = customers.sample(min(sample_rows, len(customers)), random_state=seed).reset_index(drop=True)
    contributions = pd.DataFrame(scorer.explain(_records(sample))).drop(columns="bias")
    scores = scorer.score_frame(sample)
    importance = contributions.abs().mean().sort_values(ascending=False)
    dependence = {}
    for field in DEPENDENCE_FIELDS:
        values = sample[field]
        if pd.api.types.is_numeric_dtype(values):  # deciles, in order
            edges = np.unique(np.quantile(values, np.linspace(0, 1, 11)))
            bins = pd.cut(values, edges, include_lowest=True)
        else:
            bins = values.astype(str)
        table = pd.DataFrame({"bin": bins, "score": scores, "contribution": contributions[field]})
        grouped = table.groupby("bin", observed=True).agg(
            rows=("score", "size"), mean_score=("score", "mean"), mean_contribution=("contribution", "mean")
        )
        dependence[field] = [
            {
                "bin": str(b),
                "rows": int(r.rows),
                "mean_score": float(r.mean_score),
                "mean_contribution": float(r.mean_contribution),
            }
            for b, r in grouped.iterrows()
        ]
    return {
        "rows": len(sample),
        "method": scorer.explanation_method,
        "output": scorer.explained_output,
        "importance": [{"feature": f, "mean_abs_contribution": float(v)} for f, v in importance.items()],
        "dependence": dependence,
    }


def top_reasons(
    records: Sequence[Mapping[str, Any]], contributions: Sequence[Mapping[str, float]], count: int = 3
) -> list[list[str]]:
    """Per customer, the `count` fields that raise the score most, as "field=value (+0.42)"."""
    reasons = []
    for record, parts in zip(records, contributions, strict=True):
        raising = sorted(((v, f) for f, v in parts.items() if f != "bias" and v > 0), reverse=True)
        reasons.append([f"{f}={record[f]} (+{v:.2f})" for v, f in raising[:count]])
    return reasons
