"""The alert receiver (Flask, served by gunicorn): `create_app()` is the factory.

gunicorn -c python:bankmarketing.alerts.gunicorn_conf 'bankmarketing.alerts.app:create_app()'
"""

from __future__ import annotations

import hmac
import logging
import time

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError

from bankmarketing.alerts import store
from bankmarketing.alerts.config import AlertReceiverConfig
from bankmarketing.alerts.grafana import sign
from bankmarketing.alerts.mage import trigger_retrain
from bankmarketing.alerts.schemas import GrafanaWebhook, validation_errors
from bankmarketing.config import Settings
from bankmarketing.web import install_json_errors, json_error, limit_bodies

log = logging.getLogger(__name__)

#: Grafana's built-in signature header when a contact point leaves `header` empty.
GRAFANA_DEFAULT_SIGNATURE_HEADER = "X-Grafana-Alert-Signature"


def _bearer(header: str) -> str | None:
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def authenticate(config: AlertReceiverConfig, headers, body: bytes, now: float | None = None) -> str | None:
    """None when the request carries every configured credential, else why not (for the 401)."""
    if config.token is not None and not _same(_bearer(headers.get("Authorization", "")), config.token):
        return "missing or wrong bearer token"
    if config.hmac_secret is not None:
        signature = headers.get(config.hmac_header) or headers.get(GRAFANA_DEFAULT_SIGNATURE_HEADER)
        if not signature:
            return f"missing HMAC signature header {config.hmac_header}"
        timestamp = headers.get(config.hmac_timestamp_header, "")
        if not timestamp.strip().isdigit():
            return f"missing or invalid signature timestamp header {config.hmac_timestamp_header}"
        age = (time.time() if now is None else now) - int(timestamp)
        if abs(age) > config.max_skew_s:
            return (
                f"signature timestamp outside the {config.max_skew_s:g} s window (replayed or skewed clock)"
            )
        if not _same(signature.strip().lower(), sign(config.hmac_secret, body, timestamp.strip())):
            return "wrong HMAC signature"
    return None


def create_app(settings: Settings | None = None, config: AlertReceiverConfig | None = None) -> Flask:
    """The receiver app; refuses to start without a real credential (ConfigurationError)."""
    settings = settings or Settings.from_env()
    config = (config or AlertReceiverConfig.from_env()).validate()
    url = settings.platform_database_url
    try:
        store.ping(url)  # creates or upgrades the tables once, before the first alert
    except Exception as exc:  # /ready reports it; alerts are refused with 503 until it is back
        log.warning("platform database not reachable at start: %s", type(exc).__name__)

    app = Flask(__name__)
    app.extensions["alert_receiver"] = {"config": config, "database_url": url}

    install_json_errors(
        app, config.max_body_bytes, 503, "the receiver could not record the alert; retry later", log
    )
    # 413 on every endpoint, 408 for a stalled body; what is left unread is drained (bounded)
    limit_bodies(app, config.max_body_bytes, config.body_timeout_s, config.drain_max_bytes)

    @app.post("/alerts")
    def receive():
        body = request.get_data(cache=True)  # read (bounded) before the handler
        refused = authenticate(config, request.headers, body)
        if refused:
            return json_error(401, refused)
        if not request.is_json:
            return json_error(415, "expected Content-Type: application/json")
        payload = request.get_json(silent=True)
        if payload is None:
            return json_error(
                400, "the body is not valid JSON", [{"field": "body", "message": "invalid JSON"}]
            )
        try:
            webhook = GrafanaWebhook.model_validate(payload)
        except ValidationError as exc:
            return json_error(400, "not a Grafana webhook payload", validation_errors(exc))
        results = [_handle(config, url, alert, webhook.groupKey) for alert in webhook.alerts]
        return jsonify({"received": len(results), "results": results})

    @app.get("/health")
    def health():
        return jsonify({"status": "alive"})

    @app.get("/ready")
    def ready():
        try:
            store.ping(url)
        except Exception as exc:
            return jsonify({"ready": False, "database": type(exc).__name__}), 503
        return jsonify({"ready": True})

    @app.get("/alerts")
    def listing():
        if not config.admin_token:
            return json_error(403, "listing is disabled: ALERT_RECEIVER_ADMIN_TOKEN is not set")
        if not _same(_bearer(request.headers.get("Authorization", "")), config.admin_token):
            return json_error(401, "missing or wrong admin bearer token")
        try:
            limit = min(max(int(request.args.get("limit", "50")), 1), 500)
        except ValueError:
            return json_error(
                400, "limit must be an integer", [{"field": "limit", "message": "not an integer"}]
            )
        return jsonify(store.recent(url, limit))

    @app.get("/metrics")
    def metrics():
        return Response(_exposition(url), mimetype="text/plain; version=0.0.4")

    return app


def _handle(config: AlertReceiverConfig, url: str, alert, group_key: str) -> dict:
    """One firing or resolved alert: recorded, and a retrain started when the receiver decides so."""
    answer = {"alertname": alert.alertname, "fingerprint": alert.fingerprint, "status": alert.status}
    if alert.status == "resolved":
        event_id = store.record_resolved(url, alert, group_key)
        return {**answer, "decision": "resolved", "event_id": event_id, "retraining_id": None}
    claim = store.claim(url, alert, group_key, config.cooldown_s, config.max_runtime_s, config.triggered_by)
    detail = claim.detail
    decision = claim.decision
    if decision == "started":
        variables = {
            "alertname": alert.alertname,
            "fingerprint": alert.fingerprint,
            "starts_at": alert.startsAt.isoformat(),
            "value": alert.value,
            "period": alert.labels.get("period"),
            "retraining_id": claim.retraining_id,
            "triggered_by": config.triggered_by,
        }
        result = trigger_retrain(config, variables)
        detail = result.detail
        decision = store.finish_trigger(
            url, claim, result.ok, result.detail, result.schedule_id, result.pipeline_run_id
        )
    return {
        **answer,
        "decision": decision,
        "event_id": claim.event_id,
        "retraining_id": claim.retraining_id,
        "detail": detail,
    }


def _exposition(url: str) -> str:
    """The receiver's counts in Prometheus' text format (read from the database: all workers)."""
    decisions, statuses = store.counts(url)
    lines = [
        "# HELP alert_receiver_events alert events recorded, by decision (all workers)",
        "# TYPE alert_receiver_events gauge",
        *(f'alert_receiver_events{{decision="{k}"}} {v}' for k, v in sorted(decisions.items())),
        "# HELP alert_receiver_retrainings retrainings, by status",
        "# TYPE alert_receiver_retrainings gauge",
        *(f'alert_receiver_retrainings{{status="{k}"}} {v}' for k, v in sorted(statuses.items())),
    ]
    return "\n".join(lines) + "\n"
