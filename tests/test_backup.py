"""Backup and restore (`make backup` / `make restore`): the restore drill on real components.

The drill: a real MLflow server (SQLite or Postgres store, served artifacts) with a registered
model, two versions and the aliases production/previous; monitoring, audit and prediction-log
rows in the platform database; a spilled prediction-log file. Back up, stop MLflow, destroy
everything (files deleted, databases dropped), restore, start MLflow again: every row of every
table, the registry (versions, tags, aliases), the model's predictions and the files are as
before. Then what a restore must refuse: a damaged or altered archive (naming the part), a
non-empty target without --force, a running MLflow or other sessions on a target database, and
a restored database whose row counts differ from the manifest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sqlalchemy.pool import NullPool

from bankmarketing import backup
from bankmarketing.backup import BackupError, Locations
from bankmarketing.cli import mlflow_server_command
from bankmarketing.config import Settings
from bankmarketing.database import engine_for, metadata
from tests.conftest import MlflowServer, fluent_mlflow_on, migrated

REPO = Path(__file__).resolve().parents[1]
UTC = dt.UTC
#: Settings of the caller that would point the drill's command line elsewhere.
UNSET_FOR_THE_CLI = (
    "DATABASE_URL",
    "MLFLOW_STORE_URL",
    "MLFLOW_AUTH_DATABASE_URL",
    "PREDICTOR_LOG_SPILL_DIR",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


# --- the platform's state, to compare before and after ------------------------------------


def all_rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table of a database, in primary-key order (full contents)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    reflected = sa.MetaData()
    reflected.reflect(engine)
    rows = {}
    with engine.connect() as connection:
        for name, table in sorted(reflected.tables.items()):
            found = [tuple(row) for row in connection.execute(sa.select(table).order_by(*table.primary_key))]
            rows[name] = found if table.primary_key else sorted(found, key=repr)
    engine.dispose()
    return rows


def registry_state(uri: str, name: str) -> dict:
    """What the registry says about the model: versions (all fields), aliases, runs, models."""
    client = MlflowClient(uri, registry_uri=uri)
    model = client.get_registered_model(name)
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    runs = {v.run_id: client.get_run(v.run_id) for v in versions}
    return {
        "aliases": dict(model.aliases),
        "description": model.description,
        "tags": dict(model.tags),
        "versions": [
            {
                "version": v.version,
                "run_id": v.run_id,
                "source": v.source,
                "status": v.status,
                "tags": dict(v.tags),
                "aliases": sorted(v.aliases),
                "description": v.description,
                "created": v.creation_timestamp,
                "updated": v.last_updated_timestamp,
            }
            for v in versions
        ],
        "runs": {
            run_id: {"params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags}
            for run_id, run in runs.items()
        },
    }


FEATURES = np.array([[0.1, 1.0, -2.0], [1.5, -0.3, 0.2], [-1.0, 0.0, 3.0], [2.0, 2.0, -1.0]])


def predictions(uri: str, name: str) -> dict[str, list[float]]:
    """Each alias's model, loaded from the registry's served artifacts, on FEATURES."""
    with fluent_mlflow_on(uri):
        return {
            alias: mlflow.sklearn.load_model(f"models:/{name}@{alias}").predict_proba(FEATURES)[:, 1].tolist()
            for alias in ("production", "previous")
        }


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the platform's state, made -----------------------------------------------------------


def register_models(uri: str, name: str) -> None:
    """Two logged and registered versions (real artifacts), tagged; production=2, previous=1."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + rng.normal(scale=0.5, size=60) > 0).astype(int)
    with fluent_mlflow_on(uri):
        mlflow.set_experiment(name)
        for c in (0.1, 10.0):
            with mlflow.start_run():
                mlflow.log_params({"C": c, "kind": "logistic_regression"})
                model = LogisticRegression(C=c).fit(x, y)
                mlflow.log_metric("train_accuracy", model.score(x, y))
                mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client = MlflowClient(uri, registry_uri=uri)
    client.update_registered_model(name, description="the drill's model")
    client.set_model_version_tag(name, "1", "candidate", "logistic_regression")
    client.set_model_version_tag(name, "2", "val_pr_auc", "0.61")
    client.set_registered_model_alias(name, "previous", "1")
    client.set_registered_model_alias(name, "production", "2")


