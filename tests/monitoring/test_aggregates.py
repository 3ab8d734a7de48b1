"""The log's periods in bounded memory: chunked aggregates equal the whole frame's figures, the
sample is uniform and the same in any reading order, small periods are measured as before."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

from bankmarketing.data.schema import CATEGORIES, FEATURES, MISSING
from bankmarketing.monitoring import aggregates
from bankmarketing.monitoring.aggregates import (
    ROW_ID,
    ROW_KEY,
    SCORE_BINS,
    PeriodAggregate,
    Sample,
    ScoreHistogram,
    average_precision_from_histograms,
    exact_period_metrics,
    psi,
    request_keys,
    roc_auc_from_histograms,
    wasserstein_normed,
)
from bankmarketing.monitoring.drift import PREDICTION, TARGET, DriftSettings, PeriodMetrics, labelled_fairness
from bankmarketing.monitoring.missing import missing_by_column, missing_values_share
from bankmarketing.monitoring.monitor import MonitorOptions, measure
from bankmarketing.monitoring.periods import Period, period_start, period_starts

THRESHOLD = 0.3


@pytest.fixture(scope="module")
def customers(data_csv) -> pd.DataFrame:
    """The real customers, some cells emptied (NaN, blank) beside the data's own `unknown`."""
    frame = pd.read_csv(data_csv, keep_default_na=False)[list(FEATURES)]
    for column in CATEGORIES:  # as the loader does: a blank field is the marker
        frame.loc[frame[column].eq(""), column] = MISSING
    rng = np.random.default_rng(5)
    frame.loc[rng.random(len(frame)) < 0.01, "job"] = None
    frame.loc[rng.random(len(frame)) < 0.01, "education"] = " "
    return frame


def _period(customers: pd.DataFrame, rows: int, seed: int = 0, decimals: int | None = None) -> pd.DataFrame:
    """`rows` logged predictions of drawn customers: a score, an outcome for ~30 %, id and key."""
    rng = np.random.default_rng(seed)
    frame = customers.iloc[rng.integers(0, len(customers), rows)].reset_index(drop=True)
    scores = rng.beta(1.2, 6, rows)
    frame[PREDICTION] = np.round(scores, decimals) if decimals is not None else scores
    known = rng.random(rows) < 0.3
    subscribed = (rng.random(rows) < frame[PREDICTION]).astype(float)
    frame[TARGET] = np.where(known, subscribed, np.nan)
    frame[ROW_ID] = np.arange(rows) + 1000
    frame[ROW_KEY] = request_keys(f"request-{seed}-{i}" for i in range(rows))
    return frame


def _aggregate(frame: pd.DataFrame, chunk_rows: int, sample_rows: int = 500, order=None) -> PeriodAggregate:
    aggregate = PeriodAggregate(THRESHOLD, sample_rows)
    rows = frame if order is None else frame.iloc[order]
    for first in range(0, len(rows), chunk_rows):
        aggregate.add(rows.iloc[first : first + chunk_rows])
    return aggregate


def _reference(customers: pd.DataFrame) -> np.ndarray:
    return np.random.default_rng(9).beta(1.5, 7, 4000)


def test_chunked_counts_equal_the_whole_frames(customers):
    frame = _period(customers, 20_000)
    aggregate = _aggregate(frame, chunk_rows=3_001)
    assert aggregate.rows == len(frame)
    assert aggregate.missing_by_column() == missing_by_column(frame)
    assert aggregate.missing_values_share() == pytest.approx(missing_values_share(frame), abs=1e-15)
    labelled = frame[frame[TARGET].notna()]
    y, score = labelled[TARGET].to_numpy(dtype=int), labelled[PREDICTION].to_numpy()
    performance = aggregate.performance()
    assert (performance["labelled_rows"], performance["positives"]) == (len(labelled), int(y.sum()))
    assert performance["precision"] == pytest.approx(precision_score(y, score >= THRESHOLD), abs=1e-15)
    assert performance["recall"] == pytest.approx(recall_score(y, score >= THRESHOLD), abs=1e-15)
    assert performance["predicted_positive_share"] == pytest.approx(np.mean(score >= THRESHOLD), abs=1e-15)
    expected = labelled_fairness(frame, THRESHOLD)
    got = aggregate.fairness_rows()
    assert [(r["dimension"], r["group_name"]) for r in got] == [
        (r["dimension"], r["group_name"]) for r in expected
    ]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == pytest.approx(theirs, abs=1e-12), mine["group_name"]


