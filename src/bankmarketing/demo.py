"""`make demo`: the Mage pipelines in order on the local stack, one line per stage.

Each stage runs as `mage run mlops <pipeline>`. What Mage, MLflow and the libraries print goes
to a log file named at the end; the terminal shows each stage, its time and its key figure, read
from where the stage stored it (the prepared manifest, the registry, the platform tables). A
failed stage stops the demo, says so and shows the end of the log.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bankmarketing.config import Settings

#: (what the terminal calls it, Mage pipeline, its runtime variables)
STAGES: list[tuple[str, str, dict]] = [
    ("prepare", "prepare", {}),
    ("train", "train", {}),
    ("deploy", "deploy", {}),
    ("test on test", "test", {"split": "test"}),
    ("test on validation", "test", {"split": "validation"}),
    ("test on train", "test", {"split": "train"}),
    ("monitor", "monitor", {"alert": False}),
]
#: Lines of the log shown when a stage fails.
TAIL_LINES = 25


def latest_candidates(settings: Settings) -> tuple[str | None, list, str | None]:
    """The newest training run, its registered versions best first (as deploy ranks them:
    cross-validated PR-AUC) and the version behind `production`."""
    from bankmarketing.registry import client_for

    client = client_for(settings.tracking_uri)
    versions = client.search_model_versions(f"name='{settings.model_name}'")
    if not versions:
        return None, [], None
    run = max(versions, key=lambda v: v.creation_timestamp).tags.get("training_run_id")
    ranked = sorted(
        (v for v in versions if v.tags.get("training_run_id") == run),
        key=lambda v: -float(v.tags.get("val_cv_pr_auc", v.tags.get("val_pr_auc", 0))),
    )
    production = client.get_registered_model(settings.model_name).aliases.get("production")
    return run, ranked, production


def _figure(version, tag: str) -> str:
    return f"{float(version.tags[tag]):.4f}" if tag in version.tags else "   -  "


def prepared_figure(settings: Settings) -> str:
    from bankmarketing.data.prepare import current_manifest

    manifest = current_manifest(settings)
    splits = " / ".join(f"{name} {part['rows']:,}" for name, part in manifest["splits"].items())
    later = [name for name in manifest["season"] if name != "reference"]
    return (
        f"{manifest['rows']:,} rows ({manifest['quarantined_rows']} quarantined): {splits}; "
        f"later months {', '.join(later)}"
    )


def trained_figure(settings: Settings) -> str:
    _, ranked, _ = latest_candidates(settings)
    if not ranked:
        return "no candidate registered"
    best = ranked[0]
    return (
        f"{len(ranked)} candidates registered; best {best.tags.get('candidate', '?')} "
        f"(v{best.version}) CV PR-AUC {_figure(best, 'val_cv_pr_auc')}"
    )


def deployed_figure(settings: Settings) -> str:
    _, ranked, production = latest_candidates(settings)
    kinds = {v.version: v.tags.get("candidate", "?") for v in ranked}
    if production is None:
        return "no version in production: the gate refused every candidate (see the log)"
    return f"production: v{production} ({kinds.get(production, 'an earlier run')})"


def latest_evaluation(settings: Settings, split: str, version: str | None = None):
    """The newest `model_evaluation` row of the model on `split` (of `version` if given), or None."""
    import sqlalchemy as sa

    from bankmarketing.database import engine_for, model_evaluation

    where = (model_evaluation.c.model_name == settings.model_name) & (model_evaluation.c.split == split)
    if version is not None:
        where &= model_evaluation.c.model_version == int(version)
    query = sa.select(model_evaluation).where(where).order_by(model_evaluation.c.id.desc()).limit(1)
    with engine_for(settings.platform_database_url).connect() as connection:
        return connection.execute(query).mappings().first()


def _evaluated_figure(settings: Settings, split: str) -> str:
    row = latest_evaluation(settings, split)
    if row is None:
        return "no evaluation stored"
    figures = f"ROC-AUC {row['roc_auc']:.3f}, PR-AUC {row['pr_auc']:.3f}"
    return f"v{row['model_version']}: {figures} on {row['rows']:,} rows"


def stored_drift(settings: Settings, version: str | None, source: str | None = None) -> list:
    """The version's `monitoring_drift` rows in period order (of `source` if given)."""
    import sqlalchemy as sa

    from bankmarketing.database import engine_for, monitoring_drift

    where = (monitoring_drift.c.model_name == settings.model_name) & (
        monitoring_drift.c.model_version == int(version or 0)
    )
    if source is not None:
        where &= monitoring_drift.c.source == source
    query = sa.select(monitoring_drift).where(where).order_by(monitoring_drift.c.period_start)
    with engine_for(settings.platform_database_url).connect() as connection:
        return connection.execute(query).mappings().all()


