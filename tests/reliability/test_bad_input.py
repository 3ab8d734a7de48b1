"""The predictor under bad input: generated cases from its own OpenAPI document, then by hand.

Schemathesis reads `/openapi.json` from the app itself (in-process WSGI) and generates
requests for every operation, fitting the schema (positive) and breaking it (negative):
no answer may be a 5xx, every 4xx must be the service's JSON error and a 422 names each
offending field (`customer.age`, `customers.3.job`); every positive /predict and
/predict/batch case is scored (200). The total and the 5xx count are
printed (README's reliability section). Then hand-written cases the generator does not
reach: deep nesting, a 10 MB body, NaN/Infinity, strings for numbers, unicode, duplicate
keys, wrong content types, and a slow client against a live gunicorn.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from bankmarketing.serving.app import ServingConfig, create_app
from tests.conftest import ADMIN_TOKEN, REPO, migrated
from tests.serving.gunicorn_process import Gunicorn
from tests.serving.test_app import customer

pytestmark = pytest.mark.integration

#: Examples per (operation, mode); Hypothesis stops early where the space is small (GETs).
BUDGET = {"/predict": 650, "/predict/batch": 400, "/outcomes": 150}
OTHER_EXAMPLES = 25
MIN_CASES = 2_000
FIELD_ROOTS = {"customer", "customers", "customer_id", "customer_ids", "explain", "outcomes", "body"}


@pytest.fixture(scope="module")
def app(served, tmp_path_factory):
    config = ServingConfig(
        cache_dir=tmp_path_factory.mktemp("bad-input") / "cache",
        admin_token=ADMIN_TOKEN,
        poll_s=3600,
        max_batch=100,
        max_body_bytes=256 * 1024,
    )
    app = create_app(served[0], config)
    yield app
    app.extensions["bankmarketing"]["stop"].set()
    app.extensions["bankmarketing"]["predictions"].close()


def check_answer(status: int, body_text: str, content_type: str) -> None:
    """No 5xx; a 4xx is the JSON error body; a 422 names each field it refuses."""
    assert status < 500, (status, body_text[:500])
    if status < 400:
        return
    assert content_type.startswith("application/json"), (status, content_type)
    body = json.loads(body_text)
    assert isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["detail"], list), body
    for item in body["detail"]:
        assert item["field"] and item["message"], body
    if status == 422:
        assert body["detail"], body
        for item in body["detail"]:
            known = item["field"].split(".")[0] in FIELD_ROOTS
            assert known or item["message"] == "Extra inputs are not permitted", body
    for leak in ("Traceback", "/site-packages/", str(REPO), 'File "'):
        assert leak not in body_text, body_text[:500]


def json_integers(value):
    """Integral floats (27.0, which JSON Schema calls integers) as JSON integers: the
    predictor is strict and takes 41, not 41.0 (its document says so)."""
    if isinstance(value, dict):
        return {k: json_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_integers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def test_generated_cases_from_the_openapi_document(app, capsys):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    statuses: Counter = Counter()
    per_operation: Counter = Counter()
    scored: Counter = Counter()

    def exercise(operation, mode, examples: int) -> None:
        key = f"{operation.method.upper()} {operation.path} {mode.value}"

        @seed(20261122)
        @settings(
            max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy(mode))
        def run(case):
            if mode == GenerationMode.POSITIVE and isinstance(case.body, dict):
                case.body = json_integers(case.body)
            if operation.path == "/outcomes":  # past the token, to the validation
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_TOKEN}"}
                if mode == GenerationMode.POSITIVE:  # the document's rule: each request id once
                    unique = {o["request_id"]: o for o in reversed(case.body["outcomes"])}
                    case.body["outcomes"] = list(reversed(unique.values()))
            batch = case.body if operation.path == "/predict/batch" and isinstance(case.body, dict) else {}
            if mode == GenerationMode.POSITIVE and batch.get("customer_ids") is not None:
                # the document's rule: one id per customer
                batch["customer_ids"] = [f"customer-{i}" for i in range(len(batch["customers"]))]
            response = case.call()
            statuses[response.status_code] += 1
            per_operation[key] += 1
            if mode == GenerationMode.POSITIVE and operation.path in BUDGET:
                assert response.status_code == 200, (case.body, response.text)  # valid: scored
                scored[key] += 1
            headers = {k.lower(): v for k, v in response.headers.items()}
            check_answer(response.status_code, response.text, headers.get("content-type", [""])[0])

        try:
            run()
        except Unsatisfiable:  # nothing to break in an operation without a body or parameters
            assert mode == GenerationMode.NEGATIVE and operation.path not in BUDGET

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            exercise(operation, mode, BUDGET.get(operation.path, OTHER_EXAMPLES))
    total = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    with capsys.disabled():
        print(
            f"\nschemathesis: {total} generated cases, {server_errors} 5xx; "
            f"by status {dict(sorted(statuses.items()))}"
        )
        for key, n in sorted(per_operation.items()):
            print(f"  {key}: {n}")
    assert server_errors == 0
    assert scored["POST /predict positive"] == BUDGET["/predict"]
    assert total >= MIN_CASES


# --- by hand ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def good(served) -> dict:
    return customer(served[2])


def post_raw(client, data, path="/predict", content_type="application/json"):
    response = client.post(path, data=data, content_type=content_type)
    check_answer(response.status_code, response.get_data(as_text=True), response.content_type or "")
    return response


@pytest.mark.parametrize("depth", [100, 10_000, 100_000])
def test_deeply_nested_json_is_refused_not_a_crash(client, good, depth):
    nested = "[" * depth + "]" * depth
    for body in (nested, json.dumps({"customer": "@"}).replace('"@"', nested)):
        response = post_raw(client, body)
        assert response.status_code in (400, 413, 422)
    inside = json.dumps({"customer": good | {"age": "@"}}).replace('"@"', nested)
    assert post_raw(client, inside).status_code in (400, 413, 422)


def test_a_10_mb_body_is_413(client, good):
    body = json.dumps({"customer": good, "padding": "x" * (10 * 1024 * 1024)})
    for path in ("/predict", "/predict/batch"):
        response = post_raw(client, body, path)
        assert response.status_code == 413 and "larger than" in response.get_json()["error"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999"])
@pytest.mark.parametrize("field", ["age", "balance", "pdays"])
def test_nan_and_infinity_are_refused_naming_the_field(client, good, field, value):
    body = json.dumps({"customer": good | {field: "@"}}).replace('"@"', value)
    response = post_raw(client, body)
    assert response.status_code in (400, 422)
    if response.status_code == 422:
        assert any(d["field"] == f"customer.{field}" for d in response.get_json()["detail"])


@pytest.mark.parametrize("value", ["41", "", " 41", "4.1e1", "0x29", "٤١", "41\x00"])
def test_strings_where_numbers_go(client, good, value):
    response = post_raw(client, json.dumps({"customer": good | {"age": value}}))
    assert response.status_code == 422
    assert [d["field"] for d in response.get_json()["detail"]] == ["customer.age"]


@pytest.mark.parametrize(
    "value", ["ädmin.", "admin.\u0000", "\U0001f4a9", "\u202eadmin.", "ADMIN.", "admin. ", "\ud800"]
)
def test_unicode_in_categories_is_refused_naming_the_field(client, good, value):
    body = json.dumps({"customer": good | {"job": value}})  # ensure_ascii: \ud800 stays an escape
    response = post_raw(client, body)
    assert response.status_code in (400, 422)
    if response.status_code == 422:
        assert [d["field"] for d in response.get_json()["detail"]] == ["customer.job"]


def test_unicode_keys_and_invalid_utf8(client, good):
    response = post_raw(client, json.dumps({"customer": good | {"âge\ud800": 41}}))
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["field"].startswith("customer")  # a lone surrogate: the object
    raw = json.dumps({"customer": good}).encode().replace(b'"married"', b'"m\xe4rried"')
    assert post_raw(client, raw).status_code in (400, 422)
    utf16 = b"\xff\xfe" + json.dumps({"customer": good}).encode("utf-16-le")
    assert post_raw(client, utf16).status_code == 200  # UTF-16 with a BOM is JSON (RFC 8259, Python's json)


def test_duplicate_keys_the_last_one_wins_as_in_python(client, good):
    text = json.dumps({"customer": good})
    twice = text.replace('"age": ', '"age": 90, "age": ', 1)
    assert json.loads(twice)["customer"]["age"] == good["age"]
    expected = client.post("/predict", json={"customer": good}).get_json()["probability"]
    response = post_raw(client, twice)
    assert response.status_code == 200 and response.get_json()["probability"] == expected
    bad_last = text.replace(f'"age": {good["age"]}', f'"age": {good["age"]}, "age": "x"', 1)
    response = post_raw(client, bad_last)
    assert response.status_code == 422 and response.get_json()["detail"][0]["field"] == "customer.age"
    customer_twice = text[:-1] + ', "customer": {"age": 41}}'
    assert post_raw(client, customer_twice).status_code == 422


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
        "",
    ],
)
def test_wrong_content_type_is_415(client, good, content_type):
    response = post_raw(client, json.dumps({"customer": good}), content_type=content_type)
    assert response.status_code == 415


def test_json_with_a_charset_or_a_suffix_is_accepted(client, good):
    body = json.dumps({"customer": good})
    assert post_raw(client, body, content_type="application/json; charset=utf-8").status_code == 200
    assert post_raw(client, body, content_type="application/problem+json").status_code == 200


# --- a slow client against a live gunicorn -----------------------------------------------


@pytest.fixture(scope="module")
def live(served, tmp_path_factory):
    """gunicorn with the project's config, 2 sync workers, its worker timeout cut to 5 s."""
    settings_, _, _ = served
    folder = tmp_path_factory.mktemp("slow-client")
    conf = folder / "gunicorn_conf.py"
    conf.write_text("from bankmarketing.serving.gunicorn_conf import *  # noqa\ntimeout = 5\n")
    server = Gunicorn(
        REPO / ".venv/app/bin",
        folder,
        {
            "MODEL_NAME": settings_.model_name,
            "MLFLOW_TRACKING_URI": settings_.tracking_uri,
            "PREDICTOR_CACHE_DIR": str(folder / "cache"),
            "DATABASE_URL": migrated(f"sqlite:///{folder}/platform.db"),
            "PREDICTOR_WORKERS": "2",
            "PREDICTOR_MAX_BODY_BYTES": str(256 * 1024),
        },
        folder / "gunicorn.log",
        conf=str(conf),
    )
    server.wait_ready()
    yield server
    server.stop()


