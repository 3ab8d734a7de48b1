"""The challenger's sticky assignment and the two versions' comparison (DeLong's test)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bankmarketing.challenger import assigned_to_challenger, challenger_bucket, compare_versions, delong_test


def scored(seed: int = 0, rows: int = 3_000, signal: tuple[float, float] = (0.8, 1.0)):
    """Labels (12 % subscribers) and two noisy scores of them, the second sharper when signal says so."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.12).astype(int)
    first = 1 / (1 + np.exp(-(y * signal[0] + rng.normal(0, 1, rows))))
    second = 1 / (1 + np.exp(-(y * signal[1] + rng.normal(0, 1, rows))))
    return y, first, second


def test_assignment_is_sticky_per_customer_and_takes_the_share():
    customers = [f"customer-{i}" for i in range(20_000)]
    first = assigned_to_challenger(customers, "7", 0.2)
    assert first == assigned_to_challenger(customers, "7", 0.2)  # the same customers every time
    assert np.mean(first) == pytest.approx(0.2, abs=0.01)
    assert not any(assigned_to_challenger(customers, "7", 0.0))
    assert all(assigned_to_challenger(customers, "7", 1.0))
    # a larger share keeps everyone the smaller one had: raising it never moves a customer back
    wider = assigned_to_challenger(customers, "7", 0.3)
    assert all(w for f, w in zip(first, wider, strict=True) if f)
    # a new challenger version draws a new group
    other = assigned_to_challenger(customers, "8", 0.2)
    assert np.mean(np.asarray(first) & np.asarray(other)) == pytest.approx(0.04, abs=0.01)
    assert 0 <= challenger_bucket("anyone", "7") < 1


def test_delong_gives_sklearn_aucs_and_a_standard_error_close_to_the_bootstrap():
    y, first, second = scored()
    test = delong_test(y, first, second)
    assert test["first_roc_auc"] == pytest.approx(roc_auc_score(y, first), abs=1e-12)
    assert test["second_roc_auc"] == pytest.approx(roc_auc_score(y, second), abs=1e-12)
    assert test["roc_auc_difference"] == pytest.approx(test["second_roc_auc"] - test["first_roc_auc"])
    rng = np.random.default_rng(1)
    differences = []
    for _ in range(300):
        sample = rng.integers(0, len(y), len(y))
        differences.append(roc_auc_score(y[sample], second[sample]) - roc_auc_score(y[sample], first[sample]))
    assert test["standard_error"] == pytest.approx(np.std(differences), rel=0.2)
    assert test["ci_low"] < test["roc_auc_difference"] < test["ci_high"]


def test_delong_with_ties_matches_sklearn():
    y, first, second = scored(seed=3, rows=800)
    rounded = np.round(first, 1)  # heavy ties: midranks must count them as half
    test = delong_test(y, rounded, second)
    assert test["first_roc_auc"] == pytest.approx(roc_auc_score(y, rounded), abs=1e-12)


def test_identical_scores_are_not_different_and_a_much_better_one_is():
    y, first, _ = scored()
    same = delong_test(y, first, first)
    assert same["roc_auc_difference"] == 0 and same["p_value"] == 1.0
    y, weak, strong = scored(signal=(0.3, 2.0))
    assert delong_test(y, weak, strong)["p_value"] < 1e-6
    assert delong_test(y, strong, weak)["roc_auc_difference"] < 0


def test_comparison_names_the_better_version_only_when_significant():
    y, weak, strong = scored(signal=(0.3, 2.0))
    better = compare_versions(y, weak, strong, 0.5, 0.5)
    assert better["verdict"] == "challenger better" and better["pr_auc_lift"] > 0
    assert compare_versions(y, strong, weak, 0.5, 0.5)["verdict"] == "production better"
    y, first, second = scored(seed=5, rows=300, signal=(1.0, 1.05))
    close = compare_versions(y, first, second, 0.5, 0.5)
    assert close["verdict"] == "no significant difference" and close["p_value"] >= 0.05
    called = first >= 0.5
    assert close["production_called_share"] == pytest.approx(called.mean())
    assert close["production_precision"] == pytest.approx(y[called].mean())
    assert close["production_recall"] == pytest.approx((called & (y == 1)).sum() / y.sum())


def test_one_class_only_is_not_comparable():
    result = compare_versions(np.zeros(50), np.random.rand(50), np.random.rand(50), 0.5, 0.5)
    assert result["labelled_rows"] == 50 and result["positives"] == 0
    assert result["verdict"].startswith("not comparable") and "p_value" not in result
    with pytest.raises(ValueError, match="subscribers and non-subscribers"):
        delong_test(np.ones(10), np.random.rand(10), np.random.rand(10))
