"""The Flask predictor (served by gunicorn): `create_app()` is the factory.

gunicorn 'bankmarketing.serving.app:create_app()' -w 2 -b 0.0.0.0:9696
"""

from __future__ import annotations

import atexit
import datetime as dt
import gc
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from flask import Flask, Response, jsonify, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import ValidationError

from bankmarketing.challenger import CHALLENGER, CHALLENGER_MODES, stored_comparisons
from bankmarketing.config import (
    BODY_DRAIN_BYTES,
    BODY_SECONDS,
    ConfigurationError,
    Settings,
    check_credential,
    env,
)
from bankmarketing.predictions.log import PredictionLog
from bankmarketing.predictions.outcomes import repeated_request_ids, store_outcomes
from bankmarketing.scoring import ExplanationUnavailable
from bankmarketing.serving.model_holder import ModelHolder
from bankmarketing.serving.openapi import openapi_document
from bankmarketing.serving.predictor import NoModelLoaded, Predictor
from bankmarketing.serving.schemas import (
    DEFAULT_MAX_BATCH,
    BatchRequest,
    OutcomesRequest,
    PredictRequest,
    record,
    validation_errors,
)
from bankmarketing.web import install_json_errors, json_error, limit_bodies

log = logging.getLogger(__name__)


def _share(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigurationError(
            f"PREDICTOR_CHALLENGER_SHARE is {text!r}: expected a share between 0 and 1, e.g. 0.1"
        ) from None


@dataclass(frozen=True)
class ServingConfig:
    """Predictor settings (PREDICTOR_* variables; model and database from Settings)."""

    alias: str = "production"
    cache_dir: Path = Path(".run/predictor-cache")
    poll_s: float = 30.0
    #: Workers sharing cache_dir switch to a new version together, this long after the first
    #: one sees it (0: each process swaps as soon as it has loaded the new version).
    switch_delay_s: float = 0.0
    admin_token: str | None = None
    #: With a key, /predict and /predict/batch answer only requests that send it (X-API-Key).
    api_key: str | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    max_body_bytes: int = 2 * 1024 * 1024
    #: A body is read within this many seconds (else 408); what a handler left unread is drained
    #: after the answer, up to this many bytes (see docs/serving.md, "Oversize and slow bodies").
    body_timeout_s: float = BODY_SECONDS
    drain_max_bytes: int = BODY_DRAIN_BYTES
    log_predictions: bool = True
    #: Prediction log: rows held in memory per worker; where rows go while the database is
    #: down (default: <cache_dir>/prediction-log-spill) and at most how many bytes per worker.
    log_memory_rows: int = 100_000
    log_spill_dir: Path | None = None
    log_spill_max_bytes: int = 1 << 30
    #: A challenger version (its registry alias) scored beside production: `off`, `shadow`
    #: (scored and logged, never returned) or `split` (answers for `challenger_share` of the
    #: customers, sticky by customer id).
    challenger_mode: str = "off"
    challenger_alias: str = CHALLENGER
    challenger_share: float = 0.1

    def __post_init__(self):
        if self.challenger_mode not in CHALLENGER_MODES:
            raise ConfigurationError(
                f"PREDICTOR_CHALLENGER_MODE is {self.challenger_mode!r}: expected one of "
                + ", ".join(CHALLENGER_MODES)
            )
        if not 0.0 <= self.challenger_share <= 1.0:
            raise ConfigurationError(
                f"PREDICTOR_CHALLENGER_SHARE is {self.challenger_share}: expected a share between 0 and 1"
            )

    @classmethod
    def from_env(cls) -> ServingConfig:
        return cls(
            alias=env("PREDICTOR_MODEL_ALIAS", "production"),
            cache_dir=Path(env("PREDICTOR_CACHE_DIR", ".run/predictor-cache")),
            poll_s=float(env("PREDICTOR_POLL_SECONDS", "30")),
            switch_delay_s=float(env("PREDICTOR_SWITCH_DELAY_SECONDS", "5")),
            admin_token=os.environ.get("PREDICTOR_ADMIN_TOKEN") or None,
            api_key=os.environ.get("PREDICTOR_API_KEY") or None,
            max_batch=int(env("PREDICTOR_MAX_BATCH", str(DEFAULT_MAX_BATCH))),
            max_body_bytes=int(env("PREDICTOR_MAX_BODY_BYTES", str(2 * 1024 * 1024))),
            body_timeout_s=float(env("PREDICTOR_BODY_TIMEOUT_SECONDS", str(BODY_SECONDS))),
            drain_max_bytes=int(env("PREDICTOR_DRAIN_MAX_BYTES", str(BODY_DRAIN_BYTES))),
            log_predictions=env("PREDICTOR_LOG_PREDICTIONS", "true").lower() != "false",
            log_memory_rows=int(env("PREDICTOR_LOG_MEMORY_ROWS", "100000")),
            log_spill_dir=Path(env("PREDICTOR_LOG_SPILL_DIR", ""))
            if env("PREDICTOR_LOG_SPILL_DIR", "")
            else None,
            log_spill_max_bytes=int(float(env("PREDICTOR_LOG_SPILL_MAX_MB", "1024")) * 1024 * 1024),
            challenger_mode=env("PREDICTOR_CHALLENGER_MODE", "off").lower(),
            challenger_alias=env("PREDICTOR_CHALLENGER_ALIAS", CHALLENGER),
            challenger_share=_share(env("PREDICTOR_CHALLENGER_SHARE", "0.1")),
        )


#: The prediction log's counters, published as gauges summed over the workers.
#: The header that carries PREDICTOR_API_KEY.
API_KEY_HEADER = "X-API-Key"

PREDICTION_LOG_COUNTS = {
    "written": "prediction rows written to the database (replayed ones included)",
    "dropped": "prediction rows dropped: nowhere to put them (disk cap, or no spill folder in an outage)",
    "spilled": "prediction rows spilled to disk while the database was unreachable",
    "replayed": "spilled prediction rows read back and written to the database",
    "waited_seconds": "seconds requests waited for room in the log's queue (the writer fell behind)",
}


class _Metrics:
    """Prometheus metrics (aggregated over gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "predictor_requests",
            "requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.rows = Counter("predictor_scored_rows", "customers scored", registry=self.registry)
        self.latency = Histogram(
            "predictor_request_seconds",
            "request latency by endpoint",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.version = Gauge(
            "predictor_model_version", "model version served", multiprocess_mode="max", registry=self.registry
        )
        self.log_counts = {
            name: Gauge(
                f"predictor_prediction_log_{name}", text, multiprocess_mode="sum", registry=self.registry
            )
            for name, text in PREDICTION_LOG_COUNTS.items()
        }

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat()


def _answer(body: dict) -> Response:
    """What `jsonify` sends (compact, sorted keys, a final newline) for plain JSON values,
    without its provider's per-call lookups."""
    return Response(_dumps(body) + "\n", mimetype="application/json")


_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def _request_id() -> str:
    """`uuid.uuid4().hex` (random, version 4), without building a UUID object."""
    value = bytearray(os.urandom(16))
    value[6], value[8] = (value[6] & 0x0F) | 0x40, (value[8] & 0x3F) | 0x80
    return value.hex()


@dataclass
class _Served:
    """What the routes share: the settings, the models followed, the predictor and its log."""

    settings: Settings
    config: ServingConfig
    holder: ModelHolder
    challengers: ModelHolder | None  # follows the challenger alias when a challenger mode is on
    predictor: Predictor
    predictions: PredictionLog
    metrics: _Metrics
    stop: threading.Event

    def not_loaded(self) -> Response:
        reason = (
            "the registry is unreachable and no model is cached (see /ready)"
            if self.holder.registry_error
            else f"the registry has no {self.config.alias!r} version"
        )
        return json_error(503, f"no model loaded yet: {reason}")

    def too_many(self, field: str, error: str) -> Response:
        return json_error(413, error, [{"field": field, "message": f"at most {self.config.max_batch} items"}])

    def admin_denied(self, action: str) -> Response | None:
        """403 when admin endpoints are off (no token configured), 401 without the right token."""
        if not self.config.admin_token:
            return json_error(403, f"{action} is disabled: PREDICTOR_ADMIN_TOKEN is not set")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.config.admin_token.encode()):
            return json_error(401, "missing or wrong bearer token")
        return None

    def publish_log_counts(self, published: list) -> None:
        """The prediction log's counts into the gauges, when they changed since `published`."""
        kept = self.predictions
        counts = (kept.written, kept.dropped, kept.spilled, kept.replayed, kept.waited_s)
        if counts != published[0]:
            published[0] = counts
            for gauge, value in zip(self.metrics.log_counts.values(), counts, strict=True):
                gauge.set(value)


