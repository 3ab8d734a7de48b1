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


def test_paired_difference_is_judged_against_the_spread_of_the_folds():
    mean, sd, close = evaluation.paired_difference([0.43, 0.44, 0.42], [0.45, 0.43, 0.44])
    assert (round(mean, 4), round(sd, 4), close) == (-0.01, 0.0173, True)
    mean, sd, close = evaluation.paired_difference([0.39, 0.40, 0.41], [0.45, 0.43, 0.44])
    assert (round(mean, 4), close) == (-0.04, False)


def test_bootstrap_spread_of_a_difference_shrinks_with_more_rows_and_is_zero_for_one_model():
    rng = np.random.default_rng(0)

    def spread(rows: int, same: bool = False) -> float:
        y = rng.integers(0, 2, rows)
        first = np.clip(y * 0.3 + rng.random(rows) * 0.7, 0, 1)
        second = first if same else np.clip(y * 0.2 + rng.random(rows) * 0.8, 0, 1)
        return evaluation.bootstrap_difference_sd(y, first, second, "pr_auc", (0.5, 0.5), resamples=100)

    assert spread(400, same=True) == 0.0
    small, large = spread(400), spread(10_000)
    assert 0 < large < small / 3  # about 1/sqrt(25) = 1/5
