"""The scorer: raw records in, calibrated probabilities and explanations out."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from bankmarketing.scoring.classifiers import Classifier
from bankmarketing.scoring.errors import ExplanationUnavailable, Unsupported, require
from bankmarketing.scoring.layout import Columns, Layout, frame_column, synthetic_columns
from bankmarketing.scoring.shapley import permutation_shapley

log = logging.getLogger(__name__)
VERIFY_ROWS, VERIFY_TOLERANCE = 64, 1e-9
#: The attribute of a trained pipeline that holds its background customers (a DataFrame of raw
#: fields) for model-agnostic explanations; set by `train`.
BACKGROUND_ATTRIBUTE = "shapley_background_"


def single_row_ms(scorer: Scorer, customers: pd.DataFrame, rows: int = 200) -> float:
    """Median milliseconds to score one customer, over up to `rows` customers (after one warm-up)."""
    records = customers.head(rows).to_dict("records")
    scorer.score_records(records[:1])
    times = []
    for record in records:
        started = time.perf_counter()
        scorer.score_records([record])
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


class Scorer:
    """Scores raw customer records with a saved pipeline; fast path where the model allows."""

    def __init__(
        self,
        pipeline: Any,
        layout: Layout | None = None,
        classifier: Classifier | None = None,
        fallback_reason: str | None = None,
    ):
        self.pipeline, self.layout, self.classifier = pipeline, layout, classifier
        self.fallback_reason = fallback_reason
        background = getattr(pipeline, BACKGROUND_ATTRIBUTE, None)
        self.background = None
        if background is not None and layout is not None:
            self.background = {field: frame_column(background[field]) for field in layout.fields}

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> Scorer:
        """Compile the fast path when supported and verified, else fall back to the pipeline."""
        try:
            require(isinstance(pipeline, Pipeline) and len(pipeline.steps) == 2, "not 2 steps")
            scorer = cls(
                pipeline, Layout.compile(pipeline.steps[0][1]), Classifier.compile(pipeline.steps[1][1])
            )
            columns = synthetic_columns(scorer.layout, VERIFY_ROWS)
            with warnings.catch_warnings():  # the unseen categories are deliberate
                warnings.simplefilter("ignore", UserWarning)
                expected = pipeline.predict_proba(pd.DataFrame(columns))[:, 1]
            difference = np.max(np.abs(scorer._score(columns, VERIFY_ROWS) - expected))
            require(difference <= VERIFY_TOLERANCE, f"self-check differs by {difference:.3g}")
            return scorer
        except Exception as exc:  # unsupported, or a structure misread: never guess scores
            expected_kind = isinstance(exc, Unsupported)
            log.log(
                logging.INFO if expected_kind else logging.WARNING,
                "scoring falls back to the pipeline: %r",
                exc,
                exc_info=not expected_kind,
            )
            return cls(pipeline, fallback_reason=str(exc) if expected_kind else repr(exc))

    @property
    def fast(self) -> bool:
        """Whether the compiled numpy path is in use."""
        return self.classifier is not None

    @property
    def kind(self) -> str:
        """The compiled model kind (a `train` candidate's name), else "pipeline"."""
        return self.classifier.kind if self.classifier else "pipeline"

    @property
    def explanation_method(self) -> str | None:
        """How `explain` computes contributions, or None when it cannot."""
        if not self.fast:
            return None
        if self.exact_explanations:
            return self.classifier.method
        if self.background is None:
            return None
        rows = len(next(iter(self.background.values())))
        return f"{self.classifier.method} ({rows} background customers)"

    @property
    def exact_explanations(self) -> bool:
        """Whether contributions are exact (linear terms, TreeSHAP) rather than sampled."""
        return self.fast and self.classifier.contributions is not None

    @property
    def explained_output(self) -> str | None:
        """What the contributions add up to (with "bias"): the model's output before calibration."""
        return self.classifier.output if self.fast else None

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Probability of subscription per record (extra keys ignored), shape (n,)."""
        if not self.fast:
            return self._pipeline_scores(pd.DataFrame.from_records(list(records)))
        return self._score(self._record_columns(records), len(records))

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of subscription per row of a frame of raw records, shape (n,)."""
        if not self.fast:
            return self._pipeline_scores(frame)
        columns = {field: frame_column(frame[field]) for field in self.layout.fields}
        return self._score(columns, len(frame))

    def margin(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The model's output before calibration (`explained_output`), which `explain` decomposes."""
        self._require_explainable()
        X = self.layout.matrix(self._record_columns(records), len(records))
        return np.asarray(self.classifier.margin(X), np.float64) if len(X) else np.empty(0)

    def explain(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
        """Per raw field contributions to `margin`, plus "bias", the base value; they add up to
        the margin (exactly for linear terms and the Shapley estimate, within float32 rounding
        for TreeSHAP).

        Exact kinds: a categorical field gets the sum over its one-hot columns, `pdays` gets
        `contacted_before`, and `day_of_year` is split evenly between `month` and `day_of_week`.
        "bias" is the intercept or the trees' expected output. MLP and SVC: permutation Shapley
        values of the raw fields against the background customers, whose mean output is "bias".
        """
        self._require_explainable()
        if not records:
            return []
        columns = self._record_columns(records)
        if not self.exact_explanations:
            raw, bias = permutation_shapley(self._margin_of, columns, self.background, self.layout.fields)
        else:
            parts = np.asarray(
                self.classifier.contributions(self.layout.matrix(columns, len(records))), np.float64
            )
            raw, bias = parts[:, :-1] @ self.layout.attribution, parts[:, -1]
        return [
            dict(zip(self.layout.fields, map(float, row), strict=True)) | {"bias": float(b)}
            for row, b in zip(raw, bias, strict=True)
        ]

    def _margin_of(self, columns: Columns, rows: int) -> np.ndarray:
        return self.classifier.margin(self.layout.matrix(columns, rows))

    def _require_explainable(self) -> None:
        if self.explanation_method is None:
            reason = (
                f"model kind {self.kind!r} ({self.fallback_reason})"
                if not self.fast
                else f"this {self.kind} version, trained without background customers; retrain it"
            )
            raise ExplanationUnavailable(f"per-feature contributions are not available for {reason}")

    def _record_columns(self, records: Sequence[Mapping[str, Any]]) -> dict[str, list]:
        return {field: [record[field] for record in records] for field in self.layout.fields}

    def _score(self, columns: Columns, rows: int) -> np.ndarray:
        return self.classifier.score(self.layout.matrix(columns, rows)) if rows else np.empty(0)

    def _pipeline_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(frame)[:, 1] if len(frame) else np.empty(0)
