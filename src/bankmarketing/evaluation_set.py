"""The rows deploy's gate judges on: labelled, and trained on by neither compared version.

The candidate's prepared data gives two parts: the months held out by time (`holdout`, the
newest labelled month when `retrain` prepared it) and the test split. Both are stripped of
every customer (`row_id`) that the candidate or the production version saw in training
(train and validation splits, as recorded in the registry). docs/deployment.md has the design.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from bankmarketing.config import Settings
from bankmarketing.data.identity import ROW_ID, with_row_ids
from bankmarketing.data.prepare import prepared_manifest, read_split
from bankmarketing.data.schema import TARGET
from bankmarketing.registry import IdentitiesUnknown, training_identities


@dataclass(frozen=True)
class EvaluationSet:
    rows: pd.DataFrame
    description: str  # which parts, how many rows of each survived, trained on by whom not

    @property
    def positives(self) -> int:
        return int((self.rows[TARGET] == "yes").sum())

    def shortfall(self, min_rows: int, min_positives: int) -> str | None:
        """Why the set is too small to decide on, or None."""
        if len(self.rows) >= min_rows and self.positives >= min_positives:
            return None
        return (
            f"the evaluation set ({self.description}) has {len(self.rows):,} rows and {self.positives:,} "
            f"subscribers; a decision needs at least {min_rows:,} rows and {min_positives:,} subscribers"
        )


def seen_in_training(settings: Settings, version: ModelVersion) -> set[str]:
    """The identities a version trained or was selected on: its registry record, or, for a version
    registered before records were kept, its prepared data (DataError when that is gone too)."""
    try:
        return training_identities(settings.tracking_uri, version)
    except IdentitiesUnknown:
        manifest = prepared_manifest(settings, version.tags["prepared_id"])
        parts = [with_row_ids(read_split(manifest, name)) for name in ("train", "validation")]
        return set(pd.concat(parts)[ROW_ID])


def evaluation_set(
    settings: Settings, candidate: ModelVersion, production: ModelVersion | None
) -> EvaluationSet:
    """The candidate's held-out months and test split, minus every customer either version saw."""
    manifest = prepared_manifest(settings, candidate.tags["prepared_id"])
    seen = seen_in_training(settings, candidate)
    if production is not None:
        seen |= seen_in_training(settings, production)
    held_out = ", ".join(manifest["options"].get("holdout_months", []))
    parts, described = [], []
    for name in ("holdout", "test"):
        if name not in manifest["splits"]:
            continue
        part = with_row_ids(read_split(manifest, name))
        kept = part[~part[ROW_ID].isin(seen)]
        parts.append(kept)
        label = f"held-out {held_out}" if name == "holdout" else "test split"
        described.append(f"{label} {len(kept):,} of {len(part):,} rows")
    untouched = (
        f"trained on by neither v{candidate.version} nor v{production.version}"
        if production is not None
        else f"not trained on by v{candidate.version}"
    )
    return EvaluationSet(pd.concat(parts, ignore_index=True), f"{' + '.join(described)}, {untouched}")