def test_roc_and_pr_auc_from_histograms_are_exact_when_each_bin_holds_one_score(customers):
    """Scores on a grid coarser than the bins: every tie is a real tie, as scikit-learn counts it."""
    frame = _period(customers, 20_000, seed=1, decimals=3)
    labelled = frame[frame[TARGET].notna()]
    y, score = labelled[TARGET].to_numpy(dtype=int), labelled[PREDICTION].to_numpy()
    performance = _aggregate(frame, chunk_rows=4_999).performance()
    assert performance["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert performance["pr_auc"] == pytest.approx(average_precision_score(y, score), abs=1e-12)


def test_roc_and_pr_auc_of_continuous_scores_are_within_the_bins_ties(customers):
    frame = _period(customers, 20_000, seed=2)
    labelled = frame[frame[TARGET].notna()]
    y, score = labelled[TARGET].to_numpy(dtype=int), labelled[PREDICTION].to_numpy()
    performance = _aggregate(frame, chunk_rows=7_000).performance()
    assert performance["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-4)
    assert performance["pr_auc"] == pytest.approx(average_precision_score(y, score), abs=1e-4)


def test_auc_helpers_on_hand_made_histograms():
    positives, negatives = np.zeros(SCORE_BINS), np.zeros(SCORE_BINS)
    positives[[10, 30]] = 1
    negatives[[10, 20]] = 1
    # pairs: (10 vs 10) tie 0.5, (10 vs 20) loss, (30 vs 10) win, (30 vs 20) win -> 2.5 / 4
    assert roc_auc_from_histograms(positives, negatives) == 0.625
    y = np.array([1, 1, 0, 0])
    assert average_precision_from_histograms(positives, negatives) == pytest.approx(
        average_precision_score(y, np.array([10, 30, 10, 20]))
    )


def test_the_rule_statistic_from_the_histogram_is_evidentlys_on_every_row(customers):
    """Evidently's `wasserstein`: scipy's distance over the reference's std (at least 0.001)."""
    reference = _reference(customers)
    for decimals, tolerance in ((3, 1e-12), (None, 1 / SCORE_BINS / np.std(reference))):
        scores = _period(customers, 30_000, seed=3, decimals=decimals)[PREDICTION].to_numpy()
        histogram = ScoreHistogram()
        for part in np.array_split(scores, 7):
            histogram.add(part)
        whole = stats.wasserstein_distance(reference, scores) / max(np.std(reference), 0.001)
        assert wasserstein_normed(reference, histogram) == pytest.approx(whole, abs=tolerance)
        assert (histogram.low, histogram.high, histogram.rows) == (scores.min(), scores.max(), len(scores))


def _evidently_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently 0.4's `psi` of a numerical column (`get_binned_data`, Sturges bins, zeros filled)."""
    bins = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    shares = []
    for values in (reference, current):
        percents = np.histogram(values, bins)[0] / len(values)
        smallest = percents[percents != 0].min()
        np.place(percents, percents == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
        shares.append(percents)
    return float(np.sum((shares[0] - shares[1]) * np.log(shares[0] / shares[1])))


def test_psi_from_the_histogram_is_evidentlys(customers):
    reference = _reference(customers)
    scores = _period(customers, 30_000, seed=4)[PREDICTION].to_numpy()
    histogram = ScoreHistogram()
    histogram.add(scores)
    assert psi(reference, histogram) == pytest.approx(_evidently_psi(reference, scores), rel=1e-3)
    assert psi(np.repeat([0.1, 0.2], 50), histogram) is None  # few distinct reference scores: rows needed


def test_the_sample_is_the_same_in_any_reading_order_and_bounded(customers):
    frame = _period(customers, 12_000, seed=5)
    first = _aggregate(frame, chunk_rows=1_000, sample_rows=800)
    shuffled = np.random.default_rng(0).permutation(len(frame))
    second = _aggregate(frame, chunk_rows=2_777, sample_rows=800, order=shuffled)
    columns = [*FEATURES, PREDICTION, TARGET, ROW_ID]
    one, other = first.sample.rows(columns), second.sample.rows(columns)
    assert len(one) == 800
    pd.testing.assert_frame_equal(one, other)
    assert one[ROW_ID].is_monotonic_increasing  # in log order
    # the sample is the 800 smallest keys
    smallest = np.sort(frame[ROW_KEY].to_numpy())[:800]
    assert set(first.sample.frame[ROW_KEY]) == set(smallest)


def test_the_sample_is_uniform(customers):
    """Neither the position in the log nor the score decides who is sampled."""
    frame = _period(customers, 40_000, seed=6)
    sampled = _aggregate(frame, chunk_rows=5_000, sample_rows=4_000).sample.rows([PREDICTION, ROW_ID])
    position = (sampled[ROW_ID] - 1000) / len(frame)
    assert stats.kstest(position, "uniform").pvalue > 0.01
    assert stats.ks_2samp(sampled[PREDICTION], frame[PREDICTION]).pvalue > 0.01


def test_a_small_period_is_its_own_sample(customers):
    frame = _period(customers, 300, seed=7)
    aggregate = _aggregate(frame, chunk_rows=64, sample_rows=500)
    pd.testing.assert_frame_equal(aggregate.sample.rows(list(frame.columns)), frame)


def test_sample_keeps_ties_of_keys_by_id():
    rows = pd.DataFrame(
        {ROW_ID: [5, 3, 4, 1], ROW_KEY: np.array([7, 7, 7, 9], dtype=np.uint64), "x": list("abcd")}
    )
    sample = Sample(2)
    sample.add(rows.iloc[:2])
    sample.add(rows.iloc[2:])
    assert sample.rows(["x", ROW_ID])[ROW_ID].tolist() == [3, 4]


@pytest.mark.parametrize("granularity", ["hour", "day", "week"])
def test_period_starts_are_the_period_start_of_each_instant(granularity):
    instants = pd.Series(
        pd.to_datetime(
            [
                "2026-11-01T23:59:59.999999Z",
                "2026-11-02T00:00:00Z",
                "2026-11-04T13:30:00.5Z",
                "2026-11-08T23:00:00Z",
            ],
            utc=True,
            format="ISO8601",
        )
    )
    expected = [period_start(moment.to_pydatetime(), granularity) for moment in instants]
    assert [start.to_pydatetime() for start in period_starts(instants, granularity)] == expected


def test_a_large_period_below_min_rows_gets_the_whole_periods_counts(customers, tmp_path):
    frame = _period(customers, 3_000, seed=8)
    aggregate = _aggregate(frame, chunk_rows=1_000, sample_rows=500)
    start = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    sample = aggregate.sample.rows([*FEATURES, PREDICTION, TARGET])
    period = Period("2026-11-02", start, start + dt.timedelta(days=1), "log", 1, sample, aggregate)
    metrics = measure(period, pd.DataFrame(), THRESHOLD, MonitorOptions(min_rows=5_000), tmp_path)
    assert metrics.rows == 3_000 and metrics.prediction_drift_score is None and metrics.column_drift == []
    assert metrics.missing_by_column == missing_by_column(frame)
    assert metrics.performance["labelled_rows"] == int(frame[TARGET].notna().sum())
    assert metrics.fairness == aggregate.fairness_rows()


def test_missing_counts_see_the_marker_blank_and_empty(customers):
    frame = _period(customers, 5_000, seed=9)
    counts = _aggregate(frame, chunk_rows=999).missing
    job = FEATURES.index("job")
    expected = (frame["job"].isna() | frame["job"].eq(MISSING)).sum()
    assert counts[job] == expected and counts[FEATURES.index("education")] > 0


def test_whole_period_stattests_name_an_effect_size():
    """The rule's statistic must stay an effect size: a p-value test would flag every large day."""
    assert aggregates.WHOLE_PERIOD_STATTESTS == ("wasserstein",)
    assert MonitorOptions().prediction_stattest in aggregates.WHOLE_PERIOD_STATTESTS


def test_a_large_periods_metrics_take_the_whole_periods_figures_over_the_samples(customers):
    frame = _period(customers, 6_000, seed=10)
    aggregate = _aggregate(frame, chunk_rows=1_000, sample_rows=500)
    reference = _reference(customers)
    on_sample = PeriodMetrics(
        rows=500,
        missing_values_share=0.5,
        prediction_drift_score=9.0,
        prediction_stattest="Wasserstein distance (normed)",
        prediction_drift_threshold=0.1,
        prediction_drift_detected=True,
        prediction_psi=9.0,
        columns=15,
        drifted_columns=3,
        column_drift=[{"column_name": "age"}],
        missing_by_column=[],
        performance={"labelled_rows": 1},
    )
    metrics = exact_period_metrics(on_sample, aggregate, reference, DriftSettings())
    whole = stats.wasserstein_distance(reference, frame[PREDICTION]) / np.std(reference)
    assert metrics.rows == 6_000 and metrics.missing_by_column == missing_by_column(frame)
    assert metrics.missing_values_share == pytest.approx(missing_values_share(frame))
    assert metrics.prediction_drift_score == pytest.approx(whole, abs=1e-5)
    assert metrics.prediction_drift_detected == (whole >= 0.1)
    assert metrics.prediction_psi == pytest.approx(
        _evidently_psi(reference, frame[PREDICTION].to_numpy()), rel=1e-3
    )
    assert metrics.performance == aggregate.performance()
    assert (metrics.drifted_columns, metrics.column_drift) == (3, [{"column_name": "age"}])  # the sample's
    # a p-value test is left as the sample gave it: the histogram holds no such statistic
    kept = exact_period_metrics(on_sample, aggregate, reference, DriftSettings(prediction_stattest="ks"))
    assert (kept.prediction_drift_score, kept.prediction_drift_detected) == (9.0, True)
