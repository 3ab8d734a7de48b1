"""bench/season.py: the season backtest's table, its final line and rows neither model trained on."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bankmarketing.data import identity
from bankmarketing.data.loading import read_raw
from bankmarketing.data.validation import validate
from bankmarketing.training.train import TrainOptions
from tests.conftest import bench_module

REPO = Path(__file__).resolve().parents[1]
FINAL_LINE = re.compile(r"season backtest: mean_delta_roc_auc=-?\d\.\d{3} months=\d+ overlap_rows=0")


@pytest.fixture(scope="module")
def season():
    return bench_module("season")


@pytest.fixture(scope="module")
def sample(data_csv: Path) -> pd.DataFrame:
    """Up to 250 rows of each month of the real data."""
    frame = validate(read_raw(data_csv)).clean
    return pd.concat(
        part.sample(min(len(part), 250), random_state=0) for _, part in frame.groupby("month", sort=False)
    )


def test_backtest_scores_jul_to_nov_on_unseen_rows(season, sample, tmp_path):
    results = season.backtest(sample, options=TrainOptions(trials=1, timeout_s=10), log=lambda _: None)

    assert [r["month"] for r in results] == ["jul", "aug", "sep", "oct", "nov"]
    for r in results:
        assert r["rows"] == (sample["month"] == r["month"]).sum() - r["dropped_rows"] > 0
        assert r["overlap_rows"] == 0
        assert 0 < r["stale_roc_auc"] < 1 and 0 < r["retrained_roc_auc"] < 1
        assert r["delta"] == pytest.approx(r["retrained_roc_auc"] - r["stale_roc_auc"])
    lines = season.table(results).splitlines()
    assert lines[0].split() == list(season.COLUMNS)
    assert [line.split()[0] for line in lines[1:]] == ["jul", "aug", "sep", "oct", "nov"]
    assert all(len(line.split()) == len(season.COLUMNS) for line in lines)
    final = season.summary(results)
    assert FINAL_LINE.fullmatch(final)
    mean = np.mean([r["delta"] for r in results])
    assert final == f"season backtest: mean_delta_roc_auc={mean:.3f} months=5 overlap_rows=0"
    season.plot(results, tmp_path / "season.png", "test")
    assert (tmp_path / "season.png").stat().st_size > 0


class _ByAge:
    """A stand-in model: scores by age, no training."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        score = (X["age"].to_numpy() - 17) / 80
        return np.column_stack([1 - score, score])


def test_rows_a_model_trained_on_are_dropped_before_scoring(season, sample, monkeypatch):
    """If customers could be trained on and scored (identity blind to the month, the same customer
    called in jun and jul), the scored month keeps none of them and overlap_rows stays 0."""
    monkeypatch.setattr(season, "row_ids", lambda frame: identity.row_ids(frame.assign(month="any")))
    monkeypatch.setattr(season, "train_model", lambda candidate, frame, options, calendar: (_ByAge(), 0))
    called_again = sample[sample["month"] == "jun"].head(7).assign(month="jul")
    results = season.backtest(pd.concat([sample, called_again]), log=lambda _: None)

    assert [r["overlap_rows"] for r in results] == [0] * 5
    july = results[0]
    assert july["month"] == "jul" and july["dropped_rows"] >= 7
    assert july["rows"] == (sample["month"] == "jul").sum() + 7 - july["dropped_rows"]
    assert season.summary(results).endswith("months=5 overlap_rows=0")


def test_without_calendar_the_models_never_see_the_call_date(season, sample):
    X, _ = season.model_inputs(sample, calendar=False)
    assert set(X["month"]) == {"may"} and set(X["day_of_week"]) == {15}
    X, _ = season.model_inputs(sample)
    assert X["month"].nunique() == 12  # the default keeps them
