"""Read the Grafana provisioning files and expand Grafana's SQL macros the way Grafana does.

Grafana's Postgres datasource rewrites a panel's SQL before sending it: `$__timeFilter(col)`
becomes `col BETWEEN '<from>' AND '<to>'` (RFC 3339, UTC), `$__timeFrom()` / `$__timeTo()`
the quoted bounds, and template variables `$name` / `${name}` / `[[name]]` their value —
raw for a single value, each value single-quoted and comma-joined for a multi-value
variable. Only what these files use is implemented; anything left over fails the test.
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


def sql_targets(board: dict) -> list[tuple[dict, dict]]:
    """(panel, target) for every SQL target of the dashboard."""
    return [(p, t) for p in board["panels"] for t in p.get("targets", []) if "rawSql" in t]


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(sql: str, time_from: dt.datetime, time_to: dt.datetime, variables: dict | None = None) -> str:
    """Concrete SQL from a Grafana query: macros and template variables replaced."""
    start, end = f"'{_rfc3339(time_from)}'", f"'{_rfc3339(time_to)}'"
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m.group(1).strip()} BETWEEN {start} AND {end}", sql
    )
    sql = sql.replace("$__timeFrom()", start).replace("$__timeTo()", end)
    for name, value in (variables or {}).items():
        text = ",".join(f"'{v}'" for v in value) if isinstance(value, list) else str(value)
        sql = re.sub(rf"\$\{{{name}\}}|\[\[{name}\]\]|\${name}\b", lambda _m, t=text: t, sql)
    left = re.findall(r"\$\{\w+\}|\$\w+|\[\[\w+\]\]", sql)
    assert not left, f"unexpanded Grafana macros or variables {left} in:\n{sql}"
    return sql
