"""The `prepare` stage: load, validate, quarantine, version, split and write Parquet."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pydantic import Field, field_validator, model_validator

from bankmarketing.config import Settings
from bankmarketing.data import DataError, loading, synthetic
from bankmarketing.data.identity import ROW_ID, with_row_ids
from bankmarketing.data.schema import FEATURES, MONTHS, TARGET, build_schema
from bankmarketing.data.split import REFERENCE_MONTHS, season_scenario, split_train_validation_test
from bankmarketing.data.validation import check_bad_share, validate
from bankmarketing.options import StageOptions, only_known
from bankmarketing.predictions.outcomes import labelled_predictions

log = logging.getLogger(__name__)
CURRENT = "current.json"


class PrepareOptions(StageOptions):
    """Parameters of `prepare` (Mage variables / CLI flags of the same names)."""

    data_path: str | None = Field(None, description="file or folder; default BANK_DATA_PATH")
    max_bad_share: float = Field(0.05, ge=0, le=1, description="stop above this share of bad rows")
    max_file_mb: float = Field(
        loading.MAX_FILE_MB, gt=0, description="refuse a larger input file (MB) before reading it"
    )
    validation_share: float = Field(0.15, gt=0, lt=0.5)
    test_share: float = Field(0.15, gt=0, lt=0.5)
    train_months: list[str] = Field(list(REFERENCE_MONTHS), min_length=1)
    holdout_months: list[str] = Field(
        [],
        description="months held out by time for deploy's gate: in no split, trained on by no "
        "model of this data (retrain holds out the newest labelled month)",
    )
    extra_data: list[str] = Field([], description="labelled periods added to the window")
    seed: int = 42
    synthetic: bool = Field(False, description="generate synthetic data instead of loading")
    synthetic_rows: int = Field(5_000, ge=100)
    allow_download: bool = True
    feedback: bool = Field(
        False,
        description="add logged predictions whose call outcomes are known (prediction_log joined to "
        "prediction_outcome) to the training window",
    )

    @field_validator("train_months", "holdout_months")
    @classmethod
    def _known_months(cls, months: list[str]) -> list[str]:
        return only_known(months, MONTHS, "month")

    @model_validator(mode="after")
    def _held_out_months_are_not_trained_on(self) -> PrepareOptions:
        both = [m for m in self.holdout_months if m in self.train_months]
        if both:
            raise ValueError(f"holdout_months {both} are also in train_months: a month is one or the other")
        return self


def content_hash(frame: pd.DataFrame) -> str:
    """A data version: the sha256 of the validated rows, independent of file layout."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def _source(settings: Settings, options: PrepareOptions, allow_download: bool) -> list[Path]:
    given = Path(options.data_path) if options.data_path else settings.data_path
    path = loading.locate(given, settings.data_dir, settings.data_url, allow_download)
    return [path, *map(Path, options.extra_data)]


def describe_source(settings: Settings, options: PrepareOptions) -> str:
    """Where `load` takes the rows from (a file, or the synthetic generator)."""
    if options.synthetic:
        return f"{synthetic.SYNTHETIC_TAG}(rows={options.synthetic_rows}, seed={options.seed})"
    return ", ".join(map(str, _source(settings, options, allow_download=False)))


def load(settings: Settings, options: PrepareOptions) -> pd.DataFrame:
    """The raw rows as strings, with the file `line` each came from."""
    if options.synthetic:
        frame = synthetic.generate(options.synthetic_rows, options.seed).astype(str)
        frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")
    else:
        paths = _source(settings, options, options.allow_download)
        limit = int(options.max_file_mb * 1_000_000)
        frame = pd.concat([loading.read_raw(path, limit) for path in paths])
    return frame.reset_index()


def quarantine_path(settings: Settings, raw: pd.DataFrame) -> Path:
    """One quarantine file per distinct raw input."""
    return settings.data_dir / "quarantine" / f"quarantine-{content_hash(raw.fillna(''))[:12]}.csv"


def validate_and_quarantine(settings: Settings, options: PrepareOptions, raw: pd.DataFrame) -> pd.DataFrame:
    """Typed clean rows; bad rows are written to data/quarantine with their reasons.

    Raises DataError when more than `max_bad_share` of the rows are bad.
    """
    result = validate(raw.set_index("line"))
    if len(result.quarantine):
        path = quarantine_path(settings, raw)
        path.parent.mkdir(parents=True, exist_ok=True)
        result.quarantine.to_csv(path, index=False)
        log.warning("%d rows quarantined in %s", len(result.quarantine), path)
    check_bad_share(result, options.max_bad_share)
    return result.clean.reset_index(drop=True)


