"""The model card's figures at the decision threshold: the test split's, not the validation split's
that chose the threshold (which appears only as such, for comparison)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from bankmarketing.data.schema import TARGET
from bankmarketing.model_card import model_card
from bankmarketing.training.evaluation import classification_metrics

THRESHOLD = 0.25
#: What `train` tagged on the validation split: far from anything the test rows below give.
VALIDATION = {"f1": 0.777, "precision": 0.701, "recall": 0.871, "accuracy": 0.939}
SELECTION = "validation split (chose the threshold)"


@pytest.fixture(scope="module")
def scored(data_csv):
    """3,000 real customers and a hand-made score with some signal: (customers, y, proba)."""
    customers = pd.read_csv(data_csv).sample(3_000, random_state=0).reset_index(drop=True)
    y = (customers[TARGET] == "yes").to_numpy(dtype=int)
    noise = np.random.default_rng(0).normal(0, 0.12, len(y))
    return customers, y, np.clip(0.08 + 0.25 * y + noise, 0.001, 0.999)


def version(validation: dict[str, float] | None = VALIDATION) -> ModelVersion:
    tags = {"threshold": str(THRESHOLD), "candidate": "hand-made", "val_pr_auc": "0.9"}
    tags |= {f"val_{name}": str(value) for name, value in (validation or {}).items()}
    return ModelVersion(
        "m", "3", 0, run_id="run", tags=[ModelVersionTag(key, value) for key, value in tags.items()]
    )


def table(card: str, heading: str) -> dict[str, dict[str, str]]:
    """The first markdown table under `heading`: first column → {other column: cell}."""
    section = card.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = next(b.strip() for b in section.split("\n\n") if b.strip().startswith("|")).splitlines()
    header, *body = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in body if set(row[0]) != {"-"}}


def test_threshold_metrics_are_reported_on_the_test_split(scored):
    customers, y, proba = scored
    test = classification_metrics(y, proba, THRESHOLD)
    assert all(f"{test[k]:.3f}" != f"{v:.3f}" for k, v in VALIDATION.items())  # the test can tell them apart
    card = model_card(version(), customers, proba)

    headline = table(card, "## Metrics on the test split")
    for name, label in [
        ("f1", "F1"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("accuracy", "accuracy"),
    ]:
        assert headline[f"{label} at the threshold"]["model (test split)"] == f"{test[name]:.3f}", name

    at_threshold = table(card, "## Threshold")
    assert f"**{THRESHOLD:.4f}**" in card and "chose it on the **validation split**" in card
    for (name, value), label in zip(
        VALIDATION.items(), ["F1", "precision", "recall", "accuracy"], strict=True
    ):
        assert at_threshold[label]["test split"] == f"{test[name]:.3f}"
        assert at_threshold[label][SELECTION] == f"{value:.3f}"  # labelled as the selection split
        assert card.count(f"{value:.3f}") == 1, name  # and nowhere else on the card
    assert at_threshold["share called"]["test split"] == f"{(proba >= THRESHOLD).mean():.3f}"


def test_without_validation_tags_the_card_shows_the_test_split_alone(scored):
    customers, _, proba = scored
    card = model_card(version(validation=None), customers, proba)
    at_threshold = table(card, "## Threshold")
    assert set(at_threshold["F1"]) == {"test split"} and "validation column" not in card
