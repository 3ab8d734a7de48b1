"""The retrain pipeline's variables (JSON for `make retrain VARS=...`) from the Retrain
workflow's inputs, passed as environment variables and checked here, so no input text
reaches a shell unchecked.

    RETRAIN_ADD_MONTHS=jun,jul RETRAIN_TRIALS=10 python3 .ci/retrain_vars.py
    {"add_months": ["jun", "jul"], "train": {"trials": 10}, "triggered_by": "..."}

Inputs (all optional): RETRAIN_ADD_MONTHS (comma-separated jun..nov), RETRAIN_CANDIDATES
(comma-separated candidate names), RETRAIN_TRIALS (int ≥ 1), RETRAIN_TIMEOUT_S (number > 0),
RETRAIN_MARGIN (number ≥ 0), RETRAIN_METRIC (pr_auc, roc_auc, f1, lift_top_decile),
RETRAIN_TRIGGERED_BY (letters, digits, spaces, _ . : / @ [ ] -). The pipeline's first block checks them again (names and values).
Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import sys

MONTHS = ("jun", "jul", "aug", "sep", "oct", "nov")
METRICS = ("pr_auc", "roc_auc", "f1", "lift_top_decile")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
WHO = re.compile(r"^[A-Za-z0-9_.:/@\[\] -]{1,120}$")


def _list(text: str, what: str, allowed=None) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if not NAME.match(item) or (allowed is not None and item not in allowed):
            expected = f"; expected some of {', '.join(allowed)}" if allowed else ""
            raise SystemExit(f"{what}: {item!r} is not allowed{expected}")
    return items


def _number(text: str, what: str, kind, low: float, strict: bool):
    try:
        value = kind(text)
    except ValueError:
        raise SystemExit(f"{what}: {text!r} is not a {kind.__name__}") from None
    if value < low or (strict and value == low):
        raise SystemExit(f"{what}: {value} must be {'>' if strict else '≥'} {low}")
    return value


def retrain_vars(env: dict[str, str]) -> dict:
    get = lambda name: env.get(name, "").strip()  # noqa: E731
    variables: dict = {}
    train: dict = {}
    deploy: dict = {}
    if get("RETRAIN_ADD_MONTHS"):
        variables["add_months"] = _list(get("RETRAIN_ADD_MONTHS"), "add_months", MONTHS)
    if get("RETRAIN_CANDIDATES"):
        train["candidates"] = _list(get("RETRAIN_CANDIDATES"), "candidates")
    if get("RETRAIN_TRIALS"):
        train["trials"] = _number(get("RETRAIN_TRIALS"), "trials", int, 1, strict=False)
    if get("RETRAIN_TIMEOUT_S"):
        train["timeout_s"] = _number(get("RETRAIN_TIMEOUT_S"), "timeout_s", float, 0, strict=True)
    if get("RETRAIN_MARGIN"):
        deploy["margin"] = _number(get("RETRAIN_MARGIN"), "margin", float, 0, strict=False)
    if get("RETRAIN_METRIC"):
        if get("RETRAIN_METRIC") not in METRICS:
            raise SystemExit(f"metric: {get('RETRAIN_METRIC')!r}; expected one of {', '.join(METRICS)}")
        deploy["metric"] = get("RETRAIN_METRIC")
    if train:
        variables["train"] = train
    if deploy:
        variables["deploy"] = deploy
    if get("RETRAIN_TRIGGERED_BY"):
        if not WHO.match(get("RETRAIN_TRIGGERED_BY")):
            raise SystemExit("triggered_by: only letters, digits, spaces and _ . : / @ - are allowed")
        variables["triggered_by"] = get("RETRAIN_TRIGGERED_BY")
    return variables


if __name__ == "__main__":
    print(json.dumps(retrain_vars(dict(os.environ)), separators=(",", ":")))
    sys.exit(0)
