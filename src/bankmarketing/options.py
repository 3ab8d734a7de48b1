"""Pipeline parameters: one typed, strict model per stage, shared by Mage and the CLI."""

from __future__ import annotations

import json
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

Options = TypeVar("Options", bound=BaseModel)


class StageOptions(BaseModel):
    """Base for stage parameters: unknown names are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _split_comma_lists(cls, values: Any) -> Any:
        """Mage's UI and the CLI give lists as 'a,b,c' and option groups as JSON text."""
        if not isinstance(values, dict):
            return values
        lists = {n for n, f in cls.model_fields.items() if get_origin(f.annotation) is list}
        nested = {
            n
            for n, f in cls.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
        }
        values = dict(values)
        for name in lists & {k for k, v in values.items() if isinstance(v, str)}:
            values[name] = [s.strip() for s in values[name].split(",") if s.strip()]
        for name in nested & {k for k, v in values.items() if isinstance(v, str)}:
            values[name] = _json_object(name, values[name])
        return values


def _json_object(name: str, text: str) -> Any:
    """A nested group of options given as JSON text (CLI flags, Mage UI fields)."""
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} must be a JSON object like '{{\"trials\": 5}}': {exc}") from None


class OptionsError(ValueError):
    """Pipeline variables that are missing, unknown or of the wrong type."""


#: Keyword arguments Mage itself passes to every block (not pipeline variables).
MAGE_KWARGS = frozenset(
    {
        "block_uuid",
        "configuration",
        "context",
        "env",
        "pipeline_uuid",
        "repo_path",
        "event",
        "execution_date",
        "execution_partition",
        "ds",
        "hr",
        "interval_end_datetime",
        "interval_seconds",
        "interval_start_datetime",
        "interval_start_datetime_previous",
        "pipeline_run_id",
        "logger",
        "retry",
        "trigger_name",
        "variables",
    }
)


def parse_options(model: type[Options], variables: dict[str, Any]) -> Options:
    """Build `model` from pipeline variables (Mage's own kwargs are left out).

    Unknown names are errors; the message names every bad variable, what it got and what
    was expected.
    """
    given = {k: v for k, v in variables.items() if k not in MAGE_KWARGS and v is not None and v != ""}
    try:
        return model(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'variables'}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise OptionsError(f"invalid {model.__name__} variables: {problems}") from None


def only_known(values: list[str], allowed, what: str) -> list[str]:
    """`values` if each is in `allowed`, else a ValueError listing the unknown and the allowed."""
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; expected some of {list(allowed)}")
    return values


def mage_run_label(pipeline: str, variables: dict[str, Any]) -> str:
    """Who started a Mage run, for audit rows: `mage:<pipeline>:<run id or execution date>`."""
    run = variables.get("pipeline_run_id") or variables.get("execution_date") or "cli"
    return f"mage:{pipeline}:{run}"
