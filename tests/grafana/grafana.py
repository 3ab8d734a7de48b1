"""Read the Grafana provisioning files and expand Grafana's SQL macros the way Grafana does.

Grafana's Postgres datasource rewrites a panel's SQL before sending it: `$__timeFilter(col)`
becomes `col BETWEEN '<from>' AND '<to>'` (RFC 3339, UTC), `$__timeFrom()` / `$__timeTo()`
the quoted bounds, and template variables their value. `${name:sqlstring}` quotes the value
(`'` doubled; a list: each value quoted, comma-joined); `$name` / `${name}` / `[[name]]`
without a format insert a single value raw (only `'` doubled) — so `= $v` becomes `= ` for a
variable whose query found nothing (Grafana's value ''). Only what these files use is
implemented; anything left over fails the test.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
PROVISIONING = GRAFANA / "provisioning"
DASHBOARD = GRAFANA / "dashboards" / "bank-marketing-monitoring.json"
#: Datasource uids Grafana defines itself (expressions, built-in annotations).
BUILT_IN_UIDS = {"__expr__", "-- Grafana --", "grafana"}


def load_yaml(relative: str) -> dict:
    return yaml.safe_load((PROVISIONING / relative).read_text())


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def alert_rule() -> dict:
    (group,) = load_yaml("alerting/rules.yaml")["groups"]
    (rule,) = group["rules"]
    return rule


def alert_query(rule: dict | None = None) -> dict:
    return next(q for q in (rule or alert_rule())["data"] if q["refId"] == "A")


def alert_threshold(rule: dict | None = None) -> float:
    rule = rule or alert_rule()
    condition = next(q for q in rule["data"] if q["refId"] == rule["condition"])
    (only,) = condition["model"]["conditions"]
    assert only["evaluator"]["type"] == "gt"
    return float(only["evaluator"]["params"][0])


def default_time_range(board: dict) -> tuple[dt.datetime, dt.datetime]:
    """The dashboard's default time range: absolute times only (ISO 8601, UTC)."""
    return tuple(dt.datetime.fromisoformat(board["time"][end]) for end in ("from", "to"))


def sql_targets(board: dict) -> list[tuple[dict, dict]]:
    """(panel, target) for every SQL target of the dashboard."""
    return [(p, t) for p in board["panels"] for t in p.get("targets", []) if "rawSql" in t]


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: A template variable: `${name}`, `${name:format}`, `[[name]]`, `[[name:format]]` or `$name`.
VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(?!__)(\w+)")


def variable_references(sql: str) -> list[tuple[str, str | None]]:
    """(name, format) of every template variable in `sql` (macros `$__...` are not variables)."""
    return [
        (m.group(1) or m.group(3) or m.group(5), m.group(2) or m.group(4))
        for m in VARIABLE.finditer(sql)
        if not (m.group(1) or m.group(3) or "").startswith("__")
    ]


def _sql_literal(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _format(value, form: str | None) -> str:
    if form == "sqlstring":
        return ",".join(map(_sql_literal, value)) if isinstance(value, list) else _sql_literal(value)
    assert form is None, f"format {form!r} is not implemented here"
    if isinstance(value, list):
        return ",".join(map(_sql_literal, value))
    return str(value).replace("'", "''")


def expand(sql: str, time_from: dt.datetime, time_to: dt.datetime, variables: dict | None = None) -> str:
    """Concrete SQL from a Grafana query: macros and template variables replaced."""
    start, end = f"'{_rfc3339(time_from)}'", f"'{_rfc3339(time_to)}'"
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m.group(1).strip()} BETWEEN {start} AND {end}", sql
    )
    sql = sql.replace("$__timeFrom()", start).replace("$__timeTo()", end)
    variables = variables or {}

    def replace(match: re.Match) -> str:
        name, form = match.group(1) or match.group(3) or match.group(5), match.group(2) or match.group(4)
        return _format(variables[name], form) if name in variables else match.group(0)

    sql = VARIABLE.sub(replace, sql)
    left = re.findall(r"\$\{\w+(?::\w+)?\}|\$\w+|\[\[\w+(?::\w+)?\]\]", sql)
    assert not left, f"unexpanded Grafana macros or variables {left} in:\n{sql}"
    return sql