def _parse(model):
    """The request body as `model`, or the JSON failure (415, 400 or 422 naming the field)."""
    if not request.is_json:
        return None, json_error(415, "expected Content-Type: application/json")
    data = request.get_data()
    try:  # parse and validate in one pass (pydantic's JSON parser)
        return model.model_validate_json(data), None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] != "json_invalid" and (first["loc"] or first["input"] is not None):
            return None, json_error(422, "invalid request", validation_errors(exc))
    # Not UTF-8 JSON, or null: Flask's JSON parser decides, as it always did.
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested deeper than Python's parser goes (pydantic's stops at 255)
        return None, json_error(400, "the body is not valid JSON: nested too deeply")
    if body is None:
        return None, json_error(400, "the body is not valid JSON")
    try:
        return model.model_validate(body), None
    except ValidationError as exc:
        return None, json_error(422, "invalid request", validation_errors(exc))


def _followed(settings: Settings, config: ServingConfig) -> tuple[ModelHolder, ModelHolder | None]:
    """The production alias's model, and the challenger alias's when a challenger mode is on."""
    holder = ModelHolder(
        settings.tracking_uri, settings.model_name, config.alias, config.cache_dir, config.switch_delay_s
    )
    holder.load_initial()
    if config.challenger_mode == "off":
        return holder, None
    challenger_cache = config.cache_dir / config.challenger_alias
    challenger_cache.mkdir(exist_ok=True)
    challengers = ModelHolder(
        settings.tracking_uri,
        settings.model_name,
        config.challenger_alias,
        challenger_cache,
        config.switch_delay_s,
        optional=True,
    )
    challengers.load_initial()
    return holder, challengers


