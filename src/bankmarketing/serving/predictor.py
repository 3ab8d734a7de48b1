"""The predictor's core: the production version, an optional challenger, and the prediction log.

`Predictor.score` is what every scoring route calls: one model reference per request (a hot
swap never splits a request), the challenger scored beside it in shadow or split mode, the
answering version's contributions on request, and one log row per customer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bankmarketing.challenger import assigned_to_challenger
from bankmarketing.predictions.log import PredictionLog
from bankmarketing.predictions.record import PredictionRow, prediction_row
from bankmarketing.serving.model_holder import LoadedModel, ModelHolder


class NoModelLoaded(Exception):
    """No version is loaded yet."""


@dataclass(frozen=True)
class Scored:
    """A request's answer: the production version, who answered each row (split mode), scores."""

    model: LoadedModel
    answering: list[LoadedModel] | None  # per row, in split mode only
    probabilities: list[float]
    decisions: list[bool]
    contributions: list[dict] | None  # explain=true

    def version_of(self, row: int) -> LoadedModel:
        return self.answering[row] if self.answering else self.model


class Predictor:
    """Scores customers with the production version (and a challenger), explains, logs."""

    def __init__(
        self,
        production: ModelHolder,
        challengers: ModelHolder | None,
        predictions: PredictionLog,
        *,
        challenger_mode: str = "off",
        challenger_share: float = 0.0,
        log_predictions: bool = True,
    ):
        self.production, self.challengers, self.predictions = production, challengers, predictions
        self.challenger_mode, self.challenger_share = challenger_mode, challenger_share
        self.log_predictions = log_predictions

    def rival_of(self, model: LoadedModel) -> LoadedModel | None:
        """The challenger to score beside `model`, if one is on, loaded and a different version."""
        rival = self.challengers.current if self.challengers is not None else None
        return rival if rival is not None and rival.version != model.version else None

    def score(
        self,
        records: Sequence[dict],
        explain: bool,
        request_id: str,
        customer_ids: Sequence[str] | None = None,
    ) -> Scored:
        """Scores, decisions and (explain) contributions; logs every row.

        Raises `NoModelLoaded`, and `ExplanationUnavailable` when the answering version cannot
        explain (nothing is logged then).
        """
        model = self.production.current  # one reference for the whole request
        if model is None:
            raise NoModelLoaded
        rival = self.rival_of(model)
        row_ids = [request_id] if len(records) == 1 else [f"{request_id}:{i}" for i in range(len(records))]
        scores = model.scorer.score_records(records)
        answering, shadow_scores = None, None
        if rival is None:
            decisions = scores >= model.threshold
        else:
            rival_scores = rival.scorer.score_records(records)
            picks = np.zeros(len(records), dtype=bool)
            if self.challenger_mode == "split":
                keys = customer_ids or row_ids
                picks = np.asarray(assigned_to_challenger(keys, rival.version, self.challenger_share))
                answering = [rival if pick else model for pick in picks]
            shadow_scores = np.where(picks, scores, rival_scores)
            scores = np.where(picks, rival_scores, scores)
            decisions = scores >= np.where(picks, rival.threshold, model.threshold)
        contributions = self._explained(records, answering or [model] * len(records)) if explain else None
        scored = Scored(model, answering, scores.tolist(), decisions.tolist(), contributions)
        if self.log_predictions:
            self._log(records, scored, rival, shadow_scores, row_ids)
        return scored

    @staticmethod
    def _explained(records: Sequence[dict], answering: list[LoadedModel]) -> list[dict]:
        """Each customer's contributions from the version that answers for them."""
        contributions: list = [None] * len(records)
        for version in {id(m): m for m in answering}.values():
            rows = [i for i, m in enumerate(answering) if m is version]
            for i, contribution in zip(rows, version.scorer.explain([records[i] for i in rows]), strict=True):
                contributions[i] = contribution
        return contributions

    def _log(self, records, scored: Scored, rival, shadow_scores, row_ids: list[str]) -> None:
        """One prediction-log row per customer: who answered, and the other version's score."""
        now = dt.datetime.now(dt.UTC)
        rows: list[PredictionRow] = []
        for i, (r, p, d) in enumerate(zip(records, scored.probabilities, scored.decisions, strict=True)):
            by = scored.version_of(i)
            other = None if rival is None else (scored.model if by is rival else rival)
            second = None if other is None else (int(other.version), float(shadow_scores[i]), by is rival)
            rows.append(prediction_row(row_ids[i], now, scored.model.name, int(by.version), p, d, r, second))
        self.predictions.append(rows)
