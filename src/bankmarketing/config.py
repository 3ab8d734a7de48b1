"""Settings read from the environment; nothing happens at import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The environment variable that points the loader at a local copy of the data.
DATA_PATH_VARIABLE = "BANK_DATA_PATH"


def env(name: str, default: str) -> str:
    """The variable's value, stripped; `default` when it is unset or blank."""
    return os.environ.get(name, "").strip() or default


#: Values that mean "nobody set this": never accepted as a credential.
PLACEHOLDERS = ("change_me", "changeme", "change-me", "placeholder", "secret", "token", "xxx", "todo")
#: Shortest credential accepted (Grafana's and Mage's tokens are far longer).
MIN_CREDENTIAL_LENGTH = 16

#: Default bounds of a request body to the platform's services: read within this many seconds of
#: the request's start (else 408); a body declared larger than BODY_DRAIN_BYTES is not drained.
BODY_SECONDS = 10.0
BODY_DRAIN_BYTES = 64 * 1024 * 1024


class ConfigurationError(RuntimeError):
    """A service refuses to start: a setting is missing or unsafe."""


def is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return (
        any(marker in lowered for marker in ("change_me", "changeme", "change-me", "<", ">"))
        or lowered in PLACEHOLDERS
    )


def check_credential(name: str, value: str | None, required: bool = False) -> None:
    """A credential is absent (when allowed) or real: long enough and no placeholder."""
    if value is None:
        if required:
            raise ConfigurationError(f"{name} is not set")
        return
    if is_placeholder(value):
        raise ConfigurationError(f"{name} is a placeholder ({value!r}): set a real secret")
    if len(value) < MIN_CREDENTIAL_LENGTH:
        raise ConfigurationError(f"{name} is shorter than {MIN_CREDENTIAL_LENGTH} characters")


@dataclass(frozen=True)
class Settings:
    """Every setting the domain package reads, with its environment variable."""

    data_path: Path | None  # BANK_DATA_PATH: a local file or folder to load first
    data_dir: Path  # BANK_DATA_DIR: where raw, prepared and quarantined data go
    data_url: str  # BANK_DATA_URL: UCI download used when no local copy exists
    tracking_uri: str  # MLFLOW_TRACKING_URI
    model_name: str  # MODEL_NAME: the registered model every candidate joins
    experiment: str  # MLFLOW_EXPERIMENT
    database_url: str | None  # DATABASE_URL: Postgres for MLflow and the platform tables
    mlflow_dir: Path  # MLFLOW_DIR: SQLite file and served artifacts of the local server
    alert_receiver_url: str | None = None  # ALERT_RECEIVER_URL: where `monitor` posts its alert
    alert_receiver_token: str | None = None  # ALERT_RECEIVER_TOKEN: bearer token of the receiver
    alert_receiver_hmac_secret: str | None = None  # ALERT_RECEIVER_HMAC_SECRET: signs what monitor posts
    require_approval: bool = False  # DEPLOY_REQUIRE_APPROVAL: the gate's winner waits for `approve`

    @property
    def platform_database_url(self) -> str:
        """Audit, prediction log and monitoring tables: DATABASE_URL, else a SQLite file."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'platform.db').resolve()}"

    @classmethod
    def from_env(cls) -> Settings:
        data_path = os.environ.get(DATA_PATH_VARIABLE, "").strip()
        return cls(
            data_path=Path(data_path) if data_path else None,
            data_dir=Path(env("BANK_DATA_DIR", "data")),
            data_url=env("BANK_DATA_URL", "https://archive.ics.uci.edu/static/public/222/data.csv"),
            tracking_uri=env("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
            model_name=env("MODEL_NAME", "bank-term-deposit"),
            experiment=env("MLFLOW_EXPERIMENT", "bank-term-deposit"),
            database_url=os.environ.get("DATABASE_URL", "").strip() or None,
            mlflow_dir=Path(env("MLFLOW_DIR", "mlruns")),
            alert_receiver_url=os.environ.get("ALERT_RECEIVER_URL", "").strip() or None,
            alert_receiver_token=os.environ.get("ALERT_RECEIVER_TOKEN", "").strip() or None,
            alert_receiver_hmac_secret=os.environ.get("ALERT_RECEIVER_HMAC_SECRET", "").strip() or None,
            require_approval=env("DEPLOY_REQUIRE_APPROVAL", "false").lower() in ("1", "true", "yes"),
        )
