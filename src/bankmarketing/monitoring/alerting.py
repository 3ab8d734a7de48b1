"""The drift rule as Grafana evaluates it, and its alert posted to the receiver where Grafana
is absent (the local stack)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from bankmarketing.config import Settings

if TYPE_CHECKING:
    from bankmarketing.monitoring.monitor import MonitorOptions


def drift_rule(records: list[dict], threshold: float) -> dict | None:
    """Grafana's rule, evaluated here: the newest period with enough rows, if its drift > threshold."""
    tested = [r for r in records if r["enough_rows"] and r["prediction_drift_score"] is not None]
    newest = max(tested, key=lambda r: r["period_start"], default=None)
    return newest if newest and newest["prediction_drift_score"] > threshold else None


class AlertNotDelivered(ConnectionError):
    """The drift rule fired but the alert receiver did not take the alert."""


#: The rule's title and fixed labels, as in grafana/provisioning/alerting/rules.yaml.
DRIFT_RULE = "Prediction drift"
DRIFT_RULE_LABELS = {"severity": "warning", "team": "ml-platform"}


def post_drift_alert(settings: Settings, options: MonitorOptions, result: dict) -> dict:
    """Post Grafana's payload for the period the drift rule fired on, where Grafana is absent.

    The alert starts at the period's end, so rerunning `monitor` on the same data posts the
    same alert again and the receiver drops it as a duplicate.
    """
    firing = result["firing"]
    if firing is None:
        return {"fired": False, "posted": False, "reason": "the newest tested period is below the threshold"}
    summary = {"fired": True, "period": firing["period"], "value": firing["prediction_drift_score"]}
    if not options.alert or not settings.alert_receiver_url:
        why = "alert=false" if not options.alert else "ALERT_RECEIVER_URL is not set"
        return summary | {"posted": False, "reason": why}
    from bankmarketing.alerts import grafana_payload, post_alert

    payload = grafana_payload(
        DRIFT_RULE,
        labels={
            "model_name": result["model_name"],
            "model_version": str(firing["model_version"]),
            "period": firing["period"],
            **DRIFT_RULE_LABELS,
        },
        value=firing["prediction_drift_score"],
        starts_at=dt.datetime.fromisoformat(firing["period_end"]),
        threshold=options.prediction_threshold,
    )
    import requests

    try:
        reply = post_alert(
            settings.alert_receiver_url,
            payload,
            settings.alert_receiver_token,
            hmac_secret=settings.alert_receiver_hmac_secret,
        )
    except requests.RequestException as exc:
        raise AlertNotDelivered(
            f"the drift alert for period {firing['period']} could not reach the alert receiver at "
            f"{settings.alert_receiver_url} ({type(exc).__name__}); the metrics are stored: "
            "start the receiver (make up) and run monitor again"
        ) from None
    if not reply["ok"]:
        raise AlertNotDelivered(
            f"the alert receiver at {settings.alert_receiver_url} refused the drift alert: "
            f"HTTP {reply['status_code']} {reply['body']}"
        )
    return summary | {"posted": True, "reply": reply}
