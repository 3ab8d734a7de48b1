"""Settings of the alert receiver, read from the environment (see `.env.example`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bankmarketing.config import (  # noqa: F401  (re-exported: the receiver's API)
    BODY_DRAIN_BYTES,
    BODY_SECONDS,
    MIN_CREDENTIAL_LENGTH,
    PLACEHOLDERS,
    ConfigurationError,
    check_credential,
    env,
)


def _optional(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _mage_database_url() -> str:
    """Mage's own database: MAGE_DATABASE_CONNECTION_URL, else its SQLite file for `mlops`."""
    given = _optional("MAGE_DATABASE_CONNECTION_URL")
    if given:
        return given
    data_dir = Path(env("MAGE_DATA_DIR", ".mage_data")).expanduser().resolve()
    return f"sqlite:///{data_dir / 'mlops' / 'mage-ai.db'}"


@dataclass(frozen=True)
class AlertReceiverConfig:
    """Receiver settings; the platform database comes from `Settings`."""

    token: str | None = None  # ALERT_RECEIVER_TOKEN: Grafana's authorization_credentials
    hmac_secret: str | None = None  # ALERT_RECEIVER_HMAC_SECRET: Grafana 12's hmacConfig.secret
    hmac_header: str = "X-Grafana-Alerting-Signature"  # ALERT_RECEIVER_HMAC_HEADER
    hmac_timestamp_header: str = "X-Grafana-Alerting-Timestamp"  # ALERT_RECEIVER_HMAC_TIMESTAMP_HEADER
    max_skew_s: float = 300.0  # ALERT_RECEIVER_MAX_SKEW_SECONDS: older signatures are replays
    admin_token: str | None = None  # ALERT_RECEIVER_ADMIN_TOKEN: GET /alerts
    max_body_bytes: int = 1024 * 1024  # ALERT_RECEIVER_MAX_BODY_BYTES
    body_timeout_s: float = BODY_SECONDS  # ALERT_RECEIVER_BODY_TIMEOUT_SECONDS: else 408
    drain_max_bytes: int = BODY_DRAIN_BYTES  # ALERT_RECEIVER_DRAIN_MAX_BYTES: unread body drained
    cooldown_s: float = 3600.0  # RETRAIN_COOLDOWN_SECONDS: after the last started retraining
    max_runtime_s: float = 7200.0  # RETRAIN_MAX_RUNTIME_SECONDS: older in-flight rows are stale
    mage_api_url: str = "http://127.0.0.1:6789"  # MAGE_API_URL
    mage_token: str | None = None  # MAGE_RETRAIN_TRIGGER_TOKEN: the API trigger's token
    mage_schedule_id: int | None = None  # MAGE_RETRAIN_SCHEDULE_ID: else found in Mage's database
    mage_database_url: str | None = None  # MAGE_DATABASE_CONNECTION_URL or $MAGE_DATA_DIR/mlops/mage-ai.db
    mage_pipeline: str = "retrain"
    mage_trigger_name: str = "retrain_on_alert"  # the trigger's name in triggers.yaml
    trigger_attempts: int = 3  # MAGE_TRIGGER_ATTEMPTS
    trigger_backoff_s: float = 1.0  # MAGE_TRIGGER_BACKOFF_SECONDS: doubled after each attempt
    trigger_timeout_s: float = 10.0  # MAGE_TRIGGER_TIMEOUT_SECONDS: per attempt
    triggered_by: str = field(default="alert-receiver")

    @classmethod
    def from_env(cls) -> AlertReceiverConfig:
        schedule_id = _optional("MAGE_RETRAIN_SCHEDULE_ID")
        return cls(
            token=_optional("ALERT_RECEIVER_TOKEN"),
            hmac_secret=_optional("ALERT_RECEIVER_HMAC_SECRET"),
            hmac_header=env("ALERT_RECEIVER_HMAC_HEADER", cls.hmac_header),
            hmac_timestamp_header=env("ALERT_RECEIVER_HMAC_TIMESTAMP_HEADER", cls.hmac_timestamp_header),
            max_skew_s=float(env("ALERT_RECEIVER_MAX_SKEW_SECONDS", "300")),
            admin_token=_optional("ALERT_RECEIVER_ADMIN_TOKEN"),
            max_body_bytes=int(env("ALERT_RECEIVER_MAX_BODY_BYTES", str(1024 * 1024))),
            body_timeout_s=float(env("ALERT_RECEIVER_BODY_TIMEOUT_SECONDS", str(BODY_SECONDS))),
            drain_max_bytes=int(env("ALERT_RECEIVER_DRAIN_MAX_BYTES", str(BODY_DRAIN_BYTES))),
            cooldown_s=float(env("RETRAIN_COOLDOWN_SECONDS", "3600")),
            max_runtime_s=float(env("RETRAIN_MAX_RUNTIME_SECONDS", "7200")),
            mage_api_url=env("MAGE_API_URL", cls.mage_api_url).rstrip("/"),
            mage_token=_optional("MAGE_RETRAIN_TRIGGER_TOKEN"),
            mage_schedule_id=int(schedule_id) if schedule_id else None,
            mage_database_url=_mage_database_url(),
            trigger_attempts=int(env("MAGE_TRIGGER_ATTEMPTS", "3")),
            trigger_backoff_s=float(env("MAGE_TRIGGER_BACKOFF_SECONDS", "1")),
            trigger_timeout_s=float(env("MAGE_TRIGGER_TIMEOUT_SECONDS", "10")),
        )

    def validate(self) -> AlertReceiverConfig:
        """Refuse to run without a real credential for callers and for Mage."""
        if self.token is None and self.hmac_secret is None:
            raise ConfigurationError(
                "no credential configured: set ALERT_RECEIVER_TOKEN (Grafana's Authorization header) "
                "and/or ALERT_RECEIVER_HMAC_SECRET (Grafana's HMAC signature)"
            )
        check_credential("ALERT_RECEIVER_TOKEN", self.token)
        check_credential("ALERT_RECEIVER_HMAC_SECRET", self.hmac_secret)
        check_credential("ALERT_RECEIVER_ADMIN_TOKEN", self.admin_token)
        check_credential("MAGE_RETRAIN_TRIGGER_TOKEN", self.mage_token, required=True)
        if self.max_skew_s <= 0:
            raise ConfigurationError("ALERT_RECEIVER_MAX_SKEW_SECONDS must be positive")
        if self.trigger_attempts < 1:
            raise ConfigurationError("MAGE_TRIGGER_ATTEMPTS must be at least 1")
        if self.cooldown_s < 0 or self.max_runtime_s <= 0:
            raise ConfigurationError("RETRAIN_COOLDOWN_SECONDS >= 0 and RETRAIN_MAX_RUNTIME_SECONDS > 0")
        return self
