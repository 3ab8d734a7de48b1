"""The predictor's endpoints, its answers, and every kind of bad input (never a 500)."""

from __future__ import annotations

import datetime as dt
import time

import mlflow.pyfunc
import numpy as np
import pytest
import sqlalchemy as sa

from bankmarketing.config import ConfigurationError
from bankmarketing.data.schema import FEATURES
from bankmarketing.database import engine_for, prediction_log
from bankmarketing.registry import client_for
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.integration


def customer(test, i: int = 0) -> dict:
    row = test.iloc[i]
    return {f: (int(row[f]) if isinstance(row[f], (np.integer, int)) else row[f]) for f in FEATURES}


def test_predict_matches_the_registered_production_model(client, served):
    settings, versions, test = served
    records = [customer(test, i) for i in range(50)]
    got = [client.post("/predict", json={"customer": r}).get_json() for r in records]
    reference = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@production")
    expected = np.asarray(reference.predict(test[list(FEATURES)].head(50)))[:, 1]
    np.testing.assert_allclose([g["probability"] for g in got], expected, rtol=0, atol=1e-9)
    first = got[0]
    assert first["model_name"] == settings.model_name and first["model_version"] == versions["production"]
    assert first["decision"] == ("call" if first["probability"] >= first["threshold"] else "skip")
    assert len(first["request_id"]) == 32


def test_request_id_from_header_and_explanations(client, served):
    _, _, test = served
    answer = client.post(
        "/predict", json={"customer": customer(test), "explain": True}, headers={"X-Request-ID": "abc-123"}
    ).get_json()
    assert answer["request_id"] == "abc-123"
    assert set(answer["contributions"]) == set(FEATURES) | {"bias"}


def test_batch_keeps_order_and_matches_single_predictions(client, served):
    _, _, test = served
    records = [customer(test, i) for i in range(20)]
    batch = client.post("/predict/batch", json={"customers": records}).get_json()
    singles = [client.post("/predict", json={"customer": r}).get_json()["probability"] for r in records]
    assert [p["probability"] for p in batch["predictions"]] == singles


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"age": "41"}, "customer.age", "valid integer"),
        ({"age": -3}, "customer.age", "greater than or equal to 18"),
        ({"age": 41.5}, "customer.age", "valid integer"),
        ({"balance": None}, "customer.balance", "valid integer"),
        ({"job": "astronaut"}, "customer.job", "Input should be 'admin.'"),
        ({"month": "Mai"}, "customer.month", "Input should be"),
        ({"campaign": True}, "customer.campaign", "valid integer"),
        ({"request_id": "x"}, "customer.request_id", "Extra inputs are not permitted"),
        ({"duration": 300}, "customer.duration", "Extra inputs are not permitted"),
    ],
)
def test_bad_field_is_a_422_naming_it(client, served, change, field, message):
    body = {"customer": customer(served[2]) | change}
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    detail = response.get_json()["detail"]
    assert any(d["field"] == field and message in d["message"] for d in detail), detail


def test_missing_field_is_named(client, served):
    record = customer(served[2])
    del record["poutcome"]
    response = client.post("/predict", json={"customer": record})
    assert response.status_code == 422
    assert response.get_json()["detail"] == [{"field": "customer.poutcome", "message": "Field required"}]


def test_body_errors_are_json(client, served):
    cases = [
        (client.post("/predict", data="{not json", content_type="application/json"), 400, "not valid JSON"),
        (
            client.post("/predict", data="age=41", content_type="application/x-www-form-urlencoded"),
            415,
            "application/json",
        ),
        (client.post("/predict", data="x" * (300 * 1024), content_type="application/json"), 413, "larger"),
        (client.post("/predict", json=[1, 2]), 422, "invalid request"),
        (client.post("/predict/batch", json={"customers": []}), 422, "invalid request"),
        (client.post("/predict/batch", json={"customers": [customer(served[2])] * 101}), 413, "at most 100"),
        (client.get("/predict"), 405, "not allowed"),
        (client.get("/nowhere"), 404, "not found"),
    ]
    for response, status, text in cases:
        assert response.status_code == status, (status, response.get_data(as_text=True))
        assert text.lower() in response.get_json()["error"].lower()


