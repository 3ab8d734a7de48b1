"""A period of the prediction log in bounded memory: exact aggregates and a bounded sample.

`monitor` reads a window of the log in chunks (`log_scan.read_log`). Per (period, model
version) it keeps what its stored figures need, whatever the number of rows:

* counts: rows, missing input cells per column, labelled rows and the confusion counts at
  the version's threshold, and the fairness sums per (dimension, group) — exact;
* the score's histogram: `SCORE_BINS` bins of width 1e-5 on [0, 1], each with its row count
  and the sum of its scores, plus the exact minimum and maximum. The prediction-drift
  statistic (the normed Wasserstein distance) is computed from it with each bin's rows at
  their mean score: wherever the reference's distribution function does not cross the
  period's inside a bin this is the exact distance, and the error is never more than one
  bin's width (1e-5) divided by the reference's standard deviation;
* per class, the histogram of the labelled rows' scores, for ROC AUC and average precision
  (two scores in one bin count as a tie);
* a uniform sample of at most `SAMPLE_ROWS` rows: the rows whose request id has the
  smallest hash (a fixed SipHash, `pandas.util.hash_array`), ties by log id. The same log
  gives the same sample in every run and in any reading order. Evidently's column drift
  and the HTML report run on it. A period of no more rows than that is its own sample, and
  `monitor` measures it exactly as it measures a whole frame.

A comparison of two versions on shadow scores keeps the exact pair count and challenger
share, and a sample of the same kind of its labelled rows.

Nothing here imports Evidently: the app environment (Spark, tests) uses these functions too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from bankmarketing.data.schema import FEATURES
from bankmarketing.fairness import groups
from bankmarketing.monitoring.drift import PREDICTION, TARGET, DriftSettings, PeriodMetrics
from bankmarketing.monitoring.missing import missing_mask

#: Bins of the score histogram on [0, 1] (width 1e-5).
SCORE_BINS = 100_000
#: Rows of a period's sample, and of a comparison's labelled sample.
SAMPLE_ROWS = 50_000
#: The sample's bookkeeping columns: the log row id and the hash of its request id.
ROW_ID, ROW_KEY = "_id", "_key"
#: `fairness.fairness_rows`' defaults: a group counts in the gaps from these sizes.
FAIRNESS_MIN_ROWS, FAIRNESS_MIN_POSITIVES = 100, 20


def score_bins(scores: np.ndarray) -> np.ndarray:
    """Each score's bin: floor(score * SCORE_BINS), scores outside [0, 1] in the end bins.

    Spark computes the same expression (`spark_rule.py`), so both engines bin alike."""
    bins = np.floor(np.asarray(scores, dtype=float) * SCORE_BINS)
    return np.clip(bins, 0, SCORE_BINS - 1).astype(np.int64)


def request_keys(request_ids: Iterable[str]) -> np.ndarray:
    """A fixed 64-bit hash of each request id: the order in which rows enter the sample."""
    return pd.util.hash_array(np.asarray(list(request_ids), dtype=object), categorize=False)


@dataclass
class ScoreHistogram:
    """Counts and sums of scores per bin, and the exact extremes."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS, dtype=np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS))
    low: float = np.inf
    high: float = -np.inf

    def add(self, scores: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=float)
        if not len(scores):
            return
        bins = score_bins(scores)
        self.counts += np.bincount(bins, minlength=SCORE_BINS)
        self.sums += np.bincount(bins, weights=scores, minlength=SCORE_BINS)
        self.low, self.high = min(self.low, scores.min()), max(self.high, scores.max())

    @classmethod
    def of(cls, counts: np.ndarray, sums: np.ndarray, low: float, high: float) -> ScoreHistogram:
        return cls(np.asarray(counts, dtype=np.int64), np.asarray(sums, dtype=float), float(low), float(high))

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The non-empty bins' mean scores and row counts."""
        filled = self.counts > 0
        return self.sums[filled] / self.counts[filled], self.counts[filled]


