"""PredictorClient against a real predictor over HTTP: answers, chunking, rejections, outages."""

from __future__ import annotations

import socket

import pytest
import requests

from bankmarketing.ui.client import (
    DEFAULT_URL,
    PredictorClient,
    PredictorRejected,
    PredictorUnavailable,
)
from bankmarketing.ui.customers import rejection_lines
from tests.ui.conftest import KEY, customer

pytestmark = pytest.mark.integration


def test_predict_model_and_ready_match_the_api(predictor_url, served):
    settings, versions, test = served
    client = PredictorClient()  # PREDICTOR_URL
    assert client.base_url == predictor_url
    record = customer(test, 3)
    answer = client.predict(record, explain=True)
    direct = requests.post(
        f"{predictor_url}/predict", json={"customer": record, "explain": True}, timeout=10
    ).json()
    assert answer["probability"] == direct["probability"] and answer["decision"] == direct["decision"]
    assert answer["contributions"] == direct["contributions"]
    assert (answer["model_name"], answer["model_version"]) == (settings.model_name, versions["production"])
    model = client.model()
    assert model["version"] == versions["production"] and model["card"].startswith("# Model card")
    assert client.ready()["ready"] is True


def test_challenger_matches_the_api(predictor_url, served):
    _, versions, _ = served
    answer = PredictorClient().challenger()
    assert answer == requests.get(f"{predictor_url}/challenger", timeout=10).json()
    assert (answer["mode"], answer["share"], answer["challenger"]) == ("off", None, None)
    assert answer["production_version"] == versions["production"] and isinstance(answer["comparisons"], list)


def test_batch_chunks_keep_order_and_equal_single_predictions(predictor_url, served):
    _, versions, test = served
    client = PredictorClient(predictor_url)
    records = [customer(test, i) for i in range(23)]
    done = []
    batch = client.predict_batch(records, chunk=5, progress=lambda d, t: done.append((d, t)))
    singles = [client.predict(r)["probability"] for r in records]
    assert [p["probability"] for p in batch["predictions"]] == singles
    assert (
        len(batch["request_ids"]) == 5
        and done[-1] == (23, 23)
        and [d for d, _ in done] == [5, 10, 15, 20, 23]
    )
    assert {p["model_version"] for p in batch["predictions"]} == {versions["production"]}


def test_batch_larger_than_the_api_allows_is_split_further(predictor_url, served):
    client = PredictorClient(predictor_url)
    records = [customer(served[2], i) for i in range(230)]
    assert (
        requests.post(f"{predictor_url}/predict/batch", json={"customers": records}, timeout=10).status_code
        == 413
    )
    batch = client.predict_batch(records)  # chunk=500, the API allows 100: "at most 100" → 100, 100, 30
    assert len(batch["request_ids"]) == 3
    expected = client.predict_batch(records, chunk=100)["predictions"]
    assert [p["probability"] for p in batch["predictions"]] == [p["probability"] for p in expected]


def test_rejected_rows_are_numbered_from_the_start_of_the_whole_list(predictor_url, served):
    client = PredictorClient(predictor_url)
    records = [customer(served[2], i) for i in range(12)]
    records[7]["age"] = 7
    records[11]["job"] = "astronaut"
    with pytest.raises(PredictorRejected) as caught:
        client.predict_batch(records, chunk=5)  # rows 5..9 are the second chunk: customers.2 there
    assert caught.value.status == 422 and caught.value.fields == ["customers.7.age"]
    assert "customers.7.age" in str(caught.value)
    assert rejection_lines(caught.value.detail) == [
        "row 8 (line 9 of the file), age: Input should be greater than or equal to 18"
    ]
    with pytest.raises(PredictorRejected) as single:
        client.predict(records[11])
    assert single.value.fields == ["customer.job"]


def test_unreachable_api_says_where_and_how_to_start_it(down_url, monkeypatch):
    client = PredictorClient()
    with pytest.raises(PredictorUnavailable) as caught:
        client.model()
    message = str(caught.value)
    assert down_url in message and "make serve" in message
    monkeypatch.delenv("PREDICTOR_URL")
    assert PredictorClient().base_url == DEFAULT_URL


def test_a_silent_api_times_out_as_unavailable():
    with socket.socket() as listening:  # accepts connections (backlog), never answers
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        with pytest.raises(PredictorUnavailable, match="timed out"):
            PredictorClient(url, timeout=0.3).predict_batch([{"age": 40}])


def test_the_api_key_in_the_environment_is_sent_with_every_request(keyed_predictor_url, served, monkeypatch):
    record = customer(served[2], 1)
    with pytest.raises(PredictorRejected) as refused:
        PredictorClient().predict(record)
    assert refused.value.status == 401 and "X-API-Key" in str(refused.value)
    monkeypatch.setenv("PREDICTOR_API_KEY", KEY)
    client = PredictorClient()
    assert 0 <= client.predict(record)["probability"] <= 1
    assert len(client.predict_batch([record] * 3)["predictions"]) == 3
