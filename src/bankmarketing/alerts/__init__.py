"""The alert receiver: Grafana's webhook in, at most one Mage `retrain` run out.

What other stages call (none of these import Flask, so Mage blocks can use them):

- `grafana_payload(...)`, `post_alert(url, payload, token)` — the local stack's `monitor`
  builds and posts the same payload Grafana would send;
- `mark_retraining(settings, retraining_id, status, detail)` — the `retrain` pipeline
  reports running / succeeded / failed so the receiver knows when a retraining ends.

The service itself: `gunicorn -c python:bankmarketing.alerts.gunicorn_conf
'bankmarketing.alerts.app:create_app()'`.
"""

from bankmarketing.alerts.config import AlertReceiverConfig, ConfigurationError
from bankmarketing.alerts.grafana import fingerprint, grafana_payload, post_alert, sign
from bankmarketing.alerts.store import RETRAINING_STATUSES, mark_retraining

__all__ = [
    "RETRAINING_STATUSES",
    "AlertReceiverConfig",
    "ConfigurationError",
    "fingerprint",
    "grafana_payload",
    "mark_retraining",
    "post_alert",
    "sign",
]
