"""The predictor with a challenger: shadow and split modes, sticky assignment, both scores logged."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from bankmarketing.challenger import assigned_to_challenger
from bankmarketing.config import ConfigurationError
from bankmarketing.database import engine_for, prediction_log
from bankmarketing.registry import client_for, load_scorer
from tests.conftest import set_challenger
from tests.serving.test_app import customer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scorers(served):
    """Production's and the challenger's own scorers and thresholds, straight from the registry."""
    settings, versions, _ = served
    set_challenger(served)
    client = client_for(settings.tracking_uri)
    return {
        role: (
            load_scorer(settings.tracking_uri, settings.model_name, versions[key]),
            float(client.get_model_version(settings.model_name, versions[key]).tags["threshold"]),
            versions[key],
        )
        for role, key in (("production", "production"), ("challenger", "other"))
    }


def logged(settings, request_ids: list[str]) -> dict[str, dict]:
    with engine_for(settings.platform_database_url).connect() as connection:
        rows = connection.execute(
            sa.select(prediction_log).where(prediction_log.c.request_id.in_(request_ids))
        ).mappings()
        return {r["request_id"]: dict(r) for r in rows}


def test_shadow_mode_answers_with_production_and_logs_the_challengers_score(app_factory, served, scorers):
    settings, versions, test = served
    app = app_factory(challenger_mode="shadow")
    client = app.test_client()
    records = [customer(test, i) for i in range(40)]
    production, p_threshold, _ = scorers["production"]
    challenger, _, c_version = scorers["challenger"]
    answers = [
        client.post("/predict", json={"customer": r}, headers={"X-Request-ID": f"shadow-{i}"}).get_json()
        for i, r in enumerate(records)
    ]
    assert {a["model_version"] for a in answers} == {versions["production"]}
    np.testing.assert_allclose([a["probability"] for a in answers], production.score_records(records), atol=0)
    batch = client.post(
        "/predict/batch", json={"customers": records[:5]}, headers={"X-Request-ID": "shadow-b"}
    )
    assert all(set(row) == {"probability", "decision"} for row in batch.get_json()["predictions"])
    app.extensions["bankmarketing"]["predictions"].close()
    rows = logged(settings, [f"shadow-{i}" for i in range(40)] + [f"shadow-b:{i}" for i in range(5)])
    assert len(rows) == 45
    single = [rows[f"shadow-{i}"] for i in range(40)]
    assert {(r["arm"], r["model_version"], r["shadow_version"]) for r in single} == {
        ("production", int(versions["production"]), int(c_version))
    }
    np.testing.assert_allclose([r["shadow_score"] for r in single], challenger.score_records(records), atol=0)
    assert [r["decision"] for r in single] == (production.score_records(records) >= p_threshold).tolist()
    challenger_info = client.get("/challenger").get_json()
    assert challenger_info["mode"] == "shadow" and challenger_info["challenger"]["version"] == c_version
    assert challenger_info["challenger"]["scoring"] is True and challenger_info["share"] is None


def test_split_mode_is_sticky_by_customer_and_answers_with_the_assigned_version(app_factory, served, scorers):
    settings, versions, test = served
    client = app_factory(challenger_mode="split", challenger_share=0.5).test_client()
    production, p_threshold, p_version = scorers["production"]
    challenger, c_threshold, c_version = scorers["challenger"]
    records = [customer(test, i) for i in range(60)]
    ids = [f"customer-{i}" for i in range(60)]
    expected = assigned_to_challenger(ids, c_version, 0.5)
    assert 10 < sum(expected) < 50  # both arms present
    for _ in range(2):  # the same customer gets the same version every time
        answers = [
            client.post("/predict", json={"customer": r, "customer_id": c}).get_json()
            for r, c in zip(records, ids, strict=True)
        ]
        assert [a["model_version"] == c_version for a in answers] == expected
    own = np.where(expected, challenger.score_records(records), production.score_records(records))
    np.testing.assert_allclose([a["probability"] for a in answers], own, atol=0)
    assert [a["threshold"] for a in answers] == [c_threshold if e else p_threshold for e in expected]
    batch = client.post(
        "/predict/batch",
        json={"customers": records, "customer_ids": ids},
        headers={"X-Request-ID": "split-batch"},
    ).get_json()
    assert [row["model_version"] == c_version for row in batch["predictions"]] == expected
    assert batch["model_version"] == p_version  # production, the top-level version
    np.testing.assert_allclose([row["probability"] for row in batch["predictions"]], own, atol=0)
    client.application.extensions["bankmarketing"]["predictions"].close()
    rows = logged(settings, [f"split-batch:{i}" for i in range(60)])
    for i, assigned in enumerate(expected):
        row = rows[f"split-batch:{i}"]
        assert row["arm"] == ("challenger" if assigned else "production")
        assert row["model_version"] == int(c_version if assigned else p_version)
        assert row["shadow_version"] == int(p_version if assigned else c_version)
        other = production if assigned else challenger
        assert row["shadow_score"] == pytest.approx(float(other.score_records([records[i]])[0]), abs=0)


def test_explanations_come_from_the_answering_version(app_factory, served, scorers):
    _, _, test = served
    client = app_factory(challenger_mode="split", challenger_share=1.0).test_client()
    challenger = scorers["challenger"][0]
    try:
        expected = challenger.explain([customer(test)])[0]
    except Exception:  # noqa: BLE001 - a challenger without contributions: the request says so
        answer = client.post("/predict", json={"customer": customer(test), "explain": True})
        assert answer.status_code == 422 and answer.get_json()["detail"][0]["field"] == "explain"
        return
    answer = client.post("/predict", json={"customer": customer(test), "explain": True}).get_json()
    assert answer["model_version"] == scorers["challenger"][2]
    assert answer["contributions"] == pytest.approx(expected)


def test_without_a_challenger_version_production_serves_alone(app_factory, served):
    settings, versions, test = served
    app = app_factory(challenger_mode="split", challenger_share=1.0, challenger_alias="no-such-alias")
    client = app.test_client()
    answer = client.post("/predict", json={"customer": customer(test)}, headers={"X-Request-ID": "solo-1"})
    assert answer.status_code == 200 and answer.get_json()["model_version"] == versions["production"]
    info = client.get("/challenger").get_json()
    assert info["challenger"] is None and info["registry_error"] is None
    app.extensions["bankmarketing"]["predictions"].close()
    row = logged(settings, ["solo-1"])["solo-1"]
    assert row["arm"] is None and row["shadow_version"] is None and row["shadow_score"] is None


def test_a_withdrawn_challenger_is_dropped_at_the_next_poll(app_factory, served):
    settings, versions, test = served
    registry = client_for(settings.tracking_uri)
    registry.set_registered_model_alias(settings.model_name, "challenger-withdrawn", versions["other"])
    app = app_factory(challenger_mode="split", challenger_share=1.0, challenger_alias="challenger-withdrawn")
    client = app.test_client()
    assert (
        client.post("/predict", json={"customer": customer(test)}).get_json()["model_version"]
        == versions["other"]
    )
    registry.delete_registered_model_alias(settings.model_name, "challenger-withdrawn")
    assert app.extensions["bankmarketing"]["challengers"].refresh() is True
    answer = client.post("/predict", json={"customer": customer(test)}).get_json()
    assert answer["model_version"] == versions["production"]
    assert client.get("/challenger").get_json()["challenger"] is None


def test_ids_that_do_not_match_the_customers_are_a_422_naming_the_field(app_factory, served):
    test = served[2]
    client = app_factory(challenger_mode="split").test_client()
    body = {"customers": [customer(test, i) for i in range(3)], "customer_ids": ["a", "b"]}
    response = client.post("/predict/batch", json=body)
    assert response.status_code == 422
    detail = response.get_json()["detail"]
    assert detail[0]["field"] == "customer_ids" and "2 ids for 3 customers" in detail[0]["message"]
    empty = client.post("/predict", json={"customer": customer(test), "customer_id": ""})
    assert empty.status_code == 422 and empty.get_json()["detail"][0]["field"] == "customer_id"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"challenger_mode": "canary"}, "PREDICTOR_CHALLENGER_MODE is 'canary': expected one of off, shadow"),
        ({"challenger_share": 1.5}, "PREDICTOR_CHALLENGER_SHARE is 1.5"),
    ],
)
def test_a_bad_challenger_setting_stops_the_predictor_at_start(app_factory, overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        app_factory(**overrides)


def test_challenger_settings_from_the_environment(monkeypatch):
    from bankmarketing.serving.app import ServingConfig

    monkeypatch.setenv("PREDICTOR_CHALLENGER_MODE", "Split")
    monkeypatch.setenv("PREDICTOR_CHALLENGER_SHARE", "0.25")
    config = ServingConfig.from_env()
    assert (config.challenger_mode, config.challenger_share, config.challenger_alias) == (
        "split",
        0.25,
        "challenger",
    )
    monkeypatch.setenv("PREDICTOR_CHALLENGER_SHARE", "a quarter")
    with pytest.raises(ConfigurationError, match="'a quarter': expected a share between 0 and 1"):
        ServingConfig.from_env()