def _write_atomically(target: Path, write) -> None:
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write(staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def feedback_rows(settings: Settings) -> pd.DataFrame:
    """Logged predictions with known outcomes as data rows (no `duration`: never a feature)."""
    rows = labelled_predictions(settings)
    try:
        return build_schema((*FEATURES, TARGET)).validate(rows, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise DataError(f"logged predictions with outcomes fail the data contract: {exc}") from None


def fresh_feedback(clean: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Feedback rows (with `row_id`) that are new customers: not rows of the data set, and each
    customer once (the latest logged)."""
    new = feedback[~feedback[ROW_ID].isin(clean[ROW_ID])]
    return new.drop_duplicates(ROW_ID, keep="last")


def split_and_write(
    settings: Settings,
    options: PrepareOptions,
    raw: pd.DataFrame,
    clean: pd.DataFrame,
    feedback: pd.DataFrame | None = None,
) -> dict:
    """Version, split and write Parquet; make it current only once fully written.

    Every row carries its identity (`row_id`); the splits are disjoint by identity. `feedback`
    rows (logged predictions with outcomes) of customers the data set does not hold join the
    training split only (or the held-out months they belong to), each customer once.
    """
    feedback = feedback if feedback is not None else clean.iloc[:0]
    version = content_hash(pd.concat([clean, feedback], ignore_index=True) if len(feedback) else clean)
    if options.synthetic:
        version = f"{synthetic.SYNTHETIC_TAG}-{version}"
    clean = with_row_ids(clean)
    fresh = fresh_feedback(clean, with_row_ids(feedback))
    window = clean[clean["month"].isin(options.train_months)]
    added = fresh[fresh["month"].isin(options.train_months)]
    subscribers = (window["y"] == "yes").sum() + (added["y"] == "yes").sum()
    if subscribers < 10 or len(window) + len(added) - subscribers < 10:
        raise DataError(
            f"train_months {options.train_months} hold {len(window) + len(added)} rows with "
            f"{subscribers} subscribers: too few to train on"
        )
    splits = split_train_validation_test(window, options.validation_share, options.test_share, options.seed)
    splits["train"] = pd.concat([splits["train"], added], ignore_index=True)
    if options.holdout_months:
        splits["holdout"] = pd.concat(
            [part[part["month"].isin(options.holdout_months)] for part in (clean, fresh)], ignore_index=True
        )
    seasons = season_scenario(clean)
    options_hash = hashlib.sha256(options.model_dump_json().encode()).hexdigest()[:8]
    prepared_id = f"{version[:16]}-{options_hash}"
    target = settings.data_dir / "prepared" / prepared_id
    quarantined = len(raw) - len(clean)
    manifest = {
        "source": describe_source(settings, options),
        "rows": len(raw),
        "quarantined_rows": quarantined,
        "quarantine_file": str(quarantine_path(settings, raw)) if quarantined else None,
        "data_version": version,
        "prepared_id": prepared_id,
        "synthetic": options.synthetic,
        "clean_rows": len(clean),
        "feedback_rows": len(added),
        "feedback_rows_held_out": int(fresh["month"].isin(options.holdout_months).sum()),
        "feedback_duplicates_dropped": len(feedback) - len(fresh),
        "positive_share": round(float((clean["y"] == "yes").mean()), 6),
        "options": options.model_dump(),
        "splits": {n: {"file": f"{n}.parquet", "rows": len(p)} for n, p in splits.items()},
        "season": {n: {"file": f"season/{n}.parquet", "rows": len(p)} for n, p in seasons.items()},
    }

    def write(folder: Path) -> None:
        (folder / "season").mkdir()
        for name, part in splits.items():
            part.reset_index(drop=True).to_parquet(folder / f"{name}.parquet", index=False)
        for name, part in seasons.items():
            part.reset_index(drop=True).to_parquet(folder / "season" / f"{name}.parquet", index=False)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))

    _write_atomically(target, write)
    pointer = settings.data_dir / "prepared" / CURRENT
    pointer.with_suffix(".tmp").write_text(json.dumps({"prepared_id": prepared_id}))
    pointer.with_suffix(".tmp").replace(pointer)
    return manifest | {"path": str(target)}


def prepare(settings: Settings, options: PrepareOptions) -> dict:
    """Load, validate, quarantine, version, split and write; return the manifest.

    On any error the current prepared data stays as it was.
    """
    raw = load(settings, options)
    clean = validate_and_quarantine(settings, options, raw)
    feedback = feedback_rows(settings) if options.feedback else None
    return split_and_write(settings, options, raw, clean, feedback)


def current_manifest(settings: Settings) -> dict:
    """The manifest of the last successful `prepare`; a clear error when there is none."""
    pointer = settings.data_dir / "prepared" / CURRENT
    if not pointer.is_file():
        raise DataError(f"no prepared data in {pointer.parent}: run the prepare pipeline first")
    return prepared_manifest(settings, json.loads(pointer.read_text())["prepared_id"])


def prepared_manifest(settings: Settings, prepared_id: str) -> dict:
    """The manifest of one prepared data version (as tagged on every model version)."""
    folder = settings.data_dir / "prepared" / prepared_id
    if not (folder / "manifest.json").is_file():
        raise DataError(f"prepared data {prepared_id} is not in {folder.parent}: run prepare again")
    return json.loads((folder / "manifest.json").read_text()) | {"path": str(folder)}


def read_prepared_split(settings: Settings, prepared_id: str, name: str) -> pd.DataFrame:
    """One split of the prepared data version a model was trained on."""
    return read_split(prepared_manifest(settings, prepared_id), name)


def read_split(manifest: dict, name: str) -> pd.DataFrame:
    """One split or season period of a prepared data version."""
    entry = manifest["splits"].get(name) or manifest["season"].get(name)
    if entry is None:
        raise DataError(f"prepared data has no part named {name!r}")
    return pd.read_parquet(Path(manifest["path"]) / entry["file"])


def xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Model inputs (raw features, `duration` excluded) and the 0/1 target."""
    return frame[list(FEATURES)], (frame[TARGET] == "yes").to_numpy(dtype=int)
