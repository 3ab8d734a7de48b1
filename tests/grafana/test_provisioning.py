"""Static checks of grafana/: valid YAML/JSON in the shape Grafana provisions, known uids, no secrets."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re

import pytest
import yaml

from bankmarketing.monitoring.monitor import BATCH_PERIODS, _batch_dates
from tests.grafana.grafana import (
    BUILT_IN_UIDS,
    GRAFANA,
    PROVISIONING,
    alert_query,
    alert_rule,
    alert_threshold,
    dashboard,
    default_time_range,
    expand,
    load_yaml,
    sql_targets,
    variable_references,
)

REPO = GRAFANA.parent
ENV_REFERENCE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*\}$")
PANEL_TYPES_WITHOUT_QUERIES = {"alertlist", "text", "row"}


def datasource_uids() -> set[str]:
    return {d["uid"] for d in load_yaml("datasources/datasources.yaml")["datasources"]}


def test_every_provisioning_file_parses_and_has_api_version_1():
    files = sorted(PROVISIONING.rglob("*.yaml"))
    assert {f.parent.name for f in files} == {"datasources", "dashboards", "alerting"}
    for path in files:
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1, path


def test_datasources():
    sources = {d["uid"]: d for d in load_yaml("datasources/datasources.yaml")["datasources"]}
    assert set(sources) == {"monitoring-postgres", "mage-postgres"}
    assert [d["uid"] for d in sources.values() if d.get("isDefault")] == ["monitoring-postgres"]
    for source in sources.values():
        assert source["type"] == "grafana-postgresql-datasource"
        assert source["name"] and source["access"] == "proxy" and source["editable"] is False
        # connection settings and the password come from Grafana's environment
        for value in (
            source["url"],
            source["user"],
            source["jsonData"]["database"],
            source["jsonData"]["sslmode"],
        ):
            assert ENV_REFERENCE.match(value), value
        assert ENV_REFERENCE.match(source["secureJsonData"]["password"])
        assert "password" not in source and "password" not in source["jsonData"]


def test_dashboard_provider_points_at_the_documented_mount():
    (provider,) = load_yaml("dashboards/dashboards.yaml")["providers"]
    assert provider["type"] == "file" and provider["folder"]
    path = provider["options"]["path"]
    readme = (GRAFANA / "README.md").read_text()
    assert f"./grafana/dashboards:{path}:ro" in readme
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in readme


def test_dashboard_shape():
    board = dashboard()
    assert board["uid"] == "bank-marketing-monitoring" and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in board["panels"]:
        assert panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"][
            "w"
        ] <= 24
        if panel["type"] in PANEL_TYPES_WITHOUT_QUERIES:
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["rawSql"].strip() and target["format"] in {"table", "time_series"}
            assert target["rawQuery"] is True and target["refId"]
            assert target["datasource"]["uid"] == panel["datasource"]["uid"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"model_name", "model_version"} <= set(variables)
    assert {p["type"] for p in board["panels"]} >= {"timeseries", "table", "barchart", "alertlist"}


def test_time_series_panels_use_period_start_within_the_time_range():
    for panel, target in sql_targets(dashboard()):
        if panel["type"] != "timeseries":
            continue
        assert target["format"] == "time_series"
        assert re.search(r'period_start AS "time"', target["rawSql"]), panel["title"]
        assert "$__timeFilter(period_start)" in target["rawSql"], panel["title"]
        # the selected version: the model's, or production's in a challenger comparison
        assert re.search(
            r"\b(model|production)_version::text = \$\{model_version:sqlstring\}", target["rawSql"]
        ), panel["title"]


def _all_sql() -> list[tuple[str, str]]:
    """(where, SQL) of every panel target, every variable query and the alert rule."""
    board = dashboard()
    return [
        *((f"panel {p['title']!r}", t["rawSql"]) for p, t in sql_targets(board)),
        *((f"variable {v['name']!r}", v["query"]) for v in board["templating"]["list"]),
        ("alert rule", alert_query()["model"]["rawSql"]),
    ]


def test_every_template_variable_is_quoted_as_an_sql_string():
    """`${name:sqlstring}` only: Grafana quotes the value and doubles its `'`; a raw `$name`
    would turn an empty selection (nothing monitored yet) into `= ` and a syntax error."""
    names = {v["name"] for v in dashboard()["templating"]["list"]}
    used = set()
    for where, sql in _all_sql():
        for name, form in variable_references(sql):
            assert name in names, f"{where}: unknown variable {name!r}"
            assert form == "sqlstring", f"{where}: ${name} must be written ${{{name}:sqlstring}}"
            used.add(name)
        # sqlstring quotes already: quoting again would compare with the literal text '${...}'
        assert not re.search(r"'\$\{\w+:sqlstring\}'", sql), where
    assert used == names  # every variable is used, and only through sqlstring


def test_one_folder_for_the_rules_and_the_dashboards():
    """Grafana provisions the rules first and creates their folder by title (a generated uid);
    the dashboards must find that folder by the same title, and nothing may name a folder uid."""
    (provider,) = load_yaml("dashboards/dashboards.yaml")["providers"]
    assert "folderUid" not in provider and provider["folder"]
    groups = [
        g
        for path in PROVISIONING.glob("alerting/*.yaml")
        for g in yaml.safe_load(path.read_text()).get("groups", [])
    ]
    assert groups and {g["folder"] for g in groups} == {provider["folder"]}
    boards = {
        json.loads(path.read_text())["uid"]: json.loads(path.read_text())
        for path in GRAFANA.glob("dashboards/*.json")
    }
    linked = {rule["dashboardUid"] for group in groups for rule in group["rules"]}
    assert linked <= set(boards), linked - set(boards)
    for uid, board in boards.items():
        for panel in (p for p in board["panels"] if p["type"] == "alertlist"):
            options = panel["options"]
            assert not options.get("folder"), f"{uid}: {panel['title']} filters on a folder uid"
            # the rules linked to this dashboard (at least the drift rule), before any instance too
            assert options["dashboardAlerts"] is True and uid in linked, panel["title"]
            assert options["showInactiveAlerts"] is True, panel["title"]
    assert alert_rule()["dashboardUid"] == dashboard()["uid"]


def test_the_dashboard_opens_on_the_season_scenario():
    """The default range holds every batch period (nominal dates 2007-12 to 2008-11); a link
    opens the prediction log's recent periods."""
    start, end = default_time_range(dashboard())
    for period in BATCH_PERIODS:
        period_start, period_end = _batch_dates(period)
        assert start <= period_start and period_end <= end, period
    assert end - start < dt.timedelta(days=400)  # the periods fill the panels' width
    urls = [link["url"] for link in dashboard()["links"]]
    assert any("from=now-90d&to=now" in url for url in urls)


