"""Build and post the payload Grafana's webhook contact point sends (the local stack has no Grafana).

`monitor` evaluates the same rule as Grafana's alert and calls

    post_alert(url, grafana_payload("prediction drift > 0.1", labels, value, starts_at), token)

so the receiver sees one format whichever side raised the alert.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from typing import Any

#: Grafana's zero time: the endsAt of an alert that is still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF


def fingerprint(labels: dict[str, str]) -> str:
    """A stable hash of the labels, computed as Prometheus/Grafana do (FNV-1a 64 over sorted pairs)."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, str(labels[name])):
            for byte in part.encode():
                value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            value = ((value ^ _SEPARATOR) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def _rfc3339(moment: dt.datetime | str) -> str:
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _matchers(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def grafana_payload(
    rule_title: str,
    labels: dict[str, str] | None,
    value: float | None,
    starts_at: dt.datetime | str,
    *,
    status: str = "firing",
    annotations: dict[str, str] | None = None,
    threshold: float | None = None,
    receiver: str = "bankmarketing-alert-receiver",
    external_url: str = "http://127.0.0.1:3000/",
    rule_uid: str = "bankmarketing-prediction-drift",
    ends_at: dt.datetime | str | None = None,
) -> dict[str, Any]:
    """One alert in the exact shape of Grafana's webhook (firing by default, or resolved).

    `labels` are the alert's own labels; `alertname` (the rule title) and `grafana_folder`
    are added as Grafana adds them. `values` follow the rule's refIds: A = the query's
    value, C = the threshold condition (1 when firing).
    """
    if status not in ("firing", "resolved"):
        raise ValueError(f"status must be firing or resolved, not {status!r}")
    alert_labels = {"alertname": rule_title, "grafana_folder": "bankmarketing", **(labels or {})}
    text_annotations = {"summary": f"{rule_title}: value {value}", **(annotations or {})}
    if threshold is not None:
        text_annotations.setdefault("threshold", str(threshold))
    firing = status == "firing"
    values = None if value is None else {"A": float(value), "C": 1.0 if firing else 0.0}
    base = external_url.rstrip("/")
    silence_matcher = f"__alert_rule_uid__%3D{rule_uid}"
    started = _rfc3339(starts_at)
    ended = ZERO_TIME if firing else _rfc3339(ends_at or dt.datetime.now(dt.UTC))
    alert = {
        "status": status,
        "labels": alert_labels,
        "annotations": text_annotations,
        "startsAt": started,
        "endsAt": ended,
        "generatorURL": f"{base}/alerting/grafana/{rule_uid}/view?orgId=1",
        "fingerprint": fingerprint(alert_labels),
        "silenceURL": f"{base}/alerting/silence/new?alertmanager=grafana&matcher={silence_matcher}",
        "dashboardURL": "",
        "panelURL": "",
        "values": values,
        "valueString": "" if value is None else f"[ var='A' labels={{}} value={value} ]",
    }
    group_labels = {"alertname": rule_title, "grafana_folder": "bankmarketing"}
    common_labels = dict(alert_labels)
    tag = f"[{'FIRING' if firing else 'RESOLVED'}:1]"
    return {
        "receiver": receiver,
        "status": status,
        "orgId": 1,
        "alerts": [alert],
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": dict(text_annotations),
        "externalURL": f"{base}/",
        "version": "1",
        "groupKey": f'{{}}/{{__grafana_receiver__="{receiver}"}}:{_matchers(group_labels)}',
        "truncatedAlerts": 0,
        "title": f"{tag} {rule_title} (bankmarketing)",
        "state": "alerting" if firing else "ok",
        "message": f"**{status.capitalize()}**\n\nValue: A={value}\nLabels:\n"
        + "".join(f" - {k} = {v}\n" for k, v in sorted(alert_labels.items())),
    }


def sign(secret: str, body: bytes, timestamp: int | str | None = None) -> str:
    """Grafana 12's HMAC: hex SHA-256 over `timestamp:body` (or the body alone without a timestamp)."""
    digest = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    if timestamp is not None:
        digest.update(f"{timestamp}:".encode())
    digest.update(body)
    return digest.hexdigest()


def post_alert(
    url: str,
    payload: dict[str, Any],
    token: str | None,
    *,
    hmac_secret: str | None = None,
    signature_header: str = "X-Grafana-Alerting-Signature",
    timestamp_header: str = "X-Grafana-Alerting-Timestamp",
    timeout: float = 60.0,
) -> dict[str, Any]:
    """POST a payload to the receiver (`url` ends in /alerts) as Grafana would.

    Returns {"status_code", "ok", "body"} for any HTTP answer; network errors raise
    `requests.RequestException`.
    """
    import requests

    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Grafana"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if hmac_secret:
        timestamp = str(int(time.time()))
        headers[timestamp_header] = timestamp
        headers[signature_header] = sign(hmac_secret, body, timestamp)
    response = requests.post(url, data=body, headers=headers, timeout=timeout)
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text
    return {"status_code": response.status_code, "ok": response.ok, "body": answer}