def create_app(
    settings: Settings | None = None, config: ServingConfig | None = None, start_threads: bool = True
) -> Flask:
    """The predictor app: loads the model, starts the alias poller and the prediction log."""
    settings = settings or Settings.from_env()
    config = config or ServingConfig.from_env()
    check_credential("PREDICTOR_ADMIN_TOKEN", config.admin_token)  # unset = reload off; never weak
    check_credential("PREDICTOR_API_KEY", config.api_key)  # unset = scoring open (the local stack)
    config.cache_dir.mkdir(parents=True, exist_ok=True)
    holder, challengers = _followed(settings, config)
    predictions = PredictionLog(
        settings.platform_database_url,
        capacity=config.log_memory_rows,
        spill_dir=config.log_spill_dir or config.cache_dir / "prediction-log-spill",
        spill_max_bytes=config.log_spill_max_bytes,
    )
    stop = threading.Event()
    if start_threads:
        holder.follow(config.poll_s, stop)
        if challengers is not None:
            challengers.follow(config.poll_s, stop)
        if config.log_predictions:
            predictions.start()
            atexit.register(predictions.close)  # a stopping worker writes what it has queued
    predictor = Predictor(
        holder,
        challengers,
        predictions,
        challenger_mode=config.challenger_mode,
        challenger_share=config.challenger_share,
        log_predictions=config.log_predictions,
    )
    served = _Served(settings, config, holder, challengers, predictor, predictions, _Metrics(), stop)
    app = Flask(__name__)
    app.extensions["bankmarketing"] = {
        "holder": holder,
        "challengers": challengers,
        "predictor": predictor,
        "predictions": predictions,
        "stop": stop,
    }
    _observe_requests(app, served)
    install_json_errors(app, config.max_body_bytes, 500, "internal error", log)
    limit_bodies(app, config.max_body_bytes, config.body_timeout_s, config.drain_max_bytes)
    _scoring_routes(app, served)
    _status_routes(app, served, openapi_document(config.max_batch))
    _admin_routes(app, served)
    np.seterr(all="ignore")
    gc.freeze()  # the loaded model and libraries leave the collector's generations: no long pauses
    return app