def test_batch_errors_name_the_row(client, served):
    records = [customer(served[2], i) for i in range(3)]
    records[2]["age"] = 7
    detail = client.post("/predict/batch", json={"customers": records}).get_json()["detail"]
    assert detail[0]["field"] == "customers.2.age"


def test_health_ready_model_metrics_openapi(client, served):
    settings, versions, _ = served
    assert client.get("/health").get_json() == {"status": "alive"}
    ready = client.get("/ready").get_json()
    assert ready["ready"] and ready["source"] == "registry" and ready["registry_error"] is None
    model = client.get("/model").get_json()
    assert model["version"] == versions["production"] and model["fast_path"] is True
    assert "test_pr_auc" in model["metrics"] and model["card"].startswith("# Model card")
    importance = model["explanation"]["importance"]  # the global explanation logged at deploy
    assert len(importance) == 15 and importance[0]["mean_abs_contribution"] > 0
    client.post("/predict", json={"customer": customer(served[2])})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'predictor_requests_total{endpoint="/predict",status="200"}' in text
    assert "predictor_request_seconds_bucket" in text
    assert "predictor_prediction_log_dropped 0.0" in text
    assert f"predictor_model_version {float(versions['production'])}" in text
    document = client.get("/openapi.json").get_json()
    assert {"/predict", "/predict/batch", "/health", "/ready", "/model", "/metrics"} <= set(document["paths"])
    assert "Customer" in document["components"]["schemas"]


def test_reload_requires_the_admin_token(client):
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 200 and answer.get_json()["reloaded"] is False


def test_reload_follows_the_alias(app_factory, served):
    settings, versions, test = served
    client = app_factory().test_client()
    registry = client_for(settings.tracking_uri)
    registry.set_registered_model_alias(settings.model_name, "production", versions["other"])
    try:
        answer = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).get_json()
        assert answer["reloaded"] is True and answer["model_version"] == versions["other"]
        assert dt.datetime.fromisoformat(answer["serving_from"]) <= dt.datetime.now(dt.UTC)
        scored = client.post("/predict", json={"customer": customer(test)}).get_json()
        assert scored["model_version"] == versions["other"]
    finally:
        registry.set_registered_model_alias(settings.model_name, "production", versions["production"])


def test_with_a_switch_delay_reload_says_when_the_new_version_serves(app_factory, served):
    settings, versions, test = served
    client = app_factory(switch_delay_s=1.0).test_client()
    registry = client_for(settings.tracking_uri)
    registry.set_registered_model_alias(settings.model_name, "production", versions["other"])
    try:
        answer = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).get_json()
        serving_from = dt.datetime.fromisoformat(answer["serving_from"])
        assert answer["model_version"] == versions["other"] and serving_from > dt.datetime.now(dt.UTC)
        model = client.get("/model").get_json()
        assert model["version"] == versions["production"]
        assert model["next"] == {"version": versions["other"], "serving_from": answer["serving_from"]}
        assert (
            client.post("/predict", json={"customer": customer(test)}).get_json()["model_version"]
            == (versions["production"])
        )
        time.sleep(max(0.0, (serving_from - dt.datetime.now(dt.UTC)).total_seconds()) + 0.01)
        assert (
            client.post("/predict", json={"customer": customer(test)}).get_json()["model_version"]
            == (versions["other"])
        )
        assert client.get("/model").get_json()["next"] is None
    finally:
        registry.set_registered_model_alias(settings.model_name, "production", versions["production"])


