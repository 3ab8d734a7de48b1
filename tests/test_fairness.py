"""Fairness by segment: the per-group measures and the gaps, on hand-made customers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bankmarketing.data.loading import read_raw
from bankmarketing.fairness import (
    JOB_GROUPS,
    FairnessOptions,
    fairness_gaps,
    fairness_report,
    fairness_rows,
    largest_gap,
)
from bankmarketing.registry import client_for


def _customers(n_young: int, n_old: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30] * n_young + [70] * n_old,
            "marital": ["single"] * n_young + ["married"] * n_old,
            "job": ["student"] * n_young + ["retired"] * n_old,
        }
    )


def test_measures_per_group_are_what_the_definitions_give():
    customers = _customers(200, 200)
    # Young: 40 subscribers, 20 of them called; 10 non-subscribers called. Old: 40 subscribers, all called.
    y = np.array([1] * 40 + [0] * 160 + [1] * 40 + [0] * 160)
    proba = np.array([0.9] * 20 + [0.1] * 20 + [0.8] * 10 + [0.2] * 150 + [0.7] * 40 + [0.1] * 160)
    table = pd.DataFrame(fairness_rows(customers, y, proba, 0.5)).set_index(["dimension", "group"])
    young, old = table.loc[("age band", "26-35")], table.loc[("age band", "66+")]
    assert (young["rows"], young["positives"]) == (200, 40)
    assert (young["selection_rate"], old["selection_rate"]) == pytest.approx((30 / 200, 40 / 200))
    assert (young["true_positive_rate"], old["true_positive_rate"]) == pytest.approx((0.5, 1.0))
    expected_mean = (20 * 0.9 + 20 * 0.1 + 10 * 0.8 + 150 * 0.2) / 200
    assert young["calibration"] == pytest.approx(expected_mean - 0.2)
    assert table.loc[("job group", "not working"), "rows"] == 400  # students and the retired
    gaps = fairness_gaps(fairness_rows(customers, y, proba, 0.5))
    tpr = gaps[(gaps["dimension"] == "age band") & (gaps["measure"] == "true_positive_rate")].iloc[0]
    assert tpr["gap"] == pytest.approx(0.5) and (tpr["lowest"], tpr["highest"]) == ("26-35", "66+")
    assert largest_gap(gaps, "true_positive_rate") == (pytest.approx(0.5), "age band")


def test_small_groups_are_shown_but_left_out_of_the_gaps():
    customers = _customers(300, 30)  # 30 old customers: fewer than the 100 a group needs
    y = np.array([1] * 60 + [0] * 240 + [1] * 10 + [0] * 20)
    proba = np.where(np.arange(330) < 300, 0.9, 0.0)  # the old are never called
    rows = fairness_rows(customers, y, proba, threshold=0.5)
    assert not pd.DataFrame(rows).set_index(["dimension", "group"]).loc[("age band", "66+"), "counted"]
    gaps = fairness_gaps(rows)
    assert largest_gap(gaps, "selection_rate") == (0.0, "age band")  # one counted group: no gap


def test_every_job_in_the_data_has_a_group(data_csv):
    assert set(read_raw(data_csv)["job"].unique()) <= set(JOB_GROUPS)


@pytest.mark.integration
def test_the_report_gives_the_gaps_per_split_and_agrees_with_the_gate(served, tmp_path):
    settings, versions, _ = served
    chart = tmp_path / "gaps.png"
    report = fairness_report(settings, FairnessOptions(splits=["test", "jun"], chart=str(chart)))
    assert report["model_version"] == versions["production"]
    gaps = pd.DataFrame(report["gaps"])
    assert len(gaps) == 2 * 3 * 3 and gaps["gap"].between(0, 1).all()  # splits x dimensions x measures
    assert chart.read_bytes().startswith(b"\x89PNG")
    registry = client_for(settings.tracking_uri)
    tagged = registry.get_model_version(settings.model_name, versions["production"])
    gap, dimension = tagged.tags["fairness_true_positive_rate_gap"].split(" ", 1)
    on_test = gaps[(gaps["split"] == "test") & (gaps["measure"] == "true_positive_rate")]
    largest = on_test.loc[on_test["gap"].idxmax()]
    assert (round(largest["gap"], 6), f"({largest['dimension']})") == (float(gap), dimension)