def test_a_slow_client_neither_hangs_a_worker_forever_nor_blocks_others(live, good):
    body = json.dumps({"customer": good}).encode()
    slow = socket.create_connection(("127.0.0.1", live.port))
    slow.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    started = time.monotonic()
    answered = 0
    while time.monotonic() - started < 8:  # past the 5 s worker timeout
        response = requests.post(f"{live.url}/predict", json={"customer": good}, timeout=5)
        assert response.status_code == 200
        answered += 1
        try:
            slow.sendall(body[10:11])  # a byte now and then: slower than any real client
        except OSError:
            break
        time.sleep(0.5)
    slow.settimeout(10)
    try:
        rest = slow.recv(65536)  # the worker gave up on it: closed (b"") or an error answer
    except (TimeoutError, OSError):
        rest = b"timeout"
    slow.close()
    assert rest != b"timeout", "the slow client's worker is still waiting after 18 s"
    assert not rest or not rest.startswith(b"HTTP/1.1 200")
    assert answered >= 10
    for _ in range(20):  # the master replaced the worker it killed: both serve again
        assert requests.post(f"{live.url}/predict", json={"customer": good}, timeout=5).status_code == 200


def test_a_10_mb_chunked_body_is_refused_by_the_live_server(live, good):
    def chunks():
        yield json.dumps({"customer": good})[:-1].encode() + b', "padding": "'
        for _ in range(10):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    response = requests.post(
        f"{live.url}/predict", data=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    check_answer(response.status_code, response.text, response.headers.get("Content-Type", ""))
    assert response.status_code in (400, 413)
    assert requests.post(f"{live.url}/predict", json={"customer": good}, timeout=5).status_code == 200