def fill_platform(url: str, model_name: str, start: int = 0) -> None:
    """Rows in the platform tables the drill checks: prediction log, outcomes, monitoring, audit."""
    tables = metadata.tables
    at = dt.datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    engine = engine_for(migrated(url))
    with engine.begin() as connection:
        connection.execute(
            tables["prediction_log"].insert(),
            [
                {
                    "request_id": f"req-{start + i}",
                    "at": at + dt.timedelta(minutes=i),
                    "model_name": model_name,
                    "model_version": 2,
                    "score": 0.1 + i / 100,
                    "decision": i % 3 == 0,
                    "features": {"age": 30 + i, "job": "admin.", "balance": 1000.5 * i},
                    "log_key": f"writer-1:{start + i}",
                    "arm": "production",
                    "shadow_version": 1,
                    "shadow_score": 0.2 + i / 100,
                }
                for i in range(25)
            ],
        )
        connection.execute(
            tables["prediction_outcome"].insert(),
            [
                {
                    "request_id": f"req-{start + i}",
                    "subscribed": i % 2 == 0,
                    "loaded_at": at,
                    "source": "x.csv",
                }
                for i in range(0, 25, 5)
            ],
        )
        period = {
            "model_name": model_name,
            "model_version": 2,
            "period_start": at,
            "period_end": at + dt.timedelta(days=30),
            "computed_at": at + dt.timedelta(days=31),
        }
        connection.execute(
            tables["monitoring_drift"].insert(),
            [
                period
                | {
                    "period": f"p{start + i}",
                    "source": "log",
                    "rows": 500 + i,
                    "min_rows": 200,
                    "enough_rows": True,
                    "prediction_drift_score": 0.05 * i,
                    "prediction_drift_detected": i > 2,
                    "drifted_columns": i,
                    "missing_values_share": 0.01,
                    "run_label": "mage:monitor:1",
                }
                for i in range(4)
            ],
        )
        connection.execute(
            tables["monitoring_performance"].insert(),
            period
            | {
                "period": f"p{start}",
                "labelled_rows": 5,
                "positives": 3,
                "roc_auc": 0.8,
                "pr_auc": 0.7,
                "precision": 0.6,
                "recall": 0.5,
                "f1": 0.55,
                "threshold": 0.3,
                "predicted_positive_share": 0.4,
            },
        )
        connection.execute(
            tables["deployment_audit"].insert(),
            {
                "at": at,
                "action": "promote",
                "model_name": model_name,
                "from_version": 1,
                "to_version": 2,
                "triggered_by": "user:drill",
                "reason": "better",
            },
        )
    engine.dispose()  # nothing of this process stays connected (a restore refuses other sessions)


def spill_something(spill: Path) -> None:
    """A spilled prediction-log segment, as the predictor leaves it while the database is down."""
    folder = spill / "host-1234-abcd"
    folder.mkdir(parents=True)
    (spill / "host-1234-abcd.lock").touch()
    row = {"request_id": "spilled-1", "model_version": 2, "score": 0.4, "log_key": "writer-2:1"}
    (folder / "00000000001700000000-000000000001.jsonl").write_text(json.dumps(row) + "\n")