def monitored_figure(settings: Settings) -> str:
    _, _, production = latest_candidates(settings)
    rows = stored_drift(settings, production)
    drifted = [row["period"] for row in rows if row["prediction_drift_detected"]]
    return f"{len(rows)} periods stored; prediction drift in {', '.join(drifted) or 'none'}"


FIGURES: dict[str, Callable[[Settings, dict], str]] = {
    "prepare": lambda settings, _: prepared_figure(settings),
    "train": lambda settings, _: trained_figure(settings),
    "deploy": lambda settings, _: deployed_figure(settings),
    "test": lambda settings, variables: _evaluated_figure(settings, variables["split"]),
    "monitor": lambda settings, _: monitored_figure(settings),
}


def summary(settings: Settings) -> str:
    """Where to look after `make demo`: the UIs, the training run and its candidates."""
    run, ranked, production = latest_candidates(settings)
    if not ranked:
        return f"no versions of {settings.model_name!r} at {settings.tracking_uri} yet: run `make demo`"
    base = settings.tracking_uri.rstrip("/")
    return "\n".join(
        [
            f"MLflow UI        {base}  (registered model: {base}/#/models/{settings.model_name})",
            f"training run     {run}",
            "candidates, as deploy ranks them (PR-AUC cross-validated on the training split;"
            " validation beside):",
            *(
                f"  version {v.version:>3}  {v.tags.get('candidate', '?'):<24} "
                f"CV PR-AUC {_figure(v, 'val_cv_pr_auc')} +- {_figure(v, 'val_cv_pr_auc_std')}  "
                f"validation PR-AUC {_figure(v, 'val_pr_auc')}  ROC-AUC {_figure(v, 'val_roc_auc')}"
                + ("  <- production" if v.version == production else "")
                for v in ranked
            ),
            "next             make monitor (drift per period), make down (stop the stack)",
        ]
    )


def run_demo(settings: Settings, mage: str, log_path: Path, train_variables: dict | None = None) -> int:
    """Run the stages; print a line per stage; 0, or the failed stage's exit code."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    started = time.monotonic()
    for label, pipeline, variables in STAGES:
        variables = {**variables, **(train_variables or {})} if pipeline == "train" else variables
        command = [mage, "run", "mlops", pipeline]
        command += ["--runtime-vars", json.dumps(variables)] if variables else []
        at = time.monotonic()
        with open(log_path, "a") as log:
            log.write(f"\n===== {label}: {' '.join(command)}\n")
            log.flush()
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
        seconds = time.monotonic() - at
        if code != 0:
            tail = "\n".join(_last_lines(log_path))
            print(f"FAILED {label:<19} {seconds:5.0f} s  exit {code}; end of {log_path}:", file=sys.stderr)
            print(tail, file=sys.stderr)
            return code
        try:
            figure = FIGURES[pipeline](settings, variables)
        except Exception as exc:  # the stage succeeded; its figure could not be read back
            figure = f"(figure unavailable: {type(exc).__name__}: {exc})"
        print(f"ok     {label:<19} {seconds:5.0f} s  {figure}", flush=True)
    print(f"all stages in {time.monotonic() - started:.0f} s; their full output: {log_path}")
    print(summary(settings))
    return 0


def _last_lines(log_path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The log's last non-empty lines, progress bars' carriage returns as line ends."""
    text = log_path.read_text(errors="replace").replace("\r", "\n")
    return [line for line in text.splitlines() if line.strip()][-lines:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mage", required=True, help="the Mage environment's `mage` command")
    parser.add_argument("--log", type=Path, required=True, help="file for everything the stages print")
    parser.add_argument("--train-vars", type=json.loads, default=None, help="train's variables (JSON)")
    args = parser.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore")  # the figures' imports (MLflow) must not clutter the lines
    return run_demo(Settings.from_env(), args.mage, args.log, args.train_vars)


if __name__ == "__main__":
    sys.exit(main())
