"""Run `monitor` in this process through a `PgProxy`, the outage injected inside a period's write.

Run in Mage's environment (`monitor` needs Evidently), from the repository root:

    .venv/mage/bin/python -m tests.reliability.monitor_outage REPORT.json \
        --periods test,jun,jul --cut-at jun:monitoring_column_drift --outage brief

Settings come from the environment, as in `mage run` (tests.conftest.mage_env); DATABASE_URL
is the real Postgres, reached through the proxy. `storage._upsert` is wrapped: the first time
it is called for the chosen (period, table), a transaction is open holding the rows written
before it. The wrapper counts those rows, cuts every proxied connection (`brief`: the proxy
accepts again at once; `lasting`: it resets every later connection too) and calls the real
`_upsert`, whose first statement then fails. The JSON report holds what the hook saw, what
each `_upsert` was given, the proxy's connection times and the outcome.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import defaultdict
from dataclasses import replace

import sqlalchemy as sa

from tests.reliability.pg_proxy import PgProxy

#: The five tables `store` writes in one transaction, in its order.
PERIOD_TABLES = (
    "monitoring_drift",
    "monitoring_column_drift",
    "monitoring_missing_values",
    "monitoring_performance",
    "monitoring_fairness",
)


def visible_rows(url: str, key: dict) -> dict[str, int]:
    """Rows of the (model, version, period) in each table, read past the proxy."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(
                    sa.text(
                        f"SELECT count(*) FROM {table} WHERE model_name = :model_name "
                        "AND model_version = :model_version AND period = :period"
                    ),
                    key,
                ).scalar()
                for table in PERIOD_TABLES
            }
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--periods", default="test,jun,jul")
    parser.add_argument("--cut-at", default="", help="period:table; empty: no outage")
    parser.add_argument("--outage", choices=["brief", "lasting"], default="brief")
    parser.add_argument("--pause", type=float, default=0.5, help="storage.RETRY_PAUSE_S")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from bankmarketing.config import Settings
    from bankmarketing.monitoring import monitor, storage

    settings = Settings.from_env()
    direct = sa.engine.make_url(settings.database_url)
    proxy = PgProxy(direct.port, direct.host)
    proxied = direct.set(port=proxy.port).render_as_string(hide_password=False)
    settings = replace(settings, database_url=proxied)
    storage.RETRY_PAUSE_S = args.pause
    cut_at = tuple(args.cut_at.split(":")) if args.cut_at else None

    calls: dict = defaultdict(lambda: defaultdict(int))  # period -> table -> calls
    given: dict = defaultdict(dict)  # period -> table -> rows given on the last call
    report: dict = {"proxy_port": proxy.port, "fault": None}
    real_upsert = storage._upsert

    def upsert(connection, table, key, rows):
        period = key["period"]
        calls[period][table.name] += 1
        given[period][table.name] = len(rows)
        if table.name == PERIOD_TABLES[0] and calls[period][table.name] == 2:  # the retry begins
            report["visible_when_the_retry_began"] = visible_rows(direct.render_as_string(False), key)
        if cut_at != (period, table.name) or calls[period][table.name] > 1:
            return real_upsert(connection, table, key, rows)
        fault = report["fault"] = {
            "drift_rows_in_the_open_transaction": connection.execute(
                sa.text(
                    "SELECT count(*) FROM monitoring_drift WHERE model_name = :model_name "
                    "AND model_version = :model_version AND period = :period"
                ),
                key,
            ).scalar(),
            "connections_cut": proxy.go_down() if args.outage == "lasting" else proxy.cut(),
            "failed_with": None,
        }
        try:
            real_upsert(connection, table, key, rows)
        except sa.exc.DBAPIError as exc:
            fault["failed_with"] = type(exc).__name__
            fault["connection_invalidated"] = exc.connection_invalidated
            raise

    storage._upsert = upsert
    options = monitor.MonitorOptions(periods=args.periods.split(","), alert=False, challenger_alias="")
    try:
        result = monitor.monitor(settings, options, "test:outage")
        report["outcome"] = {"ok": [record["period"] for record in result["periods"]]}
    except storage.DatabaseUnavailable as exc:
        report["outcome"] = {"DatabaseUnavailable": str(exc)}
    cut = proxy.cuts[0] if proxy.cuts else None
    report |= {
        "calls": calls,
        "given": given,
        "accepted_after_cut_s": [t - cut for t in proxy.accepted if cut and t > cut],
        "refused_after_cut_s": [t - cut for t in proxy.refused if cut and t > cut],
    }
    proxy.close()
    with open(args.report, "w") as handle:
        json.dump(report, handle, indent=1)


if __name__ == "__main__":
    started = time.monotonic()
    main()
    logging.getLogger(__name__).info("done in %.1f s", time.monotonic() - started)
