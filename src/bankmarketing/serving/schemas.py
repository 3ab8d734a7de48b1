"""Request and response schemas of the predictor (pydantic; the OpenAPI document's source)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from bankmarketing.data.schema import CATEGORIES, FEATURES, RANGES

_FIELD_HELP = {
    "age": "age in years",
    "job": "type of job",
    "marital": "marital status",
    "education": "highest education level",
    "default": "has credit in default",
    "balance": "average yearly balance in euros",
    "housing": "has a housing loan",
    "loan": "has a personal loan",
    "contact": "contact communication type",
    "day_of_week": "day of the month of the call",
    "month": "month of the call",
    "campaign": "contacts in this campaign, this call included",
    "pdays": "days since the last contact in an earlier campaign, -1 if never contacted",
    "previous": "contacts before this campaign",
    "poutcome": "outcome of the previous campaign",
}


def _field(name: str) -> tuple[Any, Any]:
    if name in RANGES:
        low, high = RANGES[name]
        return Annotated[int, Field(strict=True, ge=low, le=high, description=_FIELD_HELP[name])], ...
    return Literal[CATEGORIES[name]], Field(..., description=_FIELD_HELP[name])


#: One customer: the 15 model features, exact types, allowed categories, no extra fields.
Customer = create_model(
    "Customer",
    __config__=ConfigDict(extra="forbid", strict=True),
    __doc__='One customer. Integer fields take JSON integers only: 41, not 41.0 or "41".',
    **{name: _field(name) for name in FEATURES},
)


CustomerId = Annotated[str, Field(min_length=1, max_length=64)]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: Customer  # type: ignore[valid-type]
    explain: bool = Field(False, description="add per-feature contributions from the model")
    customer_id: CustomerId | None = Field(
        None, description="the bank's id of the customer: keeps them with one version in a challenger split"
    )


#: Customers (or outcomes) per request unless PREDICTOR_MAX_BATCH says otherwise.
DEFAULT_MAX_BATCH = 1_000


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customers: list[Customer] = Field(..., min_length=1)  # type: ignore[valid-type]
    explain: bool = False
    customer_ids: list[CustomerId] | None = Field(
        None, description="one id per customer, in the same order (see customer_id of /predict)"
    )

    @field_validator("customer_ids")
    @classmethod
    def _one_id_per_customer(cls, ids: list[str] | None, info: ValidationInfo) -> list[str] | None:
        customers = info.data.get("customers")
        if ids is not None and customers is not None and len(ids) != len(customers):
            raise ValueError(f"{len(ids)} ids for {len(customers)} customers: give one per customer")
        return ids


class Outcome(BaseModel):
    """The call outcome of one past prediction, by the request id its answer carried."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(..., min_length=1, max_length=64)
    subscribed: bool
    observed_at: dt.datetime | None = Field(None, description="when the outcome was known (ISO 8601)")


class OutcomesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[Outcome] = Field(..., min_length=1, description="each request id at most once")


class Prediction(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    request_id: str
    probability: float = Field(..., description="calibrated probability of subscribing")
    decision: Literal["call", "skip"]
    threshold: float
    model_name: str
    model_version: str
    contributions: dict[str, float] | None = Field(
        None,
        description=(
            "per-feature contributions (explain=true) and `bias`, the base value: they add up to the "
            "model's output before calibration, in the unit GET /model names as `explained_output`"
        ),
    )


class BatchPrediction(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    request_id: str
    model_name: str
    model_version: str
    threshold: float
    predictions: list[dict[str, Any]]


class ErrorBody(BaseModel):
    error: str
    detail: list[dict[str, Any]] = []


def record(customer: BaseModel) -> dict[str, Any]:
    """A validated customer as a plain dict: `model_dump()` for this flat model of ints and
    strings, without its per-call serializer overhead."""
    return dict(customer.__dict__)


def validation_errors(exc) -> list[dict[str, Any]]:
    """pydantic errors as [{field, message}], the field as a dotted path (customers.3.age)."""
    return [
        {"field": ".".join(str(p) for p in error["loc"]) or "body", "message": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]
