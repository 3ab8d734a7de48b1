"""Start Mage's `retrain` pipeline through its API trigger (mlops/pipelines/retrain/triggers.yaml).

`POST {MAGE_API_URL}/api/pipeline_schedules/{id}/api_trigger` with `Authorization: Bearer <token>`
and `{"pipeline_run": {"variables": {...}}}`: the variables reach every block as kwargs. Mage
answers a wrong token or an unknown schedule with HTTP 200 and an error (or an empty body), so
only a reply that contains `pipeline_run` is a success.

The schedule id is assigned by Mage's database when its scheduler first syncs triggers.yaml.
Listing schedules through Mage's API needs a logged-in user, so the receiver takes the id
from MAGE_RETRAIN_SCHEDULE_ID, else reads it from Mage's own database (read only).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import requests
import sqlalchemy as sa

from bankmarketing.alerts.config import AlertReceiverConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriggerResult:
    ok: bool
    detail: str
    schedule_id: int | None = None
    pipeline_run_id: int | None = None
    attempts: int = 0


class ScheduleNotFound(LookupError):
    pass


def discover_schedule_id(config: AlertReceiverConfig) -> int:
    """MAGE_RETRAIN_SCHEDULE_ID, else the API trigger's row in Mage's database."""
    if config.mage_schedule_id is not None:
        return config.mage_schedule_id
    if not config.mage_database_url:
        raise ScheduleNotFound("MAGE_RETRAIN_SCHEDULE_ID is not set and Mage's database is unknown")
    engine = sa.create_engine(config.mage_database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text(
                    "SELECT id FROM pipeline_schedule WHERE pipeline_uuid = :pipeline AND name = :name "
                    "ORDER BY id DESC"
                ),
                {"pipeline": config.mage_pipeline, "name": config.mage_trigger_name},
            ).first()
    except sa.exc.SQLAlchemyError as exc:
        raise ScheduleNotFound(f"Mage's database is not readable: {type(exc).__name__}") from exc
    finally:
        engine.dispose()
    if row is None:
        raise ScheduleNotFound(
            f"no trigger {config.mage_trigger_name!r} of pipeline {config.mage_pipeline!r} in Mage's "
            "database yet (Mage syncs triggers.yaml shortly after it starts)"
        )
    return int(row[0])


def trigger_body(variables: dict[str, Any]) -> dict[str, Any]:
    """The API trigger's body: Mage takes the run's variables from `pipeline_run.variables`."""
    return {"pipeline_run": {"variables": variables}}


def _attempt(
    config: AlertReceiverConfig, schedule_id: int, variables: dict[str, Any]
) -> tuple[bool, str, Any]:
    url = f"{config.mage_api_url}/api/pipeline_schedules/{schedule_id}/api_trigger"
    try:
        response = requests.post(
            url,
            json=trigger_body(variables),
            headers={"Authorization": f"Bearer {config.mage_token}"},
            timeout=config.trigger_timeout_s,
        )
    except requests.RequestException as exc:
        return False, f"Mage unreachable: {type(exc).__name__}", None
    try:
        answer = response.json() if response.content else None
    except ValueError:
        answer = None
    if response.ok and isinstance(answer, dict) and isinstance(answer.get("pipeline_run"), dict):
        return True, "", answer["pipeline_run"]
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        reason = str(answer["error"].get("exception") or answer["error"].get("message") or "")[:300]
    else:
        reason = "empty body" if not response.content else "no pipeline_run in the reply"
    return False, f"HTTP {response.status_code}: {reason or 'no pipeline_run in the reply'}", None


def trigger_retrain(config: AlertReceiverConfig, variables: dict[str, Any]) -> TriggerResult:
    """Start one `retrain` run; retry with exponential backoff; never raises."""
    delay = config.trigger_backoff_s
    reason = ""
    schedule_id = None
    for attempt in range(1, config.trigger_attempts + 1):
        try:
            schedule_id = discover_schedule_id(config)
        except ScheduleNotFound as exc:
            reason = str(exc)
        else:
            ok, reason, run = _attempt(config, schedule_id, variables)
            if ok:
                run_id = run.get("id")
                return TriggerResult(
                    True,
                    f"Mage pipeline run {run_id} of {run.get('pipeline_uuid', config.mage_pipeline)} "
                    f"created (schedule {schedule_id})",
                    schedule_id,
                    int(run_id) if run_id is not None else None,
                    attempt,
                )
        log.warning("Mage trigger attempt %d/%d failed: %s", attempt, config.trigger_attempts, reason)
        if attempt < config.trigger_attempts:
            time.sleep(delay)
            delay *= 2
    return TriggerResult(
        False,
        f"Mage did not start {config.mage_pipeline} after {config.trigger_attempts} attempts: {reason}",
        schedule_id,
        None,
        config.trigger_attempts,
    )
