"""The challenger's sticky assignment and the two versions' comparison (DeLong's test, Holm's correction)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

from bankmarketing.challenger import (
    assigned_to_challenger,
    challenger_bucket,
    compare_versions,
    correct_for_periods,
    correct_stored_family,
    delong_test,
    holm_adjusted,
    stored_comparisons,
)
from bankmarketing.database import engine_for, monitoring_challenger
from tests.conftest import migrated


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


def test_holm_adjusts_p_values_as_worked_by_hand():
    # sorted: 0.01 (x4 = 0.04), 0.03 (x3 = 0.09), 0.04 (x2 = 0.08, raised to 0.09), 0.20 (x1 = 0.20)
    assert holm_adjusted([0.01, 0.04, 0.03, 0.20]) == pytest.approx([0.04, 0.09, 0.09, 0.20], abs=1e-12)
    # capped at 1, and the running maximum keeps the order of the raw p-values
    assert holm_adjusted([0.5, 0.6]) == pytest.approx([1.0, 1.0], abs=1e-12)
    assert holm_adjusted([0.03]) == pytest.approx([0.03], abs=1e-12)  # a family of one: unchanged
    assert holm_adjusted([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_adjusted([0.2, float("nan")])


def period(difference: float, p_value: float) -> dict:
    return {"roc_auc_difference": difference, "p_value": p_value, "verdict": "as stored"}


def test_a_period_significant_alone_is_not_significant_among_seven():
    # the season scenario's raw p-values as docs/challenger.md prints them: test, jun ... nov
    raw = [0.36, 0.12, 0.09, 0.008, 0.12, 0.30, 0.002]
    differences = [0.0032, -0.0070, 0.0086, 0.0126, -0.0157, -0.0086, 0.0165]
    corrected = correct_for_periods([period(d, p) for d, p in zip(differences, raw, strict=True)])
    assert [c["p_value"] for c in corrected] == raw  # the raw p is kept beside the adjusted one
    assert [c["p_adjusted"] for c in corrected] == pytest.approx(
        [0.60, 0.48, 0.45, 0.048, 0.48, 0.60, 0.014], abs=1e-12
    )
    assert [c["verdict"] for c in corrected] == ["no significant difference"] * 3 + ["challenger better"] + [
        "no significant difference"
    ] * 2 + ["challenger better"]

    # p = 0.02 alone says "challenger better"; beside two more tests (x3 = 0.06) it does not
    alone = correct_for_periods([period(0.01, 0.02)])
    assert alone[0]["verdict"] == "challenger better" and alone[0]["p_adjusted"] == pytest.approx(0.02)
    among = correct_for_periods([period(0.01, 0.02), period(-0.004, 0.30), period(0.002, 0.60)])
    assert among[0]["p_value"] == 0.02 and among[0]["p_adjusted"] == pytest.approx(0.06)
    assert among[0]["verdict"] == "no significant difference"
    strong = correct_for_periods([period(-0.03, 0.001), period(0.01, 0.02), period(0.0, 0.9)])
    assert strong[0]["verdict"] == "production better"  # 0.003: still significant


def test_correction_applies_to_real_comparisons_and_skips_one_class_periods():
    y, weak, strong = scored(signal=(0.3, 2.0))
    y_close, first, second = scored(seed=5, rows=300, signal=(1.0, 1.05))
    one_class = compare_versions(np.zeros(50), np.random.rand(50), np.random.rand(50), 0.5, 0.5)
    comparisons = [
        compare_versions(y, weak, strong, 0.5, 0.5),
        compare_versions(y_close, first, second, 0.5, 0.5),
        one_class,
    ]
    corrected = correct_for_periods(comparisons)
    assert corrected[0]["verdict"] == "challenger better" and corrected[0]["p_adjusted"] < 0.05
    # two tests: the smaller p doubled, the larger one kept (it is above the doubled smaller one)
    assert corrected[0]["p_adjusted"] == pytest.approx(2 * comparisons[0]["p_value"], abs=1e-15)
    assert corrected[1]["p_adjusted"] == pytest.approx(comparisons[1]["p_value"], abs=1e-15)
    assert corrected[2]["verdict"] == one_class["verdict"] and corrected[2]["p_adjusted"] is None
    assert "p_adjusted" not in comparisons[0]  # the inputs are left as they were


def test_stored_comparisons_are_corrected_per_pair_and_source(tmp_path):
    database = migrated(f"sqlite:///{tmp_path / 'platform.db'}")
    empty = {c.name: None for c in monitoring_challenger.columns if c.name != "id"}
    families = {("batch", 2): [0.02, 0.30, 0.60], ("log", 2): [0.02], ("batch", 3): [0.01, 0.04, 0.03, 0.20]}
    rows = []
    for (source, challenger), p_values in families.items():
        for month, p in enumerate(p_values, start=6):
            start = dt.datetime(2025, month, 1, tzinfo=dt.UTC)
            rows.append(
                empty
                | {
                    "model_name": "m",
                    "production_version": 1,
                    "challenger_version": challenger,
                    "period": f"{source}-v{challenger}-{month}",
                    "period_start": start,
                    "period_end": start + dt.timedelta(days=30),
                    "computed_at": start,
                    "source": source,
                    "scored_rows": 100,
                    "labelled_rows": 100,
                    "positives": 10,
                    "roc_auc_difference": 0.01,
                    "p_value": p,
                    "verdict": "challenger better" if p < 0.05 else "no significant difference",
                }
            )
    may = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    one_class = {"period": "batch-v2-5", "period_start": may, "roc_auc_difference": None, "p_value": None}
    rows.append(rows[0] | one_class | {"verdict": "not comparable: one class"})
    with engine_for(database).begin() as connection:
        connection.execute(sa.insert(monitoring_challenger), rows)

    found = {c["period"]: c for c in stored_comparisons(database, "m")}
    assert len(found) == 9
    batch_2 = [found[f"batch-v2-{m}"] for m in (6, 7, 8)]
    assert [c["p_value"] for c in batch_2] == [0.02, 0.30, 0.60]  # raw, as stored
    assert [c["p_adjusted"] for c in batch_2] == pytest.approx([0.06, 0.60, 0.60], abs=1e-12)
    assert batch_2[0]["verdict"] == "no significant difference"  # stored "better" at 0.02; 0.06 among three
    assert found["log-v2-6"]["verdict"] == "challenger better"  # the log is a family of its own
    assert found["log-v2-6"]["p_adjusted"] == pytest.approx(0.02, abs=1e-12)
    batch_3 = [found[f"batch-v3-{m}"] for m in (6, 7, 8, 9)]  # challenger v3: its own four periods
    assert [c["p_adjusted"] for c in batch_3] == pytest.approx([0.04, 0.09, 0.09, 0.20], abs=1e-12)
    assert [c["verdict"] for c in batch_3] == ["challenger better"] + ["no significant difference"] * 3
    assert found["batch-v2-5"]["p_adjusted"] is None
    assert found["batch-v2-5"]["verdict"] == "not comparable: one class"
    # the newest period only, still judged within its whole family
    (newest,) = stored_comparisons(database, "m", limit=1)
    assert newest["period"] == "batch-v3-9" and newest["p_adjusted"] == pytest.approx(0.20, abs=1e-12)

    # monitor stores the correction with each period it writes: Grafana reads the same verdicts
    with engine_for(database).begin() as connection:
        correct_stored_family(connection, "m", 1, 2, "batch")
        stored = {
            r.period: r
            for r in connection.execute(
                sa.select(monitoring_challenger).where(monitoring_challenger.c.source == "batch")
            )
        }
    assert [stored[f"batch-v2-{m}"].p_adjusted for m in (6, 7, 8)] == pytest.approx([0.06, 0.60, 0.60])
    assert stored["batch-v2-6"].verdict == "no significant difference"
    assert stored["batch-v2-5"].verdict == "not comparable: one class"
    assert stored["batch-v3-6"].p_adjusted is None  # another family: untouched until its own write
