"""Shared fixtures: the real data, settings on temporary folders, and real services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlflow.tracking._model_registry import utils as registry_globals
from mlflow.tracking._tracking_service import utils as tracking_globals

from bankmarketing.config import DATA_PATH_VARIABLE, Settings
from bankmarketing.data.prepare import PrepareOptions, prepare, read_split
from bankmarketing.database import migrate_database
from bankmarketing.deployment import DeployOptions, deploy
from bankmarketing.registry import client_for, use_tracking_server
from bankmarketing.services import MLFLOW_RUN_CONTEXT
from bankmarketing.serving.app import ServingConfig, create_app
from bankmarketing.training.train import TrainOptions, train
from tests.postgres import PG_BIN, Postgres, free_port  # noqa: F401  (the tests import them from here)

REPO = Path(__file__).resolve().parents[1]
#: Fixtures that start a real service (a server process or a database server): a test that
#: uses one must be marked `integration`, so `make test-fast` (-m "not integration") starts none.
SERVICE_FIXTURES = {
    *("mlflow_server", "postgres_url", "served", "monitored", "mage_project", "live_receiver", "stack")
}


def pytest_collection_modifyitems(config, items):
    unmarked = [
        item.nodeid
        for item in items
        if SERVICE_FIXTURES & set(item.fixturenames) and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests start a service but are not marked integration: " + ", ".join(unmarked)
        )


@pytest.fixture(scope="session")
def data_csv() -> Path:
    """The real 45,211-row file: BANK_DATA_PATH, else ../shared beside the repository."""
    given = os.environ.get(DATA_PATH_VARIABLE)
    path = Path(given) if given else REPO.parent / "shared/data/bank-marketing/bank-marketing.csv"
    if not path.is_file():
        pytest.fail(f"the data file {path} is missing: set {DATA_PATH_VARIABLE}")
    return path


def bench_module(name: str):
    """bench/NAME.py loaded as a module (bench/ is scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_bench", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings_for(
    root: Path, data_csv: Path, tracking_uri: str = "http://127.0.0.1:9", name: str | None = None
) -> Settings:
    """Settings writing under `root`, reading the real data; a unique model name by default."""
    name = name or f"test-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_path=data_csv,
        data_dir=root / "data",
        data_url="http://127.0.0.1:9/unreachable/data.csv",
        tracking_uri=tracking_uri,
        model_name=name,
        experiment=name,
        database_url=None,
        mlflow_dir=root / "mlruns",
    )
    migrated(settings.platform_database_url)
    return settings


def migrated(url: str) -> str:
    """`url` with the platform tables at the newest schema, as `bankmarketing migrate` (run by
    `make up` and compose) leaves it: the stages only check the schema."""
    migrate_database(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, data_csv: Path) -> Settings:
    """Settings writing into a fresh folder, reading the real data."""
    return settings_for(tmp_path, data_csv)