def _observe_requests(app: Flask, served: _Served) -> None:
    """Each request's latency and status into the metrics, the log's counts into its gauges."""
    counted: dict[tuple[str, int], tuple] = {}  # (endpoint, status) -> its metric children
    published = [()]  # the prediction log's counts last published
    metrics = served.metrics

    @app.before_request
    def _start_timer():
        request.environ["bankmarketing.start"] = time.perf_counter()

    @app.after_request
    def _observe(response):
        elapsed = time.perf_counter() - request.environ["bankmarketing.start"]
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        key = (endpoint, response.status_code)
        children = counted.get(key)
        if children is None:
            children = counted[key] = (
                metrics.requests.labels(endpoint, str(response.status_code)),
                metrics.latency.labels(endpoint),
            )
        children[0].inc()
        children[1].observe(elapsed)
        served.publish_log_counts(published)
        return response

    @app.get("/metrics")
    def prometheus():
        if served.holder.current is not None:
            metrics.version.set(int(served.holder.current.version))
        served.publish_log_counts(published)
        return Response(metrics.exposition(), mimetype="text/plain; version=0.0.4")


def _scoring_routes(app: Flask, served: _Served) -> None:
    """`/predict` and `/predict/batch` (behind the API key when one is set)."""
    config = served.config

    @app.before_request
    def _require_api_key():
        """401 for a scoring request without the API key, when one is set."""
        if config.api_key and request.path in ("/predict", "/predict/batch"):
            given = request.headers.get(API_KEY_HEADER, "")
            if not hmac.compare_digest(given.encode(), config.api_key.encode()):
                return json_error(401, f"missing or wrong API key: send it in the {API_KEY_HEADER} header")
        return None

    def score(records: list[dict], explain: bool, request_id: str, customer_ids: list[str] | None):
        """The predictor's answer, or the JSON failure (no model yet; explain not available)."""
        try:
            scored = served.predictor.score(records, explain, request_id, customer_ids)
        except NoModelLoaded:
            return None, served.not_loaded()
        except ExplanationUnavailable as exc:
            return None, json_error(422, str(exc), [{"field": "explain", "message": str(exc)}])
        served.metrics.rows.inc(len(records))
        return scored, None

    @app.post("/predict")
    def predict():
        request_id = request.headers.get("X-Request-ID") or _request_id()
        body, failure = _parse(PredictRequest)
        if failure:
            return failure
        ids = [body.customer_id] if body.customer_id else None
        scored, failure = score([record(body.customer)], body.explain, request_id, ids)
        if failure:
            return failure
        model = scored.version_of(0)
        answer = {
            "request_id": request_id,
            "probability": scored.probabilities[0],
            "decision": "call" if scored.decisions[0] else "skip",
            "threshold": model.threshold,
            "model_name": model.name,
            "model_version": model.version,
        }
        if scored.contributions is not None:
            answer["contributions"] = scored.contributions[0]
        return _answer(answer)

    @app.post("/predict/batch")
    def predict_batch():
        request_id = request.headers.get("X-Request-ID") or _request_id()
        body, failure = _parse(BatchRequest)
        if failure:
            return failure
        if len(body.customers) > config.max_batch:
            return served.too_many(
                "customers", f"batch of {len(body.customers)} customers; at most {config.max_batch}"
            )
        records = [record(c) for c in body.customers]
        scored, failure = score(records, body.explain, request_id, body.customer_ids)
        if failure:
            return failure
        return _answer({"request_id": request_id, **_batch_answer(scored)})


def _batch_answer(scored) -> dict:
    """A batch's answer: the version, its threshold and one prediction per customer (in split
    mode each with its answering version and threshold; with `explain`, contributions)."""
    rows = [
        {"probability": p, "decision": "call" if d else "skip"}
        for p, d in zip(scored.probabilities, scored.decisions, strict=True)
    ]
    if scored.answering:
        for row, version in zip(rows, scored.answering, strict=True):
            row["model_version"], row["threshold"] = version.version, version.threshold
    if scored.contributions is not None:
        for row, contribution in zip(rows, scored.contributions, strict=True):
            row["contributions"] = contribution
    model = scored.model
    return {
        "model_name": model.name,
        "model_version": model.version,
        "threshold": model.threshold,
        "predictions": rows,
    }