def wasserstein_normed(reference: np.ndarray, current: ScoreHistogram) -> float:
    """Evidently's `wasserstein` statistic (the first Wasserstein distance over the reference's
    standard deviation, at least 0.001) of the reference scores and a period's histogram."""
    values, weights = current.points()
    reference = np.asarray(reference, dtype=float)
    distance = stats.wasserstein_distance(reference, values, v_weights=weights)
    return float(distance / max(np.std(reference), 0.001))


def _sturges_edges(reference: np.ndarray, current: ScoreHistogram) -> np.ndarray:
    """`np.histogram_bin_edges(concat(reference, current), "sturges")` from the extremes."""
    low, high = min(reference.min(), current.low), max(reference.max(), current.high)
    if low == high:
        return np.array([low - 0.5, high + 0.5])
    width = (high - low) / (np.log2(len(reference) + current.rows) + 1.0)
    return np.linspace(low, high, int(np.ceil((high - low) / width)) + 1)


def _fill_zeroes(percents: np.ndarray) -> np.ndarray:
    """Evidently's `get_binned_data(feel_zeroes=True)`: empty bins get a small share."""
    smallest = percents[percents != 0].min()
    np.place(percents, percents == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return percents


def psi(reference: np.ndarray, current: ScoreHistogram) -> float | None:
    """Evidently's `psi` of the score (Sturges bins over both); None when the reference has at
    most 20 distinct scores (Evidently then counts values, which needs the rows). Each fine
    bin falls in the PSI bin of its mean score."""
    reference = np.asarray(reference, dtype=float)
    if pd.Series(reference).nunique() <= 20:
        return None
    edges = _sturges_edges(reference, current)
    values, weights = current.points()
    at = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    current_percents = np.bincount(at, weights=weights, minlength=len(edges) - 1) / current.rows
    reference_percents = np.histogram(reference, edges)[0] / len(reference)
    reference_percents, current_percents = _fill_zeroes(reference_percents), _fill_zeroes(current_percents)
    return float(
        np.sum((reference_percents - current_percents) * np.log(reference_percents / current_percents))
    )


def roc_auc_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(a subscriber's score > a non-subscriber's), ties (the same bin) counted half."""
    below = np.cumsum(negatives) - negatives  # non-subscribers in lower bins
    wins = np.sum(positives * (below + 0.5 * negatives))
    return float(wins / (positives.sum() * negatives.sum()))


def average_precision_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> float:
    """scikit-learn's average precision with each bin as one threshold, highest first."""
    true, false = np.cumsum(positives[::-1]), np.cumsum(negatives[::-1])
    step = positives[::-1] > 0  # recall moves only where subscribers are
    precision = true[step] / (true[step] + false[step])
    return float(np.sum(positives[::-1][step] * precision) / positives.sum())


@dataclass
class Sample:
    """The rows with the smallest (key, id): a uniform sample of at most `size` rows.

    Rows that may enter wait in `pending` and are merged once they are `size` rows or more
    (and when the sample is read): a few merges per period instead of one per chunk, so the
    allocator is not left fragmented by a copy of the sample per chunk. Memory: at most
    twice `size` rows and one chunk."""

    size: int
    frame: pd.DataFrame | None = None
    pending: list[pd.DataFrame] = field(default_factory=list)
    pending_rows: int = 0
    bound: int | None = None  # once full: the largest key kept; only smaller-or-equal keys can enter

    def add(self, rows: pd.DataFrame) -> None:
        if self.bound is not None:
            rows = rows[rows[ROW_KEY].to_numpy() <= self.bound]
        if rows.empty:
            return
        texts = {c: object for c in rows.columns if isinstance(rows[c].dtype, pd.CategoricalDtype)}
        self.pending.append(rows.astype(texts))  # the values as the whole-frame path has them (str)
        self.pending_rows += len(rows)
        if self.pending_rows >= self.size:
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        parts = self.pending if self.frame is None else [self.frame, *self.pending]
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
        self.pending, self.pending_rows = [], 0
        if len(frame) >= self.size:
            order = np.lexsort((frame[ROW_ID].to_numpy(), frame[ROW_KEY].to_numpy()))[: self.size]
            frame = frame.iloc[np.sort(order)].reset_index(drop=True)
            self.bound = frame[ROW_KEY].to_numpy().max()
        self.frame = frame

    def rows(self, columns: list[str]) -> pd.DataFrame:
        """The sampled rows in log order (by id), with `columns` only."""
        self._merge()
        if self.frame is None:
            return pd.DataFrame(columns=columns)
        return self.frame.sort_values(ROW_ID, kind="stable")[columns].reset_index(drop=True)


@dataclass
class PeriodAggregate:
    """Everything `monitor` stores for one period and version, accumulated chunk by chunk.

    Chunks hold the 15 features, `prediction`, `target` (1/0, NaN where unknown), and the
    sample's `_id` and `_key`."""

    threshold: float
    sample_size: int = SAMPLE_ROWS
    rows: int = 0
    missing: np.ndarray = field(default_factory=lambda: np.zeros(len(FEATURES), dtype=np.int64))
    scores: ScoreHistogram = field(default_factory=ScoreHistogram)
    labelled: int = 0
    positives: int = 0
    true_positives: int = 0
    false_positives: int = 0
    positive_scores: np.ndarray | None = None  # per bin, allocated at the first labelled row
    negative_scores: np.ndarray | None = None
    fairness: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    sample: Sample = field(init=False)

    def __post_init__(self) -> None:
        self.sample = Sample(self.sample_size)

    def add(self, chunk: pd.DataFrame) -> None:
        if chunk.empty:
            return
        self.rows += len(chunk)
        self.missing += missing_mask(chunk).sum().to_numpy(dtype=np.int64)
        scores = chunk[PREDICTION].to_numpy(dtype=float)
        self.scores.add(scores)
        target = chunk[TARGET].to_numpy(dtype=float)
        known = ~np.isnan(target)
        if known.any():
            self._add_labelled(chunk[known], target[known].astype(int), scores[known])
        self.sample.add(chunk)

    def _add_labelled(self, rows: pd.DataFrame, y: np.ndarray, scores: np.ndarray) -> None:
        if self.positive_scores is None:
            self.positive_scores = np.zeros(SCORE_BINS, dtype=np.int64)
            self.negative_scores = np.zeros(SCORE_BINS, dtype=np.int64)
        selected = scores >= self.threshold
        self.labelled += len(y)
        self.positives += int(y.sum())
        self.true_positives += int((selected & (y == 1)).sum())
        self.false_positives += int((selected & (y == 0)).sum())
        bins = score_bins(scores)
        self.positive_scores += np.bincount(bins[y == 1], minlength=SCORE_BINS)
        self.negative_scores += np.bincount(bins[y == 0], minlength=SCORE_BINS)
        # per group: rows, positives, selected, selected positives, score sum
        sums = np.column_stack([np.ones(len(y)), y, selected, selected & (y == 1), scores])
        customers = rows[["age", "marital", "job"]].astype({"marital": object, "job": object})
        for dimension, labels in groups(customers).items():
            for group, total in pd.DataFrame(sums, index=labels.to_numpy()).groupby(level=0).sum().iterrows():
                key = (dimension, str(group))
                self.fairness[key] = self.fairness.get(key, np.zeros(5)) + total.to_numpy()

    def missing_by_column(self) -> list[dict]:
        """As `missing.missing_by_column` of the whole period."""
        return [
            {
                "column_name": column,
                "missing": int(count),
                "missing_share": float(count / self.rows) if self.rows else 0.0,
            }
            for column, count in zip(FEATURES, self.missing, strict=True)
        ]

    def missing_values_share(self) -> float:
        return float(self.missing.sum() / (self.rows * len(FEATURES))) if self.rows else 0.0

    def performance(self) -> dict | None:
        """As `drift.live_performance` of the whole period: quality at the threshold on the
        labelled rows (exact), ROC AUC and PR AUC from the class histograms."""
        if not self.labelled:
            return None
        tp, fp = self.true_positives, self.false_positives
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / self.positives if self.positives else 0.0
        both_classes = 0 < self.positives < self.labelled
        return {
            "labelled_rows": self.labelled,
            "positives": self.positives,
            "roc_auc": roc_auc_from_histograms(self.positive_scores, self.negative_scores)
            if both_classes
            else None,
            "pr_auc": average_precision_from_histograms(self.positive_scores, self.negative_scores)
            if both_classes
            else None,
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
            "threshold": float(self.threshold),
            "predicted_positive_share": float((tp + fp) / self.labelled),
        }

    def fairness_rows(self) -> list[dict]:
        """As `drift.labelled_fairness` of the whole period (group rows, `group_name`)."""
        rows = []
        for (dimension, group), (count, positives, selected, hits, score) in sorted(
            self.fairness.items(), key=lambda item: _dimension_order(item[0])
        ):
            count, positives = int(count), int(positives)
            rows.append(
                {
                    "group_name": group,
                    "dimension": dimension,
                    "rows": count,
                    "positives": positives,
                    "selection_rate": float(selected / count),
                    "true_positive_rate": float(hits / positives) if positives else None,
                    "mean_score": float(score / count),
                    "observed_rate": float(positives / count),
                    "calibration": float(score / count - positives / count),
                    "counted": count >= FAIRNESS_MIN_ROWS and positives >= FAIRNESS_MIN_POSITIVES,
                }
            )
        return rows


def _dimension_order(key: tuple[str, str]) -> tuple[int, str]:
    dimensions = ("age band", "marital", "job group")
    return (dimensions.index(key[0]) if key[0] in dimensions else len(dimensions), key[1])


@dataclass
class ComparisonAggregate:
    """Rows two versions both scored in one period: the exact count and the challenger's share,
    and a sample of the labelled ones (features, target, both scores)."""

    sample_size: int = SAMPLE_ROWS
    rows: int = 0
    by_challenger: int = 0
    sample: Sample = field(init=False)

    def __post_init__(self) -> None:
        self.sample = Sample(self.sample_size)

    def add(self, chunk: pd.DataFrame) -> None:
        """`chunk`: features, target, production, challenger, by_challenger, `_id`, `_key`."""
        self.rows += len(chunk)
        self.by_challenger += int(chunk["by_challenger"].sum())
        self.sample.add(chunk[chunk[TARGET].notna()])


#: Rule statistics the histogram gives for the whole period (others stay the sample's).
WHOLE_PERIOD_STATTESTS = ("wasserstein",)


def exact_period_metrics(
    on_sample: PeriodMetrics,
    aggregate: PeriodAggregate,
    reference_scores: np.ndarray,
    settings: DriftSettings,
) -> PeriodMetrics:
    """A large period's metrics: Evidently's on its sample, with what the aggregates give for the
    whole period in place of the sample's — rows, missing values, live performance, the score's
    PSI and, for an effect size the histogram gives (`WHOLE_PERIOD_STATTESTS`), the score's
    drift and its decision. Column drift stays the sample's."""
    metrics = replace(
        on_sample,
        rows=aggregate.rows,
        missing_values_share=aggregate.missing_values_share(),
        missing_by_column=aggregate.missing_by_column(),
        performance=aggregate.performance(),
    )
    whole_psi = psi(reference_scores, aggregate.scores)
    if whole_psi is not None:
        metrics.prediction_psi = whole_psi
    if settings.prediction_stattest in WHOLE_PERIOD_STATTESTS:
        score = wasserstein_normed(reference_scores, aggregate.scores)
        metrics.prediction_drift_score = score
        metrics.prediction_drift_detected = score >= settings.prediction_threshold  # as Evidently decides
    return metrics
