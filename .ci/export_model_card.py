"""Export the model card of the version behind a registry alias (default `production`).

    .venv/app/bin/python .ci/export_model_card.py --output-dir build/release

`deploy` logs the card as `model_card.md` in the promoted version's MLflow run and sets it as
the version's description (src/bankmarketing/deployment.py `promote_best`). This reads the run
artifact (falling back to the description), writes `model_card.md` and `model_version.json`
(name, version, run, aliases, test metrics, data version) into `--output-dir`, and prints
what it wrote. Needs MLFLOW_TRACKING_URI (and MODEL_NAME) as every other command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from bankmarketing.config import Settings

CARD = "model_card.md"
FACT_TAGS = {"candidate", "data_version", "prepared_id", "threshold", "git_commit"}


def export(settings: Settings, alias: str, output_dir: Path) -> dict:
    client = MlflowClient(settings.tracking_uri)
    try:
        version = client.get_model_version_by_alias(settings.model_name, alias)
    except MlflowException as exc:
        raise SystemExit(
            f"no version of {settings.model_name!r} has the alias {alias!r} at {settings.tracking_uri}: {exc}"
        ) from None
    card, source = None, f"runs:/{version.run_id}/{CARD}"
    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = download_artifacts(
                run_id=version.run_id,
                artifact_path=CARD,
                dst_path=scratch,
                tracking_uri=settings.tracking_uri,
            )
            card = Path(path).read_text()
        except (MlflowException, OSError):
            card = None
    if not card:
        card, source = version.description or "", "the version's description"
    if not card.strip():
        raise SystemExit(
            f"{settings.model_name} v{version.version} (@{alias}) has no model card: "
            "only versions promoted by `deploy` carry one"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / CARD).write_text(card if card.endswith("\n") else card + "\n")
    facts = {
        "model_name": settings.model_name,
        "version": str(version.version),
        "alias": alias,
        "aliases": sorted(getattr(version, "aliases", []) or []),
        "run_id": version.run_id,
        "card_source": source,
        "tags": {
            k: v
            for k, v in sorted(version.tags.items())
            if k.startswith("test_")
            or k in {"candidate", "data_version", "prepared_id", "threshold", "git_commit"}
        },
    }
    (output_dir / "model_version.json").write_text(json.dumps(facts, indent=2) + "\n")
    return facts | {"files": [str(output_dir / CARD), str(output_dir / "model_version.json")]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default="production")
    parser.add_argument("--output-dir", type=Path, default=Path("build/release"))
    args = parser.parse_args(argv)
    print(json.dumps(export(Settings.from_env(), args.alias, args.output_dir), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