def _wait(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


class MlflowServer:
    """A real `bankmarketing mlflow-server` process on a free port."""

    def __init__(self, directory: Path, database_url: str | None = None, **extra_env: str):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MLFLOW_DIR": str(directory), **extra_env}
        for name in ("DATABASE_URL", *MLFLOW_RUN_CONTEXT):
            env.pop(name, None)
        if database_url:
            env["DATABASE_URL"] = database_url
        directory.mkdir(parents=True, exist_ok=True)
        self.log = open(directory / "server.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bankmarketing.cli", "mlflow-server", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait(f"{self.uri}/health", self.process)

    def stop(self) -> None:
        os.killpg(self.process.pid, 15)
        self.process.wait(30)
        self.log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url():
    """A database URL factory: TEST_DATABASE_URL's server if given, else a throwaway one."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield lambda name, migrate=True: migrated(given) if migrate else given
        return
    server = Postgres()

    def create(name: str, migrate: bool = True) -> str:
        """A new database; migrated unless `migrate` is False (the migrations' own tests)."""
        url = server.create_database(name)
        return migrated(url) if migrate else url

    yield create
    server.stop()


# --- a registered, promoted model and the predictor app around it -----------------------

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def served(tmp_path_factory, data_csv, mlflow_server):
    """A registry with an XGBoost and a logistic version, the better of them in production.

    Returns settings, {"production": version, "other": version}, the test split.
    """
    root = tmp_path_factory.mktemp("served")
    settings = settings_for(root, data_csv, mlflow_server.uri, f"served-{uuid.uuid4().hex[:6]}")
    manifest = prepare(settings, PrepareOptions())
    trained = train(
        settings,
        TrainOptions(
            candidates=["xgboost", "logistic_regression"],
            trials=1,
            timeout_s=10,
            cv_folds=2,
            importance_rows=300,
        ),
    )
    production = deploy(settings, DeployOptions())["production"]
    other = next(c["version"] for c in trained["candidates"] if c["version"] != production)
    versions = {"production": production, "other": other}
    return settings, versions, read_split(manifest, "test")


@pytest.fixture
def app_factory(served, tmp_path):
    settings = served[0]
    apps = []

    def make(**overrides):
        config = ServingConfig(
            cache_dir=tmp_path / "cache",
            admin_token=ADMIN_TOKEN,
            poll_s=3600,
            max_batch=100,
            max_body_bytes=256 * 1024,
        )
        app = create_app(replace(settings, **overrides.pop("settings", {})), replace(config, **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["bankmarketing"]["stop"].set()
        app.extensions["bankmarketing"]["predictions"].close()


@pytest.fixture
def client(app_factory):
    return app_factory().test_client()


def set_challenger(served) -> str:
    """The served registry's other version as its challenger (idempotent); its version."""
    settings, versions, _ = served
    client_for(settings.tracking_uri).set_registered_model_alias(
        settings.model_name, "challenger", versions["other"]
    )
    return versions["other"]


# --- a real `monitor` run through Mage into Postgres ------------------------------------

MAGE = REPO / ".venv/mage/bin/mage"
#: The season scenario: the test split (stable) and each later month (drifting).
MONITORED_PERIODS = ["test", "jun", "jul", "aug", "sep", "oct", "nov"]


def mage_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `mage run` working on `settings`' data, registry and database."""
    env = {
        **os.environ,
        "BANK_DATA_PATH": str(settings.data_path),
        "BANK_DATA_DIR": str(settings.data_dir),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "MODEL_NAME": settings.model_name,
        "MLFLOW_EXPERIMENT": settings.experiment,
        "MAGE_DATA_DIR": str(settings.data_dir.parent / "mage"),
        "COLUMNS": "400",  # Mage prints errors with rich, which wraps at the terminal width
        "DATABASE_URL": settings.database_url or "",
    }
    env.pop("MLFLOW_EXPERIMENT_ID", None)  # mlflow.set_experiment in this process exports it
    return env | extra


def mage_run(settings: Settings, pipeline: str, variables: dict | None = None, **env: str):
    """`mage run mlops <pipeline>` in Mage's own environment; the completed process."""
    if not MAGE.exists():
        pytest.fail(f"{MAGE} is missing: run `make setup`")
    command = [str(MAGE), "run", "mlops", pipeline]
    if variables:
        command += ["--runtime-vars", json.dumps(variables)]
    return subprocess.run(
        command, cwd=REPO, env=mage_env(settings, **env), capture_output=True, text=True, timeout=1800
    )


@pytest.fixture(scope="session")
def monitored(served, postgres_url):
    """Settings whose platform database (Postgres) holds a real `monitor` run of the season scenario,
    the registry's other version set as challenger (so the run compares it with production)."""
    settings = replace(served[0], database_url=postgres_url(f"monitoring_{uuid.uuid4().hex[:8]}"))
    set_challenger(served)
    result = mage_run(settings, "monitor", {"periods": MONITORED_PERIODS, "alert": False})
    if result.returncode != 0:
        pytest.fail("monitor failed: " + " ".join((result.stdout + result.stderr).split())[-4000:])
    return settings


# --- Mage's API trigger, as the alert receiver sees it ---------------------------------

FAKE_MAGE_TOKEN = "mage-trigger-token-0123456789abcdef"


class FakeMage:
    """A local HTTP server answering Mage's API trigger the way Mage does; records each call."""

    def __init__(self, token: str = FAKE_MAGE_TOKEN):
        self.token, self.mode, self.calls = token, "ok", []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    fake.calls.append(
                        {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
                    )
                    run_id = len(fake.calls)
                schedule = self.path.split("/")[3]
                if fake.mode == "empty":
                    answer = b""
                elif self.headers.get("Authorization") != f"Bearer {fake.token}":
                    error = {"code": 500, "exception": f"Invalid token for pipeline schedule ID {schedule}."}
                    answer = json.dumps({"error": error}).encode()
                else:
                    variables = json.loads(body)["pipeline_run"]["variables"]
                    run = {"id": run_id, "pipeline_uuid": "retrain", "pipeline_schedule_id": int(schedule)}
                    answer = json.dumps(
                        {"pipeline_run": {**run, "status": "initial", "variables": variables}}
                    )
                    answer = answer.encode()
                self.send_response(200)  # Mage answers 200 even when it refuses
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def variables(self, index: int = 0) -> dict:
        return json.loads(self.calls[index]["body"])["pipeline_run"]["variables"]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mage():
    server = FakeMage()
    yield server
    server.stop()


@contextmanager
def fluent_mlflow_on(uri: str):
    """MLflow's fluent API on `uri`; after, its globals and the variables it exports for
    child processes as they were (restoring `get_registry_uri()` would pin the registry)."""
    exported = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
    saved = {name: os.environ.get(name) for name in exported}
    tracking, registry = tracking_globals._tracking_uri, registry_globals._registry_uri
    use_tracking_server(uri)
    try:
        yield
    finally:
        tracking_globals._tracking_uri, registry_globals._registry_uri = tracking, registry
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
