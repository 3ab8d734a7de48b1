"""Grafana's unified-alerting webhook payload (Grafana 8-12), validated with pydantic.

Top level: receiver, status, orgId, alerts[], groupLabels, commonLabels, commonAnnotations,
externalURL, version, groupKey, truncatedAlerts, title, state, message. Each alert: status,
labels, annotations, startsAt, endsAt, generatorURL, fingerprint, silenceURL, dashboardURL,
panelURL, values, valueString. Unknown fields are kept (Grafana adds some between versions);
what the receiver relies on is required and typed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


class GrafanaAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: AwareDatetime
    endsAt: dt.datetime | None = None  # firing alerts carry 0001-01-01T00:00:00Z
    generatorURL: str = ""
    fingerprint: str = Field(..., min_length=1, max_length=64)
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    values: dict[str, float | None] | None = None
    valueString: str = ""

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("labels must contain alertname")
        return labels

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]

    @property
    def value(self) -> float | None:
        """The query's value: refId A (the rule's query) when present, else the first number."""
        if not self.values:
            return None
        if self.values.get("A") is not None:
            return self.values["A"]
        return next((v for v in self.values.values() if v is not None), None)


class GrafanaWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    receiver: str = ""
    status: Literal["firing", "resolved"]
    orgId: int | None = None
    alerts: list[GrafanaAlert] = Field(..., min_length=1)
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    version: str = ""
    groupKey: str = Field(..., max_length=10_000)
    truncatedAlerts: int = 0
    title: str = ""
    state: str = ""
    message: str = ""


def validation_errors(exc) -> list[dict[str, Any]]:
    """pydantic errors as [{field, message}] with a dotted path (alerts.0.startsAt)."""
    return [
        {"field": ".".join(str(p) for p in error["loc"]) or "body", "message": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]