def drop_database(url: str) -> None:
    parsed = sa.make_url(url)
    engine = sa.create_engine(
        parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with engine.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE "{parsed.database}"')


# --- the drill -----------------------------------------------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`bankmarketing <args>` as `make backup` / `make restore` run it."""
    return subprocess.run(
        [sys.executable, "-m", "bankmarketing.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )


@pytest.mark.integration
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_restore_drill_back_up_destroy_restore_and_everything_is_identical(tmp_path, store, request):
    name = f"drill-{uuid.uuid4().hex[:6]}"
    mlflow_dir, spill = tmp_path / "mlruns", tmp_path / "cache" / "prediction-log-spill"
    if store == "postgres":
        create = request.getfixturevalue("postgres_url")
        platform_url = create(f"platform_{uuid.uuid4().hex[:8]}")
        mlflow_url = create(f"mlflow_{uuid.uuid4().hex[:8]}")
    else:
        platform_url, mlflow_url = f"sqlite:///{tmp_path / 'data' / 'platform.db'}", None
    server = MlflowServer(mlflow_dir, database_url=mlflow_url)
    try:
        register_models(server.uri, name)
        fill_platform(platform_url, name)
        spill_something(spill)
        before = {
            "registry": registry_state(server.uri, name),
            "predictions": predictions(server.uri, name),
        }
    finally:
        server.stop()
    store_url = mlflow_url or f"sqlite:///{mlflow_dir / 'mlflow.db'}"
    before |= {
        "platform": all_rows(platform_url),
        "store": all_rows(store_url),
        "artifacts": folder_contents(mlflow_dir / "artifacts"),
        "spill": folder_contents(spill),
    }
    assert before["platform"]["prediction_log"] and before["platform"]["monitoring_drift"]
    assert before["registry"]["aliases"] == {"production": "2", "previous": "1"}
    assert before["artifacts"] and before["spill"]

    if store == "sqlite":  # through the command line, as `make backup` / `make restore`
        env = {
            **{k: v for k, v in os.environ.items() if k not in UNSET_FOR_THE_CLI},
            "BANK_DATA_DIR": str(tmp_path / "data"),
            "MLFLOW_DIR": str(mlflow_dir),
            "MLFLOW_TRACKING_URI": server.uri,  # stopped: a restore is refused while it answers
            "PREDICTOR_CACHE_DIR": str(tmp_path / "cache"),
            "BACKUP_DIR": str(tmp_path / "backups"),
            "STACK_RUN_DIR": str(tmp_path / "run"),
        }
        made = cli(env, "backup", "--compress")
        assert made.returncode == 0, made.stderr
        archive = Path(json.loads(made.stdout)["backup"])
        assert archive.name.endswith(".tar.gz") and archive.parent == tmp_path / "backups"
    else:
        locations = Locations(
            platform_url=platform_url,
            mlflow_store_url=mlflow_url,
            mlflow_auth_url=f"sqlite:///{mlflow_dir / 'basic_auth.db'}",
            mlflow_artifacts=mlflow_dir / "artifacts",
            spill_dir=spill,
            tracking_uri=server.uri,
        )
        archive = Path(backup.backup(locations, tmp_path / "backups")["backup"])
        manifest = json.loads((archive / "manifest.json").read_text())
        parts = {p["name"]: p for p in manifest["parts"]}
        assert parts["platform"]["kind"] == parts["mlflow-store"]["kind"] == "postgres"
        assert parts["platform"]["tables"]["prediction_log"] == 25
        assert parts["mlflow-auth"]["present"] is False
        assert parts["mlflow-artifacts"]["files"] == len(before["artifacts"])

    # destroy: every file deleted, every database dropped
    shutil.rmtree(mlflow_dir)
    shutil.rmtree(spill)
    if store == "sqlite":
        shutil.rmtree(tmp_path / "data")
    else:
        drop_database(platform_url)
        drop_database(mlflow_url)

    if store == "sqlite":
        restored = cli(env, "restore", str(archive))
        assert restored.returncode == 0, restored.stderr
    else:
        backup.restore(locations, archive)

    after = {
        "platform": all_rows(platform_url),
        "store": all_rows(store_url),
        "artifacts": folder_contents(mlflow_dir / "artifacts"),
        "spill": folder_contents(spill),
    }
    server = MlflowServer(mlflow_dir, database_url=mlflow_url)
    try:
        after |= {
            "registry": registry_state(server.uri, name),
            "predictions": predictions(server.uri, name),
        }
    finally:
        server.stop()
    for key in ("platform", "store", "artifacts", "spill", "registry", "predictions"):
        assert after[key] == before[key], key


# --- what a restore refuses ----------------------------------------------------------------


def small_platform(tmp_path: Path) -> Locations:
    """SQLite platform and MLflow store, an artifacts folder and a spill folder; no services."""
    locations = Locations(
        platform_url=f"sqlite:///{tmp_path / 'data' / 'platform.db'}",
        mlflow_store_url=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
        mlflow_auth_url=f"sqlite:///{tmp_path / 'mlruns' / 'basic_auth.db'}",
        mlflow_artifacts=tmp_path / "mlruns" / "artifacts",
        spill_dir=tmp_path / "cache" / "prediction-log-spill",
    )
    fill_platform(locations.platform_url, "m")
    locations.mlflow_artifacts.parent.mkdir()
    store = sa.create_engine(locations.mlflow_store_url, poolclass=NullPool)
    with store.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE model_versions (name TEXT, version INTEGER)")
        connection.exec_driver_sql("INSERT INTO model_versions VALUES ('m', 1), ('m', 2)")
    model = locations.mlflow_artifacts / "1" / "models" / "m-1" / "artifacts"
    model.mkdir(parents=True)
    (model / "model.pkl").write_bytes(os.urandom(4096))
    (model / "MLmodel").write_text("flavors: {}\n")
    spill_something(locations.spill_dir)
    return locations


def state(locations: Locations) -> dict:
    return {
        "platform": all_rows(locations.platform_url),
        "store": all_rows(locations.mlflow_store_url),
        "artifacts": folder_contents(locations.mlflow_artifacts),
        "spill": folder_contents(locations.spill_dir),
    }


@pytest.mark.parametrize(
    "part, file",
    [("platform", "platform.sqlite"), ("mlflow-store", "mlflow-store.sqlite"), ("mlflow-artifacts", None)],
)
def test_a_tampered_archive_is_refused_naming_the_part_and_nothing_is_touched(tmp_path, part, file):
    locations = small_platform(tmp_path)
    archive = Path(backup.backup(locations, tmp_path / "backups")["backup"])
    path = archive / (file or f"{part}.tar")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit pattern changed, same size
    path.write_bytes(bytes(data))
    fill_platform(locations.platform_url, "m", start=100)  # the live data moved on since
    live = state(locations)
    with pytest.raises(BackupError) as refused:
        backup.restore(locations, archive, force=True)
    message = str(refused.value)
    assert f"part {part!r}" in message and path.name in message and "sha256" in message
    assert "nothing was restored" in message
    assert state(locations) == live


def test_a_missing_part_is_refused_naming_it(tmp_path):
    locations = small_platform(tmp_path)
    archive = Path(backup.backup(locations, tmp_path / "backups")["backup"])
    (archive / "prediction-log-spill.tar").unlink()
    with pytest.raises(BackupError, match="part 'prediction-log-spill': prediction-log-spill.tar is missing"):
        backup.restore(locations, archive, force=True)


def test_a_non_empty_target_is_refused_without_force_and_replaced_with_it(tmp_path):
    locations = small_platform(tmp_path)
    saved = state(locations)
    made = backup.backup(locations, tmp_path / "backups", compress=True)
    archive = Path(made["backup"])
    fill_platform(locations.platform_url, "m", start=100)
    (locations.mlflow_artifacts / "2").mkdir()
    (locations.mlflow_artifacts / "2" / "later.txt").write_text("logged after the backup")
    live = state(locations)
    with pytest.raises(BackupError) as refused:
        backup.restore(locations, archive)
    message = str(refused.value)
    assert "refusing to overwrite existing data in platform (sqlite:///" in message
    assert "mlflow-store" in message and "mlflow-artifacts" in message and "--force" in message
    assert state(locations) == live
    backup.restore(locations, archive, force=True)
    assert state(locations) == saved
    assert not list(tmp_path.glob("backups/.bankmarketing-restore-*"))  # the unpacked copy is gone


def test_an_absent_part_is_absent_after_the_restore(tmp_path):
    """No spill folder at backup time: after a forced restore there is none (identical)."""
    locations = small_platform(tmp_path)
    shutil.rmtree(locations.spill_dir)
    archive = Path(backup.backup(locations, tmp_path / "backups")["backup"])
    spill_something(locations.spill_dir)
    backup.restore(locations, archive, force=True)
    assert not locations.spill_dir.exists()


def test_row_counts_that_differ_from_the_manifest_fail_the_restore(tmp_path):
    locations = small_platform(tmp_path)
    archive = Path(backup.backup(locations, tmp_path / "backups")["backup"])
    manifest = json.loads((archive / "manifest.json").read_text())
    manifest["parts"][0]["tables"]["prediction_log"] += 1
    (archive / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="table prediction_log has 25 rows, the manifest says 26"):
        backup.restore(locations, archive, force=True)


class Health:
    """Something answering /health, as a running MLflow does."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_restore_is_refused_while_mlflow_answers_or_the_stack_is_up(tmp_path):
    locations = small_platform(tmp_path)
    archive = Path(backup.backup(locations, tmp_path / "backups")["backup"])
    live = state(locations)
    mlflow_up = Health()
    try:
        running = replace(locations, tracking_uri=mlflow_up.uri)
        with pytest.raises(BackupError, match=f"MLflow answers at {mlflow_up.uri}: stop the stack first"):
            backup.restore(running, archive, force=True)
    finally:
        mlflow_up.stop()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stack.pid").write_text(f"{os.getpid()} marker")
    stack_up = replace(locations, run_dir=tmp_path / "run")
    with pytest.raises(BackupError, match="the local stack is up .*make down"):
        backup.restore(stack_up, archive, force=True)
    assert state(locations) == live


@pytest.mark.integration
def test_postgres_restore_refuses_other_sessions_and_with_force_replaces_everything(tmp_path, postgres_url):
    locations = small_platform(tmp_path)
    url = postgres_url(f"platform_{uuid.uuid4().hex[:8]}")
    locations = replace(locations, platform_url=url)
    fill_platform(url, "m")
    schema_acl = "SELECT nspowner::regrole::text, nspacl::text FROM pg_namespace WHERE nspname = 'public'"
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        public_before = connection.exec_driver_sql(schema_acl).one()
    saved = all_rows(url)
    archive = Path(backup.backup(locations, tmp_path / "backups")["backup"])
    fill_platform(url, "m", start=100)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE made_after_the_backup (id integer)")
    with engine.connect() as connection:  # a service still connected
        with pytest.raises(BackupError, match=r"part 'platform': 1 other sessions use postgresql://"):
            backup.restore(locations, archive, force=True)
    with pytest.raises(BackupError, match=r"refusing to overwrite existing data in platform \(postgresql://"):
        backup.restore(locations, archive)
    assert "made_after_the_backup" in all_rows(url)
    backup.restore(locations, archive, force=True)
    assert all_rows(url) == saved  # the later rows and the later table are gone
    with engine.connect() as connection:
        assert connection.exec_driver_sql(schema_acl).one() == public_before


@pytest.mark.integration
@pytest.mark.parametrize("failing", ["psql", "pg_restore"])
def test_postgres_restore_that_fails_leaves_the_database_as_it_was(tmp_path, postgres_url, failing):
    """pg_restore | psql in one transaction: a dump that stops loading half-way (psql meets an
    error, or pg_restore dies mid-stream) changes nothing, not even with --force."""
    locations = small_platform(tmp_path)
    url = postgres_url(f"platform_{uuid.uuid4().hex[:8]}")
    locations = replace(locations, platform_url=url)
    fill_platform(url, "m")
    archive = Path(backup.backup(locations, tmp_path / "backups")["backup"])
    fill_platform(url, "m", start=100)
    live = all_rows(url)
    real = backup.pg_program("pg_restore")
    sql = subprocess.run([real, "--file", "-", str(archive / "platform.pgdump")], capture_output=True).stdout
    script = tmp_path / "restore.sql"
    if failing == "psql":  # the whole script, then a statement that fails
        script.write_bytes(sql + b"\nSELECT 1/0;\n")
        then = f"exec cat {script}"
    else:  # the script up to the end of the first table's data (valid SQL), then pg_restore fails
        end = sql.index(b"\n\\.\n") + 4
        script.write_bytes(sql[:end])
        then = f"cat {script}; echo 'pg_restore: error: could not read input file' >&2; exit 1"
    fake = tmp_path / "pgbin"
    fake.mkdir()
    for program in ("pg_dump", "psql"):
        (fake / program).symlink_to(backup.pg_program(program))
    (fake / "pg_restore").write_text(f'#!/bin/sh\n[ "$1" = "--list" ] && exec {real} "$@"\n{then}\n')
    (fake / "pg_restore").chmod(0o755)
    saved_bin = os.environ.get("PG_BIN")
    os.environ["PG_BIN"] = str(fake)
    try:
        with pytest.raises(BackupError) as failed:
            backup.restore(locations, archive, force=True)
    finally:
        if saved_bin is None:
            os.environ.pop("PG_BIN")
        else:
            os.environ["PG_BIN"] = saved_bin
    expected = {
        "psql": "psql failed, the transaction was rolled back",
        "pg_restore": "pg_restore failed, postgresql://",
    }[failing]
    assert expected in str(failed.value) and "part 'platform'" in str(failed.value)
    assert all_rows(url) == live


# --- where the parts are -------------------------------------------------------------------


def test_locations_are_where_the_mlflow_server_and_the_predictor_keep_them(tmp_path):
    settings = Settings(
        data_path=None,
        data_dir=tmp_path / "data",
        data_url="",
        tracking_uri="http://127.0.0.1:5000",
        model_name="m",
        experiment="m",
        database_url=None,
        mlflow_dir=tmp_path / "mlruns",
    )
    command = mlflow_server_command(settings, "127.0.0.1", 5000)
    locations = Locations.from_settings(settings, env={"PREDICTOR_CACHE_DIR": str(tmp_path / "cache")})
    assert locations.mlflow_store_url == command[command.index("--backend-store-uri") + 1]
    assert str(locations.mlflow_artifacts) == command[command.index("--artifacts-destination") + 1]
    assert locations.platform_url == settings.platform_database_url
    assert locations.spill_dir == tmp_path / "cache" / "prediction-log-spill"
    shared = Settings(**{**settings.__dict__, "database_url": "postgresql://u:xxx@db:5432/platform"})
    command = mlflow_server_command(shared, "127.0.0.1", 5000)
    locations = Locations.from_settings(shared, env={"PREDICTOR_LOG_SPILL_DIR": "/var/spill"})
    assert locations.mlflow_store_url == command[command.index("--backend-store-uri") + 1]
    assert locations.mlflow_store_url == locations.platform_url  # one database: backed up once
    assert locations.spill_dir == Path("/var/spill")
    compose = Locations.from_settings(shared, env={"MLFLOW_STORE_URL": "postgresql://u:xxx@db:5432/mlflow"})
    assert compose.mlflow_store_url.endswith("/mlflow")
