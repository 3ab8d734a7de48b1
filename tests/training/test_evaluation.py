"""Metrics and thresholds on small cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bankmarketing.training import evaluation


def test_ece_is_zero_when_scores_match_observed_rates():
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    proba = np.array([0.25] * 4 + [0.75] * 4)
    assert evaluation.expected_calibration_error(y, proba) == pytest.approx(0.0)


def test_ece_of_an_overconfident_model():
    y = np.array([0, 0, 1, 1])
    proba = np.array([0.9, 0.9, 0.9, 0.9])  # observed 0.5 in the only bin
    assert evaluation.expected_calibration_error(y, proba) == pytest.approx(0.4)


def test_lift_of_a_perfect_ranking():
    y = np.array([1] + [0] * 9 + [1] * 0)
    proba = np.linspace(1, 0, 10)
    assert evaluation.lift_at(y, proba, 0.1) == pytest.approx(10.0)


def test_f1_threshold_separates_perfectly_separable_scores():
    y = np.array([0, 0, 0, 1, 1])
    proba = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    threshold = evaluation.choose_threshold(y, proba, "f1")
    assert 0.3 < threshold <= 0.8
    assert evaluation.classification_metrics(y, proba, threshold)["f1"] == 1.0


def test_profit_threshold_calls_everyone_when_calls_are_free():
    y = np.array([0, 1, 0, 1])
    proba = np.array([0.1, 0.2, 0.3, 0.4])
    assert evaluation.choose_threshold(y, proba, "profit", 0.0, 10.0) == pytest.approx(0.1)
    # a call costing more than a subscription is worth: calling only the best is least bad
    assert evaluation.choose_threshold(y, proba, "profit", 20.0, 10.0) == pytest.approx(0.4)


def test_metrics_report_the_majority_baseline():
    y = np.array([0] * 9 + [1])
    metrics = evaluation.classification_metrics(y, np.full(10, 0.1), 0.5)
    assert metrics["accuracy"] == metrics["accuracy_majority_baseline"] == 0.9
    assert metrics["pr_auc_baseline"] == pytest.approx(0.1)
    assert metrics["recall"] == 0.0