def test_every_datasource_uid_referenced_exists():
    known = datasource_uids() | BUILT_IN_UIDS
    referenced = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"datasourceUid", "uid"} and isinstance(value, str) and key == "datasourceUid":
                    referenced.add(value)
                if key == "datasource" and isinstance(value, dict):
                    referenced.add(value["uid"])
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard())
    walk(load_yaml("alerting/rules.yaml"))
    assert referenced >= {"monitoring-postgres", "mage-postgres", "__expr__"}
    assert referenced <= known, referenced - known


def test_alert_rule_shape():
    (group,) = load_yaml("alerting/rules.yaml")["groups"]
    assert group["folder"] and group["name"] and re.fullmatch(r"\d+[smh]", group["interval"])
    rule = alert_rule()
    for key in ("uid", "title", "condition", "data", "for", "noDataState", "execErrState"):
        assert key in rule, key
    assert rule["noDataState"] == "OK" and rule["execErrState"] == "Error" and rule["for"] == "0s"
    assert rule["labels"].keys() >= {"severity", "team"}
    assert rule["annotations"].keys() >= {"summary", "description", "runbook_url"}
    page, anchor = rule["annotations"]["runbook_url"].split("#")
    headings = (GRAFANA.parent / page).read_text().splitlines()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lstrip("#").strip().lower()).replace(" ", "-")
        for h in headings
        if h.startswith("## ")
    }
    assert anchor in anchors  # the on-call runbook's section for this alert
    query = alert_query(rule)
    assert query["datasourceUid"] == "monitoring-postgres" == query["model"]["datasource"]["uid"]
    assert query["model"]["format"] == "table" and query["model"]["refId"] == "A"
    condition = next(q for q in rule["data"] if q["refId"] == rule["condition"])
    assert rule["condition"] == "C" and condition["model"]["type"] == "threshold"
    assert condition["model"]["expression"] == "A" and condition["datasourceUid"] == "__expr__"
    assert alert_threshold(rule) == 0.1
    # the rule's panel link exists
    panel_ids = {p["id"]: p for p in dashboard()["panels"]}
    assert (
        rule["dashboardUid"] == dashboard()["uid"] and "drift" in panel_ids[rule["panelId"]]["title"].lower()
    )


def test_alert_labels_and_annotations_survive_grafanas_env_expansion():
    # Grafana expands $VAR in labels (annotations and the query model are kept raw)
    rule = alert_rule()
    assert not any("$" in value for value in rule["labels"].values())
    assert "$__" not in yaml.safe_dump(rule["labels"])


