"""`bankmarketing <stage>`: one command, a sub-command per stage; a thin adapter."""

from __future__ import annotations

import argparse
import configparser
import json
import logging
import os
import sys
from pathlib import Path

from pydantic import BaseModel

from bankmarketing.config import Settings, check_credential
from bankmarketing.data import DataError
from bankmarketing.database import SchemaOutOfDate
from bankmarketing.options import OptionsError, parse_options


def _add_option_flags(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """One --flag per option field; lists are comma-separated."""
    for name, field in model.model_fields.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=None,
            help=f"{field.description or ''} "
            + ("(required)" if field.is_required() else f"(default: {field.default!r})"),
        )


def mlflow_auth_config(settings: Settings, env: dict[str, str]) -> Path | None:
    """With MLFLOW_TRACKING_PASSWORD set (compose), the config of MLflow's basic-auth app: its
    admin is MLFLOW_TRACKING_USERNAME, the account the pipelines and the predictor use; users
    and permissions live in MLFLOW_AUTH_DATABASE_URL (default: basic_auth.db beside the store).
    MLflow reads the admin password once, when it creates the admin in that database."""
    password = env.get("MLFLOW_TRACKING_PASSWORD", "").strip()
    if not password:
        return None
    check_credential("MLFLOW_TRACKING_PASSWORD", password)
    secret_key = env.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or None  # signs its CSRF tokens
    check_credential("MLFLOW_FLASK_SERVER_SECRET_KEY", secret_key, required=True)
    folder = settings.mlflow_dir.resolve()
    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {
        "default_permission": "READ",
        "database_uri": env.get("MLFLOW_AUTH_DATABASE_URL") or f"sqlite:///{folder}/basic_auth.db",
        "admin_username": env.get("MLFLOW_TRACKING_USERNAME") or "admin",
        "admin_password": password,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    path = folder / "basic_auth.ini"
    path.touch(mode=0o600)
    with open(path, "w") as file:
        config.write(file)
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    # Its tables, created here once: each of MLflow's workers would otherwise migrate a new
    # database at the same time, and one that loses the race stops the server.
    SqlAlchemyStore().init_db(config["mlflow"]["database_uri"])
    return path


def mlflow_server_command(settings: Settings, host: str, port: int) -> list[str]:
    """The tracking server: SQLite by default or DATABASE_URL, artifacts served by it; behind
    MLflow's basic-auth app when MLFLOW_AUTH_CONFIG_PATH is set (see `mlflow_auth_config`)."""
    backend = settings.database_url or f"sqlite:///{settings.mlflow_dir.resolve()}/mlflow.db"
    auth = ["--app-name", "basic-auth"] if os.environ.get("MLFLOW_AUTH_CONFIG_PATH") else []
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend,
        "--serve-artifacts",
        "--artifacts-destination",
        str((settings.mlflow_dir / "artifacts").resolve()),
        "--host",
        host,
        "--port",
        str(port),
        *auth,
    ]


def _stages():
    from bankmarketing.batch import BatchOptions, CampaignOptions, campaign, score_file
    from bankmarketing.data.prepare import PrepareOptions, prepare
    from bankmarketing.deployment import (
        ApproveOptions,
        ChallengerOptions,
        DeployOptions,
        RollbackOptions,
        approve,
        deploy,
        manage_challenger,
        rollback,
    )
    from bankmarketing.fairness import FairnessOptions, fairness_report
    from bankmarketing.holdout import TestOptions, evaluate_split
    from bankmarketing.monitoring.monitor import MonitorOptions, monitor_and_alert
    from bankmarketing.predictions.outcomes import OutcomesOptions, load_outcomes
    from bankmarketing.retrain import RetrainOptions, retrain
    from bankmarketing.serving.build_context import PredictorBuildOptions, build_predictor
    from bankmarketing.training.train import TrainOptions, train

    return {
        "prepare": (PrepareOptions, prepare),
        "train": (TrainOptions, train),
        "deploy": (DeployOptions, deploy),
        "rollback": (RollbackOptions, rollback),
        "approve": (ApproveOptions, approve),
        "challenger": (ChallengerOptions, manage_challenger),
        "build-predictor": (PredictorBuildOptions, build_predictor),
        "test": (TestOptions, evaluate_split),
        "fairness": (FairnessOptions, fairness_report),
        "score": (BatchOptions, score_file),
        "campaign": (CampaignOptions, campaign),
        "monitor": (MonitorOptions, monitor_and_alert),
        "outcomes": (OutcomesOptions, load_outcomes),
        "retrain": (RetrainOptions, retrain),
    }


def _backup_or_restore(settings: Settings, command: str, args: dict) -> int:
    from bankmarketing import backup

    locations = backup.Locations.from_settings(settings)
    try:
        if command == "backup":
            output = Path(args["output"]) if args["output"] else backup.default_output()
            result = backup.backup(locations, output, compress=args["compress"])
        else:
            result = backup.restore(locations, Path(args["archive"]), force=args["force"])
    except backup.BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


def migrate_platform_database(settings: Settings) -> int:
    """Upgrade the platform database to the newest schema and say what changed."""
    import sqlalchemy as sa

    from bankmarketing.database import migrate_database

    where = sa.make_url(settings.platform_database_url).render_as_string(hide_password=True)
    try:
        before, after = migrate_database(settings.platform_database_url)
    except Exception as exc:  # unreachable server, refused credentials, a failed migration
        print(f"error: the platform database {where} was not migrated: {exc}", file=sys.stderr)
        return 3
    change = "up to date" if before == after else f"upgraded from {before or 'an empty database'}"
    print(f"platform database {where}: schema revision {after} ({change})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bankmarketing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    stages = _stages()
    for name, (options_model, run) in stages.items():
        _add_option_flags(commands.add_parser(name, help=run.__doc__.splitlines()[0]), options_model)
    server = commands.add_parser("mlflow-server", help="run the MLflow tracking server")
    server.add_argument("--host", default=os.environ.get("MLFLOW_HOST", "127.0.0.1"))
    server.add_argument("--port", type=int, default=int(os.environ.get("MLFLOW_PORT", "5000")))
    backup = commands.add_parser(
        "backup", help="back up the platform database, MLflow's store and artifacts, the prediction log"
    )
    backup.add_argument("--output", default=None, help="folder of backups (default: BACKUP_DIR or backups)")
    backup.add_argument("--compress", action="store_true", help="one .tar.gz instead of a folder")
    restore = commands.add_parser("restore", help="restore a backup (stop the stack first: make down)")
    restore.add_argument("archive", help="a backup folder (with manifest.json) or its .tar.gz")
    restore.add_argument("--force", action="store_true", help="replace existing data")
    commands.add_parser("migrate", help="upgrade the platform database to the newest schema")
    args = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # `migrate` says what it did in one line
    settings = Settings.from_env()
    command = args.pop("command")
    if command == "mlflow-server":
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
        auth = mlflow_auth_config(settings, dict(os.environ))
        if auth:
            os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(auth)
        argv = mlflow_server_command(settings, args["host"], args["port"])
        os.execvp(argv[0], argv)
    if command == "migrate":
        return migrate_platform_database(settings)
    if command in ("backup", "restore"):
        return _backup_or_restore(settings, command, args)
    options_model, run = stages[command]
    try:
        result = run(settings, parse_options(options_model, args))
    except (DataError, OptionsError, SchemaOutOfDate) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
