"""`monitor` through Mage into a real Postgres: the season scenario, reruns, small periods."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from bankmarketing.challenger import compare_versions
from bankmarketing.data.prepare import prepared_manifest, read_split, xy
from bankmarketing.data.schema import FEATURES, MISSING
from bankmarketing.database import (
    engine_for,
    monitoring_challenger,
    monitoring_column_drift,
    monitoring_drift,
    monitoring_fairness,
    monitoring_missing_values,
    monitoring_performance,
)
from bankmarketing.registry import client_for, load_scorer
from tests.conftest import MONITORED_PERIODS, mage_run

pytestmark = pytest.mark.integration
DRIFTING = ["jun", "jul", "aug", "sep", "oct", "nov"]


def _rows(settings, table) -> list[dict]:
    with engine_for(settings.platform_database_url).connect() as connection:
        return [dict(r._mapping) for r in connection.execute(sa.select(table))]


def _counts(settings) -> dict[str, int]:
    tables = (
        monitoring_drift,
        monitoring_column_drift,
        monitoring_missing_values,
        monitoring_performance,
        monitoring_challenger,
    )
    return {t.name: len(_rows(settings, t)) for t in tables}


def test_the_season_scenario_is_measured_per_period_for_the_production_version(monitored):
    production = client_for(monitored.tracking_uri).get_model_version_by_alias(
        monitored.model_name, "production"
    )
    drift = {r["period"]: r for r in _rows(monitored, monitoring_drift)}
    assert sorted(drift) == sorted(MONITORED_PERIODS)
    for period, row in drift.items():
        assert row["model_version"] == int(production.version) and row["enough_rows"], period
        assert row["columns"] == len(FEATURES) and 0 <= row["drifted_columns"] <= row["columns"]
        assert (
            Path(row["report_path"]).is_file()
            and "evidently" in Path(row["report_path"]).read_text()[:5000].lower()
        )
    # the test split comes from the reference window: no drift; later months move away from it
    assert drift["test"]["prediction_drift_score"] <= 0.1 and not drift["test"]["prediction_drift_detected"]
    assert drift["test"]["drifted_columns"] == 0
    assert max(drift[m]["prediction_drift_score"] for m in DRIFTING) > 0.1
    assert all(drift[m]["drifted_columns"] >= 1 for m in DRIFTING)  # `month` itself is new
    columns = _rows(monitored, monitoring_column_drift)
    assert len(columns) == len(MONITORED_PERIODS) * len(FEATURES)
    performance = {r["period"]: r for r in _rows(monitored, monitoring_performance)}
    assert sorted(performance) == sorted(MONITORED_PERIODS)
    assert (
        performance["test"]["roc_auc"] > 0.7 and performance["test"]["labelled_rows"] == drift["test"]["rows"]
    )


def test_missing_values_count_the_data_sets_marker_unknown_per_column(monitored):
    """Validated data has no empty cell, but `unknown` in job, education, contact and poutcome:
    each period stores, per input, how many of its customers have it, as counted in the data."""
    manifest = prepared_manifest(
        monitored,
        client_for(monitored.tracking_uri)
        .get_model_version_by_alias(monitored.model_name, "production")
        .tags["prepared_id"],
    )
    drift = {r["period"]: r for r in _rows(monitored, monitoring_drift)}
    stored = {(r["period"], r["column_name"]): r for r in _rows(monitored, monitoring_missing_values)}
    assert len(stored) == len(MONITORED_PERIODS) * len(FEATURES)
    for period in MONITORED_PERIODS:
        frame = read_split(manifest, period)
        unknown = (frame[list(FEATURES)] == MISSING).sum()
        for column in FEATURES:
            row = stored[(period, column)]
            assert row["missing"] == unknown[column], (period, column)
            assert row["missing_share"] == pytest.approx(unknown[column] / len(frame))
            assert row["period_start"] == drift[period]["period_start"]
        assert drift[period]["missing_values_share"] == pytest.approx(
            unknown.sum() / frame[list(FEATURES)].size
        )
    with_unknown = {column for (_, column), row in stored.items() if row["missing"]}
    assert with_unknown == {"job", "education", "contact", "poutcome"}
    assert stored[("jun", "contact")]["missing_share"] > 0.5  # the contact type went unrecorded in June


def test_the_challenger_is_compared_with_production_on_every_period(monitored, served):
    versions = served[1]
    compared = {r["period"]: r for r in _rows(monitored, monitoring_challenger)}
    drift = {r["period"]: r for r in _rows(monitored, monitoring_drift)}
    performance = {r["period"]: r for r in _rows(monitored, monitoring_performance)}
    assert sorted(compared) == sorted(MONITORED_PERIODS)
    for period, row in compared.items():
        assert (row["production_version"], row["challenger_version"], row["source"]) == (
            int(versions["production"]),
            int(versions["other"]),
            "batch",
        )
        assert row["scored_rows"] == row["labelled_rows"] == drift[period]["rows"]
        assert row["challenger_served_share"] is None  # batches: both scored everyone, nobody served
        # production's side is the same customers and scores as its own live performance
        assert row["production_roc_auc"] == pytest.approx(performance[period]["roc_auc"], abs=1e-12)
        assert row["ci_low"] <= row["roc_auc_difference"] <= row["ci_high"] and 0 <= row["p_value"] <= 1
    # the challenger's fairness on the same customers, beside production's
    fairness = _rows(monitored, monitoring_fairness)
    for version in (versions["production"], versions["other"]):
        periods = {r["period"] for r in fairness if r["model_version"] == int(version)}
        assert periods == set(MONITORED_PERIODS), version
    # the stored comparison is the comparison of the two versions' own scores
    registry = client_for(monitored.tracking_uri)
    sides = []
    for version in (versions["production"], versions["other"]):
        tags = registry.get_model_version(monitored.model_name, version).tags
        X, y = xy(read_split(prepared_manifest(monitored, tags["prepared_id"]), "test"))
        scorer = load_scorer(monitored.tracking_uri, monitored.model_name, version)
        sides.append((scorer.score_frame(X), float(tags["threshold"])))
    expected = compare_versions(y, sides[0][0], sides[1][0], sides[0][1], sides[1][1])
    for key, value in expected.items():
        assert compared["test"][key] == (
            pytest.approx(value, abs=1e-9) if isinstance(value, float) else value
        )


def test_a_rerun_replaces_rows_and_never_duplicates(monitored):
    before = _counts(monitored)
    again = mage_run(monitored, "monitor", {"periods": ["test", "jun"], "alert": False})
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert _counts(monitored) == before


def test_periods_with_too_few_rows_are_marked_not_tested(served, postgres_url):
    settings = replace(served[0], database_url=postgres_url("monitoring_small"))
    result = mage_run(settings, "monitor", {"periods": ["jun"], "min_rows": 100_000, "alert": False})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (row,) = _rows(settings, monitoring_drift)
    assert not row["enough_rows"] and row["min_rows"] == 100_000 and row["rows"] > 0
    assert row["prediction_drift_score"] is None and row["drifted_columns"] is None
    assert _rows(settings, monitoring_column_drift) == []
    assert "not tested" in " ".join(result.stdout.split())
    # missing values are counted on every period, tested or not
    missing = {r["column_name"]: r["missing"] for r in _rows(settings, monitoring_missing_values)}
    assert set(missing) == set(FEATURES) and missing["contact"] > 0 and row["missing_values_share"] > 0


def test_unknown_periods_and_variables_are_named(served):
    result = mage_run(served[0], "monitor", {"periods": ["june"], "treshold": 0.2})
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "june" in output and "treshold: Extra inputs are not permitted" in output