def test_rule_matches_the_monitor_pipeline():
    """The local stack evaluates the same rule in `monitor`: same title and the same threshold."""
    metadata = yaml.safe_load((REPO / "mlops/pipelines/monitor/metadata.yaml").read_text())
    assert alert_threshold() == float(metadata["variables"]["prediction_threshold"])
    source = ast.parse((REPO / "src/bankmarketing/monitoring/alerting.py").read_text())
    titles = [
        node.value.value
        for node in ast.walk(source)
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["DRIFT_RULE"]
    ]
    assert titles == [alert_rule()["title"]]


def test_the_dashboard_shows_the_rules_own_query():
    board = dashboard()
    rule_sql = alert_query()["model"]["rawSql"].strip()
    assert any(t["rawSql"].strip() == rule_sql for _, t in sql_targets(board))


def test_contact_point_and_policy():
    points = load_yaml("alerting/contact-points.yaml")["contactPoints"]
    (point,) = points
    (receiver,) = point["receivers"]
    assert receiver["uid"] and receiver["type"] == "webhook"
    settings = receiver["settings"]
    assert ENV_REFERENCE.match(settings["url"])
    assert settings["authorization_scheme"] == "Bearer"
    assert ENV_REFERENCE.match(settings["authorization_credentials"])
    assert ENV_REFERENCE.match(settings["hmacConfig"]["secret"])

    (policy,) = load_yaml("alerting/policies.yaml")["policies"]
    assert policy["receiver"] == "grafana-default-email"  # Grafana's built-in contact point
    (route,) = policy["routes"]
    assert route["receiver"] == point["name"]
    assert ["alertname", "=", alert_rule()["title"]] in route["object_matchers"]
    assert route["group_by"] == ["alertname"]
    assert _seconds(route["repeat_interval"]) >= 6 * 3600
    assert (
        _seconds(route["group_wait"])
        <= _seconds(route["group_interval"])
        <= _seconds(route["repeat_interval"])
    )


def _seconds(duration: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([smh])", duration).groups()
    return int(number) * {"s": 1, "m": 60, "h": 3600}[unit]


def test_no_literal_secret_anywhere():
    secret_keys = re.compile(r"(password|secret|token|credentials|apikey|api_key)", re.I)
    for path in [*PROVISIONING.rglob("*.yaml"), *GRAFANA.joinpath("dashboards").glob("*.json")]:
        text = path.read_text()
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), f"credentials in a URL in {path}"
        data = yaml.safe_load(text)  # JSON is YAML

        def walk(node, where=path.name):
            if isinstance(node, dict):
                for key, value in node.items():
                    if secret_keys.search(str(key)) and isinstance(value, str | int | float):
                        assert isinstance(value, str) and ENV_REFERENCE.match(value), f"{where}.{key}"
                    walk(value, f"{where}.{key}")
            elif isinstance(node, list):
                for item in node:
                    walk(item, where)

        walk(data)


def test_env_example_lists_every_variable_the_provisioning_reads():
    used = set()
    for path in PROVISIONING.rglob("*.yaml"):
        # values only: comments may mention ${VAR} as an example
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", json.dumps(yaml.safe_load(path.read_text()))))
    example = (REPO / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, re.M))
    assert used and used <= defined, used - defined
    readme = (GRAFANA / "README.md").read_text()
    assert all(name in readme for name in used)


@pytest.mark.parametrize("sql", ["SELECT $x", "WHERE a = '${y}'", "[[z]]"])
def test_expand_refuses_leftovers(sql):
    with pytest.raises(AssertionError):
        expand(sql, dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2020, 1, 2, tzinfo=dt.UTC))


def test_expand_quotes_sqlstring_variables_like_grafana():
    moment = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    sql = "WHERE n = ${n:sqlstring} AND v::text = ${v:sqlstring} AND m IN (${m:sqlstring})"
    assert expand(sql, moment, moment, {"n": "it's", "v": 3, "m": ["a", "b"]}) == (
        "WHERE n = 'it''s' AND v::text = '3' AND m IN ('a','b')"
    )
    # a query variable that found nothing has the value '': quoted it stays valid SQL
    assert expand("WHERE v::text = ${v:sqlstring}", moment, moment, {"v": ""}) == "WHERE v::text = ''"
    assert expand("WHERE v = $v", moment, moment, {"v": ""}) == "WHERE v = "


def test_expand_like_grafana():
    start, end = dt.datetime(2008, 6, 1, tzinfo=dt.UTC), dt.datetime(2008, 7, 1, 12, tzinfo=dt.UTC)
    sql = "WHERE $__timeFilter(period_start) AND v = $v AND n = '${n}' AND m IN ($m) AND t > $__timeFrom()"
    assert expand(sql, start, end, {"v": 3, "n": "bank", "m": ["a", "b"]}) == (
        "WHERE period_start BETWEEN '2008-06-01T00:00:00Z' AND '2008-07-01T12:00:00Z' AND v = 3 "
        "AND n = 'bank' AND m IN ('a','b') AND t > '2008-06-01T00:00:00Z'"
    )
