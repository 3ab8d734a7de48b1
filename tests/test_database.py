"""The platform database: migrations match the tables, adopt old databases, and never race."""

from __future__ import annotations

import datetime as dt
import os
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
from bankmarketing.database import (
    VERSION_TABLE,
    SchemaOutOfDate,
    engine_for,
    metadata,
    migrate,
    migrate_database,
)


def _schema_differences(engine: sa.Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return compare_metadata(context, metadata)


def _migrated(url: str) -> sa.Engine:
    migrate_database(url)
    return engine_for(url)


def test_migrations_create_exactly_the_declared_tables_on_sqlite(tmp_path):
    engine = _migrated(f"sqlite:///{tmp_path / 'platform.db'}")
    assert set(metadata.tables) <= set(sa.inspect(engine).get_table_names())
    assert _schema_differences(engine) == []


@pytest.mark.integration
def test_migrations_create_exactly_the_declared_tables_on_postgres(postgres_url):
    engine = _migrated(postgres_url(f"schema_{uuid.uuid4().hex[:8]}", migrate=False))
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
    engine = _migrated(url)
    before = sa.inspect(engine).get_table_names()
    assert migrate(engine) == (_newest_revision(), _newest_revision())
    assert sa.inspect(sa.create_engine(url)).get_table_names() == before


def test_migrate_commands_run_together_do_not_race(tmp_path):
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    env = {**os.environ, "DATABASE_URL": url}
    command = [str(Path(sys.executable).with_name("bankmarketing")), "migrate"]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)
    ]
    outputs = [p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, [err.decode() for _, err in outputs]
    said = sorted(out.decode().split("(")[-1].strip() for out, _ in outputs)
    assert said == ["up to date)"] * 5 + ["upgraded from an empty database)"]  # one did the work
    assert _schema_differences(sa.create_engine(url)) == []


def test_opening_a_database_behind_the_code_names_the_command_to_run(tmp_path):
    """No process migrates as a side effect: a stage, the predictor or the receiver opening an
    unmigrated (or older) database stops with `bankmarketing migrate`, and changes nothing."""
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    with pytest.raises(SchemaOutOfDate, match=r"has no platform tables yet.*Run `bankmarketing migrate`"):
        engine_for(url)
    assert sa.inspect(sa.create_engine(url)).get_table_names() == []  # nothing created
    assert migrate_database(url, "0008_challenger_holm") == (None, "0008_challenger_holm")
    with pytest.raises(
        SchemaOutOfDate,
        match=rf"is at schema revision 0008_challenger_holm; this code needs revision {_newest_revision()}",
    ):
        engine_for(url)
    migrate_database(url)
    assert engine_for(url).dialect.name == "sqlite"


def test_the_migrate_command_says_what_it_did_and_a_stage_says_what_to_run(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    cli = str(Path(sys.executable).with_name("bankmarketing"))
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("request_id,subscribed\nr1,yes\n")
    stage = subprocess.run(
        [cli, "outcomes", "--path", str(outcomes)], env=env, capture_output=True, text=True
    )
    assert stage.returncode == 2 and "Run `bankmarketing migrate`" in stage.stderr, stage.stderr
    first = subprocess.run([cli, "migrate"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith(
        f"schema revision {_newest_revision()} (upgraded from an empty database)"
    )
    again = subprocess.run([cli, "migrate"], env=env, capture_output=True, text=True)
    assert again.stdout.strip().endswith("(up to date)")


def test_on_sqlite_a_write_commits_while_a_long_read_of_the_log_is_open(tmp_path):
    """`monitor` streams a day of the log for a minute; the receiver's bookkeeping and the
    predictor's log must still commit meanwhile (they wait at most their busy timeout)."""
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    engine = _migrated(url)
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
