"""Pipeline parameters: one typed, strict model per stage, shared by Mage and the CLI."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

Options = TypeVar("Options", bound=BaseModel)


class StageOptions(BaseModel):
    """Base for stage parameters: unknown names are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OptionsError(ValueError):
    """Pipeline variables that are missing, unknown or of the wrong type."""


def parse_options(model: type[Options], variables: dict[str, Any], known: set[str] = frozenset()) -> Options:
    """Build `model` from pipeline variables, ignoring only the names in `known`.

    The message names every bad variable, what it got, and what was expected.
    """
    given = {k: v for k, v in variables.items() if k not in known and v is not None and v != ""}
    try:
        return model(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'variables'}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise OptionsError(f"invalid {model.__name__} variables: {problems}") from None
