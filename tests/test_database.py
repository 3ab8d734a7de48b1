"""The platform database: migrations match the tables, adopt old databases, and never race."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from bankmarketing import database
from bankmarketing.database import VERSION_TABLE, engine_for, metadata, migrate


def _schema_differences(engine: sa.Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return compare_metadata(context, metadata)


def test_migrations_create_exactly_the_declared_tables_on_sqlite(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path / 'platform.db'}")
    assert set(metadata.tables) <= set(sa.inspect(engine).get_table_names())
    assert _schema_differences(engine) == []


@pytest.mark.integration
def test_migrations_create_exactly_the_declared_tables_on_postgres(postgres_url):
    engine = engine_for(postgres_url(f"schema_{uuid.uuid4().hex[:8]}"))
    tables = set(sa.inspect(engine).get_table_names())
    assert set(metadata.tables) | {VERSION_TABLE} == tables
    assert "alembic_version" not in tables  # MLflow's own table name stays free
    assert _schema_differences(engine) == []


def _newest_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).with_name("migrations")))
    return ScriptDirectory.from_config(config).get_current_head()


def test_a_database_made_before_migrations_is_adopted_with_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.create_engine(url)
    for name in ("deployment_audit", "prediction_log", "model_evaluation"):
        metadata.tables[name].create(old)
    with old.begin() as connection:
        connection.execute(
            metadata.tables["deployment_audit"].insert(),
            {
                "at": dt.datetime.now(dt.UTC),
                "action": "promote",
                "model_name": "m",
                "to_version": 1,
                "triggered_by": "test",
                "reason": "kept across the upgrade",
            },
        )
    migrate(old)
    with old.connect() as connection:
        reasons = connection.execute(sa.text("SELECT reason FROM deployment_audit")).scalars().all()
        revision = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
    assert reasons == ["kept across the upgrade"]
    assert revision == _newest_revision()  # the newest revision is recorded once
    assert _schema_differences(old) == []


def test_a_second_upgrade_changes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    engine = engine_for(url)
    before = sa.inspect(engine).get_table_names()
    migrate(engine)
    assert sa.inspect(sa.create_engine(url)).get_table_names() == before


def test_processes_opening_a_new_database_together_do_not_race(tmp_path):
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    code = f"from bankmarketing.database import engine_for; engine_for({url!r})"
    processes = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(6)]
    errors = [p.communicate()[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, errors
    assert _schema_differences(sa.create_engine(url)) == []


def test_on_sqlite_a_write_commits_while_a_long_read_of_the_log_is_open(tmp_path):
    """`monitor` streams a day of the log for a minute; the receiver's bookkeeping and the
    predictor's log must still commit meanwhile (they wait at most their busy timeout)."""
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    engine = engine_for(url)
    rows = [
        {
            "request_id": f"r{i}",
            "at": dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
            "model_name": "m",
            "model_version": 1,
            "score": 0.5,
            "decision": True,
            "features": {},
        }
        for i in range(500)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(database.prediction_log), rows)
    impatient = sa.create_engine(url, connect_args={"timeout": 0.5})  # fails fast when locked
    with engine.connect() as reader:
        scan = reader.execution_options(stream_results=True).execute(sa.select(database.prediction_log))
        assert len(scan.fetchmany(10)) == 10  # the read is under way and holds its snapshot
        with impatient.begin() as writer:
            writer.execute(sa.insert(database.prediction_log), [rows[0] | {"request_id": "late"}])
        assert len(scan.fetchall()) == 490  # the read's snapshot: without the late row
    with engine.connect() as connection:
        count = sa.select(sa.func.count()).select_from(database.prediction_log)
        assert connection.execute(count).scalar() == 501