def _status_routes(app: Flask, served: _Served, document: dict) -> None:
    """`/health`, `/ready`, `/model`, `/challenger` and `/openapi.json`."""
    holder, config = served.holder, served.config

    @app.get("/health")
    def health():
        return jsonify({"status": "alive"})

    @app.get("/ready")
    def ready():
        model = holder.current
        body = {
            "ready": model is not None,
            "registry_error": holder.registry_error,
            "source": model.source if model else None,
            "model_version": model.version if model else None,
        }
        return jsonify(body), 200 if model else 503

    @app.get("/model")
    def model_info():
        model = holder.current
        if model is None:
            return served.not_loaded()
        upcoming = holder.next_switch
        return jsonify(
            {
                "name": model.name,
                "version": model.version,
                "alias": config.alias,
                "threshold": model.threshold,
                "source": model.source,
                "fast_path": model.scorer.fast,
                "kind": model.scorer.kind,
                "explainable": model.scorer.explanation_method is not None,
                "explanation_method": model.scorer.explanation_method,
                "explained_output": model.scorer.explained_output,
                "registry_error": holder.registry_error,
                "metrics": model.metrics,
                "loaded_at": _iso(model.loaded_at),
                "next": {"version": upcoming[0], "serving_from": _iso(upcoming[1])} if upcoming else None,
                "card": model.card,
                "explanation": model.explanation,
            }
        )

    @app.get("/challenger")
    def challenger_info():
        return jsonify(_challenger_status(served))

    @app.get("/openapi.json")
    def openapi():
        return jsonify(document)


def _challenger_status(served: _Served) -> dict:
    """The challenger set-up and the newest live comparisons that `monitor` stored."""
    config, challengers = served.config, served.challengers
    model = served.holder.current
    rival = challengers.current if challengers is not None else None
    body = {
        "mode": config.challenger_mode,
        "share": config.challenger_share if config.challenger_mode == "split" else None,
        "alias": config.challenger_alias,
        "production_version": model.version if model else None,
        "challenger": None
        if rival is None
        else {
            "version": rival.version,
            "threshold": rival.threshold,
            "source": rival.source,
            "loaded_at": _iso(rival.loaded_at),
            "scoring": model is not None and rival.version != model.version,
        },
        "registry_error": challengers.registry_error if challengers is not None else None,
        "comparisons": [],
        "comparisons_error": None,
    }
    settings = served.settings
    try:
        body["comparisons"] = stored_comparisons(settings.platform_database_url, settings.model_name, 200)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("challenger comparisons not read: %s", exc)
        body["comparisons_error"] = "the platform database is unavailable: comparisons not shown"
    return body


def _admin_routes(app: Flask, served: _Served) -> None:
    """`/outcomes` and `/admin/reload`, behind the admin bearer token."""
    config, holder = served.config, served.holder

    @app.post("/outcomes")
    def outcomes():
        denied = served.admin_denied("loading outcomes")
        if denied:
            return denied
        body, failure = _parse(OutcomesRequest)
        if failure:
            return failure
        if len(body.outcomes) > config.max_batch:
            return served.too_many(
                "outcomes", f"{len(body.outcomes)} outcomes; at most {config.max_batch} per request"
            )
        repeated = repeated_request_ids([o.request_id for o in body.outcomes])
        if repeated:
            at, first = repeated[0]
            message = f"{body.outcomes[at].request_id!r} appears twice (also outcomes.{first})"
            return json_error(
                422, "invalid request", [{"field": f"outcomes.{at}.request_id", "message": message}]
            )
        try:
            return jsonify(store_outcomes(served.settings, body.outcomes, f"api {request.remote_addr}"))
        except sa.exc.SQLAlchemyError as exc:
            log.error("outcomes not stored: %s", exc)
            return json_error(503, "the platform database is unavailable: nothing loaded, send them again")

    @app.post("/admin/reload")
    def reload():
        denied = served.admin_denied("reload")
        if denied:
            return denied
        try:
            changed = holder.refresh()
        except Exception as exc:
            return json_error(503, f"registry unavailable: {type(exc).__name__}")
        upcoming = holder.next_switch
        version, switch_at = upcoming if upcoming else (holder.current.version, time.time())
        return jsonify({"reloaded": changed, "model_version": version, "serving_from": _iso(switch_at)})
