"""Backup and restore of the platform's state: one archive, checked before anything is touched.

What is backed up (`Locations.from_settings`), in this order:

  platform              the platform database (DATABASE_URL, else BANK_DATA_DIR/platform.db): prediction
                        log, monitoring tables, deployment audit, alerts, retrainings
  mlflow-store          MLflow's backend store (runs, registered models, versions, aliases): what
                        `bankmarketing mlflow-server` uses, DATABASE_URL else MLFLOW_DIR/mlflow.db;
                        MLFLOW_STORE_URL overrides it (e.g. compose's `mlflow` database)
  mlflow-auth           MLflow's basic-auth users (MLFLOW_AUTH_DATABASE_URL, else MLFLOW_DIR/basic_auth.db)
  mlflow-artifacts      the artifacts MLflow serves (MLFLOW_DIR/artifacts): model files
  prediction-log-spill  rows the predictor spilled to disk while the database was down
                        (PREDICTOR_LOG_SPILL_DIR, else PREDICTOR_CACHE_DIR/prediction-log-spill)

A database is copied consistently while it is in use: SQLite through the online backup API,
Postgres with `pg_dump --format=custom` inside the snapshot the row counts are read in. A
database that is both MLflow's store and the platform's (one DATABASE_URL) is copied once.
Folders are copied as tar files. The archive is a folder (or that folder as .tar.gz) with
`manifest.json`: each part's source (passwords hidden), size, sha256, and rows per table.

`restore` first reads the whole archive and checks every part's size and sha256, then refuses
while MLflow answers or other sessions use a target database, and refuses to replace a
non-empty target without `force`. Only then does it restore each part, and it ends by
comparing the row counts of every table (and the files of every folder) with the manifest.
A Postgres database is restored in one transaction (`pg_restore | psql --single-transaction`):
a failure leaves it as it was.

PostgreSQL's client programs (pg_dump, pg_restore, psql; the server's major version or newer)
are found in PG_BIN, else on PATH, else in /usr/lib/postgresql/15/bin.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from bankmarketing.config import Settings
from bankmarketing.data.loading import sha256_of

MANIFEST = "manifest.json"
FORMAT = 1
#: Where PostgreSQL's client programs are looked for when PG_BIN is unset and they are not on PATH.
DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message names the part and what was expected."""


# --- what is backed up -----------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    name: str
    kind: str  # database | folder
    location: str  # a database URL or a folder path
    description: str
    optional: bool = False  # a SQLite file or a folder that may not exist (recorded as absent)


@dataclass(frozen=True)
class Locations:
    """Where the platform keeps each part; a restore writes back to the same places."""

    platform_url: str
    mlflow_store_url: str
    mlflow_auth_url: str
    mlflow_artifacts: Path
    spill_dir: Path
    #: MLflow's address: a restore is refused while it answers there.
    tracking_uri: str | None = None
    #: The local stack's folder (`make up`): a restore is refused while its stack.pid is alive.
    run_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings, env: dict[str, str] | None = None) -> Locations:
        env = dict(os.environ if env is None else env)
        mlflow_dir = settings.mlflow_dir.resolve()
        spill = env.get("PREDICTOR_LOG_SPILL_DIR", "").strip()
        cache = env.get("PREDICTOR_CACHE_DIR", "").strip() or ".run/predictor-cache"
        return cls(
            platform_url=settings.platform_database_url,
            # as `bankmarketing mlflow-server` (cli.mlflow_server_command) chooses it
            mlflow_store_url=env.get("MLFLOW_STORE_URL", "").strip()
            or settings.database_url
            or f"sqlite:///{mlflow_dir}/mlflow.db",
            mlflow_auth_url=env.get("MLFLOW_AUTH_DATABASE_URL", "").strip()
            or f"sqlite:///{mlflow_dir}/basic_auth.db",
            mlflow_artifacts=mlflow_dir / "artifacts",
            spill_dir=Path(spill) if spill else Path(cache) / "prediction-log-spill",
            tracking_uri=settings.tracking_uri,
            run_dir=Path(env.get("STACK_RUN_DIR", "").strip() or ".run"),
        )

    def parts(self) -> list[Part]:
        return [
            Part(
                "platform",
                "database",
                self.platform_url,
                "platform database: prediction log, monitoring, deployment audit, alerts",
                optional=False,
            ),
            Part(
                "mlflow-store",
                "database",
                self.mlflow_store_url,
                "MLflow backend store: runs, registered models, versions, aliases",
            ),
            Part("mlflow-auth", "database", self.mlflow_auth_url, "MLflow basic-auth users", optional=True),
            Part(
                "mlflow-artifacts",
                "folder",
                str(self.mlflow_artifacts),
                "MLflow artifacts: model files",
                optional=True,
            ),
            Part(
                "prediction-log-spill",
                "folder",
                str(self.spill_dir),
                "prediction-log rows spilled to disk by the predictor",
                optional=True,
            ),
        ]


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _is_postgres(url: str) -> bool:
    return url.startswith("postgres")


