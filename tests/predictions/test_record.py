"""The prediction record: what the predictor writes about two versions reads back by role."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from bankmarketing.predictions.record import PredictionRow, by_role, prediction_row

AT = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def test_who_answered_and_the_other_versions_score_read_back_by_role():
    rows: list[PredictionRow] = [
        prediction_row("a", AT, "m", 3, 0.7, True, {"age": 41}, other=(4, 0.2, False)),  # production answered
        prediction_row("b", AT, "m", 4, 0.1, False, {"age": 52}, other=(3, 0.6, True)),  # challenger answered
        prediction_row("c", AT, "m", 3, 0.4, False, {"age": 33}),  # production alone
    ]
    assert [row["arm"] for row in rows] == ["production", "challenger", None]
    paired = by_role(pd.DataFrame(rows))
    assert paired["request_id"].tolist() == ["a", "b"]
    assert paired["production_version"].tolist() == [3, 3]
    assert paired["challenger_version"].tolist() == [4, 4]
    assert paired["production"].tolist() == [0.7, 0.6]
    assert paired["challenger"].tolist() == [0.2, 0.1]
    assert paired["by_challenger"].tolist() == [False, True]