def test_registry_down_at_start_serves_the_cached_model(app_factory, served):
    _, versions, test = served
    app_factory()  # fills the disk cache from the registry
    offline = app_factory(settings={"tracking_uri": "http://127.0.0.1:9"}).test_client()
    ready = offline.get("/ready").get_json()
    assert ready["ready"] and ready["source"] == "disk cache" and ready["registry_error"]
    model = offline.get("/model").get_json()
    assert model["source"] == "disk cache" and model["version"] == versions["production"]
    assert offline.post("/predict", json={"customer": customer(test)}).status_code == 200


def test_the_predictor_reads_its_own_registry_whatever_the_process_global_uri(app_factory, served):
    """`models:/` URIs follow the process-wide registry URI; the predictor must not."""
    _, versions, test = served
    global_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri("http://127.0.0.1:9")  # e.g. another stack's stopped server
    try:
        client = app_factory().test_client()  # a fresh disk cache: it has to download
    finally:
        mlflow.set_tracking_uri(global_uri)
    assert client.get("/model").get_json()["version"] == versions["production"]
    assert client.post("/predict", json={"customer": customer(test)}).status_code == 200


def test_every_prediction_is_logged(app_factory, served):
    settings, _, test = served
    app = app_factory()
    client = app.test_client()
    engine = engine_for(settings.platform_database_url)
    with engine.connect() as connection:
        before = connection.execute(sa.select(sa.func.count()).select_from(prediction_log)).scalar()
    client.post("/predict", json={"customer": customer(test)}, headers={"X-Request-ID": "logged-1"})
    client.post("/predict/batch", json={"customers": [customer(test, i) for i in range(5)]})
    app.extensions["bankmarketing"]["predictions"].close()
    with engine.connect() as connection:
        rows = connection.execute(sa.select(prediction_log).order_by(prediction_log.c.id)).mappings().all()
    assert len(rows) == before + 6
    single = next(r for r in rows if r["request_id"] == "logged-1")
    assert single["features"] == customer(test) and 0 <= single["score"] <= 1
    deadline = time.monotonic()
    assert deadline  # rows were written by the background writer, not the request


@pytest.mark.parametrize("token", ["CHANGE_ME", "admin", "short-token"])
def test_a_weak_admin_token_stops_the_predictor_at_start(app_factory, token):
    with pytest.raises(ConfigurationError, match="PREDICTOR_ADMIN_TOKEN"):
        app_factory(admin_token=token)


API_KEY = "test-api-key-0123456789"


def test_with_an_api_key_scoring_answers_only_requests_that_send_it(app_factory, served):
    test = served[2]
    app = app_factory(api_key=API_KEY)
    client, log = app.test_client(), app.extensions["bankmarketing"]["predictions"]
    queued = log.written + len(log._rows)
    bodies = {"/predict": {"customer": customer(test)}, "/predict/batch": {"customers": [customer(test)] * 3}}
    for path, body in bodies.items():
        for headers in ({}, {"X-API-Key": API_KEY[:-1]}, {"X-API-Key": API_KEY + "x"}):
            refused = client.post(path, json=body, headers=headers)
            assert refused.status_code == 401, (path, headers)
            assert refused.get_json()["error"] == "missing or wrong API key: send it in the X-API-Key header"
        assert client.post(path, json=body, headers={"X-API-Key": API_KEY}).status_code == 200
    assert log.written + len(log._rows) == queued + 4  # only the answered customers are logged
    for path in ("/health", "/ready", "/model", "/openapi.json", "/metrics"):
        assert client.get(path).status_code == 200, path  # probes and docs need no key


def test_without_an_api_key_scoring_is_open(client, served):
    assert client.post("/predict", json={"customer": customer(served[2])}).status_code == 200


@pytest.mark.parametrize("key", ["CHANGE_ME", "short-key"])
def test_a_weak_api_key_stops_the_predictor_at_start(app_factory, key):
    with pytest.raises(ConfigurationError, match="PREDICTOR_API_KEY"):
        app_factory(api_key=key)