def _sqlite_path(url: str) -> Path:
    database = sa.make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url}: an in-memory SQLite database cannot be backed up")
    return Path(database).resolve()


def _same_database(a: str, b: str) -> bool:
    if _is_sqlite(a) and _is_sqlite(b):
        return _sqlite_path(a) == _sqlite_path(b)
    if _is_postgres(a) and _is_postgres(b):
        ua, ub = sa.make_url(a), sa.make_url(b)
        return (ua.host or "", ua.port or 5432, ua.database) == (ub.host or "", ub.port or 5432, ub.database)
    return False


def _shown(location: str) -> str:
    """A location for messages and the manifest: a URL's password hidden."""
    if "://" in location:
        return sa.make_url(location).render_as_string(hide_password=True)
    return location


# --- helpers ---------------------------------------------------------------------------


def pg_program(name: str) -> str:
    """A PostgreSQL client program: PG_BIN, else PATH, else /usr/lib/postgresql/15/bin."""
    given = os.environ.get("PG_BIN", "").strip()
    candidates = [Path(given) / name] if given else []
    found = shutil.which(name)
    candidates += [Path(found)] if found else []
    candidates.append(DEFAULT_PG_BIN / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    where = f"PG_BIN={given}, PATH or {DEFAULT_PG_BIN}" if given else f"PATH or {DEFAULT_PG_BIN}"
    raise BackupError(
        f"{name} not found in {where}: install the PostgreSQL client (the server's major version "
        "or newer) or set PG_BIN to its bin folder"
    )


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy URL as a libpq connection URI, the password moved to PGPASSWORD."""
    parsed = sa.make_url(url)
    env = {**os.environ}
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- databases -------------------------------------------------------------------------

_PG_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp)'
ORDER BY 1, 2
"""


def _pg_counts(connection: sa.Connection) -> dict[str, int]:
    counts = {}
    for schema, table in connection.exec_driver_sql(_PG_TABLES).all():
        key = table if schema == "public" else f"{schema}.{table}"
        counts[key] = connection.exec_driver_sql(
            f"SELECT count(*) FROM {_quote(schema)}.{_quote(table)}"
        ).scalar()
    return counts


def _sqlite_counts(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        return {t: connection.execute(f"SELECT count(*) FROM {_quote(t)}").fetchone()[0] for t in tables}
    finally:
        connection.close()


def _backup_sqlite(path: Path, out: Path) -> dict[str, int]:
    source = sqlite3.connect(path, timeout=60)
    target = sqlite3.connect(out)
    try:
        source.backup(target)  # one step: a consistent copy even while others write
    finally:
        target.close()
        source.close()
    return _sqlite_counts(out)


def _run(command: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise BackupError(
            f"{what}: {Path(command[0]).name} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result


def _backup_postgres(url: str, out: Path, part: str) -> dict[str, int]:
    """pg_dump in the snapshot of a read-only transaction whose row counts go in the manifest."""
    conninfo, env = _libpq(url)
    pg_dump = pg_program("pg_dump")
    try:
        with _engine(url).connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            _run(
                [
                    pg_dump,
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    "--file",
                    str(out),
                    "--dbname",
                    conninfo,
                ],
                f"part {part!r} ({_shown(url)})",
                env=env,
            )
            counts = _pg_counts(connection)
            connection.rollback()
    except sa.exc.OperationalError as exc:
        raise BackupError(f"part {part!r}: cannot connect to {_shown(url)}: {exc.orig}") from None
    return counts


def _pg_database_exists(url: str) -> bool:
    parsed = sa.make_url(url)
    with _engine(parsed.set(database="postgres")).connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": parsed.database}
        ).first()
    return found is not None


def _pg_create_database(url: str) -> None:
    parsed = sa.make_url(url)
    engine = _engine(parsed.set(database="postgres")).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {_quote(parsed.database)}")


def _pg_state(url: str) -> tuple[bool, dict[str, int], list[str]]:
    """(exists, rows per table, other client sessions) of a Postgres database."""
    try:
        try:
            with _engine(url).connect() as connection:
                counts = _pg_counts(connection)
                sessions = (
                    connection.exec_driver_sql(
                        "SELECT coalesce(nullif(application_name, ''), client_addr::text, 'local') "
                        "FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                    )
                    .scalars()
                    .all()
                )
        except sa.exc.OperationalError:
            if _pg_database_exists(url):
                raise
            return False, {}, []
    except sa.exc.OperationalError as exc:
        raise BackupError(f"cannot connect to {_shown(url)}: {str(exc.orig).strip()}") from None
    return True, counts, list(sessions)


#: With --force, a Postgres database's schema `public` is emptied first, in the restore's
#: transaction, and given back PostgreSQL 15's defaults (the dump holds only changes to them).
_CLEAR_PUBLIC = """
DROP SCHEMA IF EXISTS public CASCADE;
CREATE SCHEMA public;
DO $$BEGIN
  IF current_setting('server_version_num')::int >= 150000 THEN
    ALTER SCHEMA public OWNER TO pg_database_owner;
    GRANT USAGE ON SCHEMA public TO PUBLIC;
  ELSE
    GRANT ALL ON SCHEMA public TO PUBLIC;
  END IF;
END$$;
"""


def _restore_postgres(dump: Path, url: str, clear: bool, part: str) -> None:
    """`pg_restore | psql --single-transaction` (after emptying the schema `public` when `clear`):
    all or nothing. If pg_restore fails, psql is killed before it reaches the end of its input,
    so it never commits."""
    if not _pg_state(url)[0]:
        _pg_create_database(url)
    conninfo, env = _libpq(url)
    preamble = ["-c", _CLEAR_PUBLIC] if clear else []
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as load_err:
        restore = subprocess.Popen(
            [pg_program("pg_restore"), "--no-owner", "--exit-on-error", "--file", "-", str(dump)],
            stdout=subprocess.PIPE,
            stderr=restore_err,
            env=env,
        )
        load = subprocess.Popen(
            [
                pg_program("psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "--dbname",
                conninfo,
                *preamble,
                "-f",
                "-",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=load_err,
            env=env,
        )
        assert restore.stdout is not None and load.stdin is not None
        try:
            shutil.copyfileobj(restore.stdout, load.stdin, 1 << 20)
        except BrokenPipeError:  # psql stopped at an error: its message follows
            pass
        if restore.wait() != 0:
            load.kill()  # before psql reads the end of its input: nothing is committed
            load.wait()
            restore_err.seek(0)
            raise BackupError(
                f"part {part!r}: pg_restore failed, {_shown(url)} left as it was: "
                + restore_err.read().decode(errors="replace").strip()
            )
        try:
            load.stdin.close()
        except BrokenPipeError:
            pass
        if load.wait() != 0:
            load_err.seek(0)
            raise BackupError(
                f"part {part!r}: psql failed, the transaction was rolled back and {_shown(url)} left "
                "as it was: " + load_err.read().decode(errors="replace").strip()
            )


def _restore_sqlite(copy: Path, path: Path) -> None:
    """The archived file into `path` through the backup API (one transaction, WAL-aware)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(path, timeout=60)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _sqlite_state(path: Path) -> tuple[bool, dict[str, int] | None]:
    """(exists, rows per table or None when it is not a readable database)."""
    if not path.exists():
        return False, {}
    if path.stat().st_size == 0:
        return True, {}
    try:
        return True, _sqlite_counts(path)
    except sqlite3.DatabaseError:
        return True, None


def _check_sqlite_copy(copy: Path, part: str) -> None:
    connection = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)
    try:
        verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    finally:
        connection.close()
    if verdict != "ok":
        raise BackupError(
            f"part {part!r}: {copy.name} is not a sound SQLite database ({verdict}); nothing restored"
        )


# --- folders ---------------------------------------------------------------------------


def _files(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _folder_summary(folder: Path) -> tuple[int, int]:
    """(regular files, their total bytes) under `folder`."""
    count = size = 0
    for path in _files(folder):
        if path.is_file() and not path.is_symlink():
            count += 1
            size += path.stat().st_size
    return count, size


def _backup_folder(folder: Path, out: Path) -> tuple[int, int]:
    count = size = 0
    with tarfile.open(out, "w") as tar:
        for path in _files(folder):
            try:
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
                if not info.isfile():
                    continue
                with open(path, "rb") as file:
                    tar.addfile(info, file)
            except FileNotFoundError:  # removed meanwhile (a spill file written to the database)
                continue
            count += 1
            size += info.size
    return count, size


def _restore_folder(tar_path: Path, folder: Path, files: int, size: int, part: str) -> None:
    """Unpack beside `folder`, check it against the manifest, then swap it in."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.restore-", dir=folder.parent))
    try:
        with tarfile.open(tar_path) as tar:
            tar.extractall(staging, filter="data")
        found = _folder_summary(staging)
        if found != (files, size):
            raise BackupError(
                f"part {part!r}: unpacked {found[0]} files / {found[1]} bytes, the manifest says "
                f"{files} / {size}; {folder} left as it was"
            )
        staging.chmod(0o755)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.replaced-{os.getpid()}")
            folder.rename(old)
        staging.rename(folder)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _folder_empty(folder: Path) -> bool:
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


# --- backup ----------------------------------------------------------------------------


def _mlflow_answers(uri: str | None) -> bool:
    if not uri or not uri.startswith("http"):
        return False
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def backup(locations: Locations, output: Path, compress: bool = False) -> dict[str, Any]:
    """Back up every part into a new folder under `output` (or `<folder>.tar.gz`); its manifest.

    Written as `<name>.partial` and renamed at the end: an interrupted backup never looks whole.
    """
    created = datetime.now(UTC)
    output.mkdir(parents=True, exist_ok=True)
    name = f"bankmarketing-{created:%Y%m%dT%H%M%SZ}"
    for suffix in range(1, 100):  # two backups in one second: -2, -3, ...
        if not any((output / f"{name}{s}").exists() for s in ("", ".partial", ".tar.gz")):
            break
        name = f"bankmarketing-{created:%Y%m%dT%H%M%SZ}-{suffix + 1}"
    partial = output / f"{name}.partial"
    partial.mkdir(mode=0o700)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": created.isoformat(),
        "host": socket.gethostname(),
        "mlflow_was_running": _mlflow_answers(locations.tracking_uri),
        "parts": [],
    }
    databases: dict[str, str] = {}  # a database already copied: its part
    try:
        for part in locations.parts():
            entry: dict[str, Any] = {
                "name": part.name,
                "description": part.description,
                "source": _shown(part.location),
            }
            manifest["parts"].append(entry)
            if part.kind == "database":
                same = next((n for url, n in databases.items() if _same_database(url, part.location)), None)
                if same:
                    entry |= {"kind": "same", "same_as": same, "present": True}
                    continue
                databases[part.location] = part.name
                entry |= _backup_database(part, partial)
            else:
                folder = Path(part.location)
                entry["kind"] = "folder"
                if not folder.is_dir():
                    entry["present"] = False
                    continue
                out = partial / f"{part.name}.tar"
                files, size = _backup_folder(folder, out)
                entry |= {"present": True, "file": out.name, "files": files, "content_bytes": size}
            if entry.get("present"):
                out = partial / entry["file"]
                out.chmod(0o600)
                entry |= {"bytes": out.stat().st_size, "sha256": sha256_of(out)}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        final = output / name
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if compress:
        archive, writing = output / f"{name}.tar.gz", output / f"{name}.tar.gz.partial"
        with tarfile.open(writing, "w:gz") as tar:
            tar.add(final, arcname=name)
        writing.chmod(0o600)
        writing.rename(archive)
        shutil.rmtree(final)
        final = archive
    return {"backup": str(final), "parts": {p["name"]: _part_summary(p) for p in manifest["parts"]}}


def _backup_database(part: Part, folder: Path) -> dict[str, Any]:
    url = part.location
    if _is_sqlite(url):
        path = _sqlite_path(url)
        if not path.is_file():
            if part.optional:
                return {"kind": "sqlite", "present": False}
            raise BackupError(f"part {part.name!r}: {path} does not exist")
        out = folder / f"{part.name}.sqlite"
        return {"kind": "sqlite", "present": True, "file": out.name, "tables": _backup_sqlite(path, out)}
    if _is_postgres(url):
        out = folder / f"{part.name}.pgdump"
        return {
            "kind": "postgres",
            "present": True,
            "file": out.name,
            "tables": _backup_postgres(url, out, part.name),
        }
    raise BackupError(f"part {part.name!r}: {_shown(url)} is neither SQLite nor Postgres")


def _part_summary(entry: dict[str, Any]) -> str:
    if entry["kind"] == "same":
        return f"in {entry['same_as']}"
    if not entry.get("present"):
        return "absent"
    if "tables" in entry:
        return f"{len(entry['tables'])} tables, {sum(entry['tables'].values())} rows, {entry['bytes']} bytes"
    return f"{entry['files']} files, {entry['content_bytes']} bytes"


# --- restore ---------------------------------------------------------------------------


@contextmanager
def _opened(archive: Path) -> Iterator[Path]:
    """The backup folder: `archive` itself, or a .tar.gz unpacked beside it."""
    if archive.is_dir():
        yield archive
        return
    if not archive.is_file():
        raise BackupError(f"{archive}: no such backup (a folder with {MANIFEST}, or its .tar.gz)")
    with tempfile.TemporaryDirectory(prefix=".bankmarketing-restore-", dir=archive.parent) as folder:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(folder, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"{archive}: cannot unpack it ({exc})") from None
        inside = [p for p in Path(folder).iterdir() if (p / MANIFEST).is_file()]
        if len(inside) != 1:
            raise BackupError(f"{archive}: expected one backup folder with {MANIFEST} inside")
        yield inside[0]


def _load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder}: no {MANIFEST}: not a backup made by `bankmarketing backup`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BackupError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: format {manifest.get('format')!r}, this version reads format {FORMAT}")
    return manifest


def verify(folder: Path, manifest: dict[str, Any]) -> None:
    """Every part present in the manifest exists with its size and sha256; else BackupError."""
    problems = []
    for entry in manifest["parts"]:
        if not entry.get("present") or entry["kind"] == "same":
            continue
        path = folder / entry["file"]
        if not path.is_file():
            problems.append(f"part {entry['name']!r}: {entry['file']} is missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(
                f"part {entry['name']!r}: {entry['file']} has {path.stat().st_size} bytes, "
                f"the manifest says {entry['bytes']}"
            )
        elif (digest := sha256_of(path)) != entry["sha256"]:
            problems.append(
                f"part {entry['name']!r}: {entry['file']} has sha256 {digest}, the manifest says "
                f"{entry['sha256']}"
            )
    if problems:
        raise BackupError(
            "the backup is damaged or was altered, nothing was restored: " + "; ".join(problems)
        )


def _stack_alive(run_dir: Path | None) -> bool:
    pid_file = run_dir / "stack.pid" if run_dir else None
    if pid_file is None or not pid_file.is_file():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def restore(locations: Locations, archive: Path, force: bool = False) -> dict[str, Any]:
    """Restore a backup into `locations`; see the module's docstring for the checks, in order."""
    with _opened(archive) as folder:
        manifest = _load_manifest(folder)
        verify(folder, manifest)
        targets = {p.name: p for p in locations.parts()}
        entries = [e for e in manifest["parts"] if e["kind"] != "same"]
        unknown = [e["name"] for e in entries if e["name"] not in targets]
        if unknown:
            raise BackupError(f"the backup has parts this version does not know: {unknown}; nothing restored")
        _refuse_while_running(locations, [targets[e["name"]] for e in entries])
        busy = [
            f"{e['name']} ({_shown(targets[e['name']].location)})"
            for e in entries
            if not _target_empty(targets[e["name"]])
        ]
        if busy and not force:
            raise BackupError(
                "refusing to overwrite existing data in "
                + ", ".join(busy)
                + ": restore with --force (make restore BACKUP=... FORCE=1) to replace it; nothing restored"
            )
        for entry in entries:  # sound copies before the first target is touched
            if entry.get("present") and entry["kind"] == "sqlite":
                _check_sqlite_copy(folder / entry["file"], entry["name"])
            elif entry.get("present") and entry["kind"] == "postgres":
                _run(
                    [pg_program("pg_restore"), "--list", str(folder / entry["file"])],
                    f"part {entry['name']!r}: {entry['file']} is not a readable dump; nothing restored",
                )
        done: list[str] = []
        for entry in entries:
            part = targets[entry["name"]]
            try:
                _restore_part(folder, entry, part)
            except BackupError as exc:
                raise BackupError(f"{exc} (restored before it: {done or 'none'})") from None
            done.append(part.name)
        _check_restored(manifest, targets)
    return {
        "restored": str(archive),
        "created_at": manifest["created_at"],
        "parts": {e["name"]: _part_summary(e) for e in manifest["parts"]},
    }


def _refuse_while_running(locations: Locations, parts: list[Part]) -> None:
    stop = (
        "stop the stack first (`make down`; compose: "
        "`docker compose stop mlflow mage predictor alerts grafana`)"
    )
    if _stack_alive(locations.run_dir):
        raise BackupError(f"the local stack is up ({locations.run_dir}/stack.pid): {stop}; nothing restored")
    if _mlflow_answers(locations.tracking_uri):
        raise BackupError(f"MLflow answers at {locations.tracking_uri}: {stop}; nothing restored")
    for part in parts:
        if part.kind == "database" and _is_postgres(part.location):
            sessions = _pg_state(part.location)[2]
            if sessions:
                raise BackupError(
                    f"part {part.name!r}: {len(sessions)} other sessions use {_shown(part.location)} "
                    f"({', '.join(sorted(set(sessions)))}): {stop}; nothing restored"
                )


def _target_empty(part: Part) -> bool:
    if part.kind == "folder":
        return _folder_empty(Path(part.location))
    if _is_sqlite(part.location):
        exists, counts = _sqlite_state(_sqlite_path(part.location))
        return not exists or counts == {}
    return not _pg_state(part.location)[1]


def _restore_part(folder: Path, entry: dict[str, Any], part: Part) -> None:
    present = entry.get("present")
    if part.kind == "folder":
        target = Path(part.location)
        if present:
            _restore_folder(folder / entry["file"], target, entry["files"], entry["content_bytes"], part.name)
        elif target.exists():
            shutil.rmtree(target)
        return
    if entry["kind"] == "sqlite":
        if not _is_sqlite(part.location):
            raise BackupError(
                f"part {part.name!r}: the backup holds a SQLite database, the target {_shown(part.location)} "
                "is not SQLite (set DATABASE_URL / MLFLOW_STORE_URL to the kind that was backed up)"
            )
        path = _sqlite_path(part.location)
        if present:
            _restore_sqlite(folder / entry["file"], path)
        else:
            for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
                leftover.unlink(missing_ok=True)
        return
    if not _is_postgres(part.location):
        raise BackupError(
            f"part {part.name!r}: the backup holds a Postgres dump, the target {_shown(part.location)} "
            "is not Postgres (set DATABASE_URL / MLFLOW_STORE_URL to the kind that was backed up)"
        )
    clear = bool(_pg_state(part.location)[1])
    _restore_postgres(folder / entry["file"], part.location, clear, part.name)


def _check_restored(manifest: dict[str, Any], targets: dict[str, Part]) -> None:
    """Rows per table (databases) and files and bytes (folders) as the manifest says."""
    problems = []
    for entry in manifest["parts"]:
        if entry["kind"] == "same" or not entry.get("present"):
            continue
        part = targets[entry["name"]]
        if part.kind == "folder":
            found = _folder_summary(Path(part.location))
            expected = (entry["files"], entry["content_bytes"])
            if found != expected:
                problems.append(
                    f"part {part.name!r}: {found[0]} files / {found[1]} bytes, "
                    f"the manifest says {expected[0]} / {expected[1]}"
                )
            continue
        if _is_sqlite(part.location):
            counts = _sqlite_state(_sqlite_path(part.location))[1] or {}
        else:
            counts = _pg_state(part.location)[1]
        expected = entry["tables"]
        for table in sorted(set(expected) | set(counts)):
            if counts.get(table) != expected.get(table):
                problems.append(
                    f"part {part.name!r}: table {table} has {counts.get(table, 'no')} rows, "
                    f"the manifest says {expected.get(table, 'no table')}"
                )
    if problems:
        raise BackupError("restored, but it does not match the manifest: " + "; ".join(problems))


def default_output(env: dict[str, str] | None = None) -> Path:
    """Where `make backup` writes: BACKUP_DIR, default backups/."""
    return Path((os.environ if env is None else env).get("BACKUP_DIR", "").strip() or "backups")
