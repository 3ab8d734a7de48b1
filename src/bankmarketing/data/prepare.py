"""The `prepare` stage: load, validate, quarantine, version, split and write Parquet."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd
from pydantic import Field, field_validator

from bankmarketing.config import Settings
from bankmarketing.data import DataError, loading, synthetic
from bankmarketing.data.schema import MONTHS
from bankmarketing.data.split import REFERENCE_MONTHS, season_scenario, split_train_validation_test
from bankmarketing.data.validation import check_bad_share, validate
from bankmarketing.options import StageOptions

log = logging.getLogger(__name__)
CURRENT = "current.json"


class PrepareOptions(StageOptions):
    """Parameters of `prepare` (Mage variables / CLI flags of the same names)."""

    data_path: str | None = Field(None, description="file or folder; default BANK_DATA_PATH")
    max_bad_share: float = Field(0.05, ge=0, le=1, description="stop above this share of bad rows")
    validation_share: float = Field(0.15, gt=0, lt=0.5)
    test_share: float = Field(0.15, gt=0, lt=0.5)
    train_months: list[str] = Field(list(REFERENCE_MONTHS), min_length=1)
    extra_data: list[str] = Field([], description="labelled periods added to the window")
    seed: int = 42
    synthetic: bool = Field(False, description="generate synthetic data instead of loading")
    synthetic_rows: int = Field(5_000, ge=100)
    allow_download: bool = True

    @field_validator("train_months")
    @classmethod
    def _known_months(cls, months: list[str]) -> list[str]:
        unknown = sorted(set(months) - set(MONTHS))
        if unknown:
            raise ValueError(f"unknown month(s) {unknown}; expected some of {list(MONTHS)}")
        return months


def content_hash(frame: pd.DataFrame) -> str:
    """A data version: the sha256 of the validated rows, independent of file layout."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def _load(settings: Settings, options: PrepareOptions) -> tuple[pd.DataFrame, str]:
    if options.synthetic:
        frame = synthetic.generate(options.synthetic_rows, options.seed).astype(str)
        frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")
        return frame, f"{synthetic.SYNTHETIC_TAG}(rows={options.synthetic_rows}, seed={options.seed})"
    given = Path(options.data_path) if options.data_path else settings.data_path
    path = loading.locate(given, settings.data_dir, settings.data_url, options.allow_download)
    frames = [loading.read_raw(path)] + [loading.read_raw(Path(p)) for p in options.extra_data]
    return pd.concat(frames) if len(frames) > 1 else frames[0], str(path)


def _write_atomically(target: Path, write) -> None:
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write(staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def prepare(settings: Settings, options: PrepareOptions) -> dict:
    """Run the stage and return its manifest; on any error nothing current is replaced."""
    raw, source = _load(settings, options)
    result = validate(raw)
    quarantine_path = None
    if len(result.quarantine):
        quarantine_dir = settings.data_dir / "quarantine"
        quarantine_dir.mkdir(parents=True, exist_ok=True)
        raw_hash = content_hash(raw.fillna(""))[:12]
        quarantine_path = quarantine_dir / f"quarantine-{raw_hash}.csv"
        result.quarantine.to_csv(quarantine_path, index=False)
        log.warning("%d rows quarantined in %s", len(result.quarantine), quarantine_path)
    check_bad_share(result, options.max_bad_share)

    clean = result.clean.reset_index(drop=True)
    version = content_hash(clean)
    if options.synthetic:
        version = f"{synthetic.SYNTHETIC_TAG}-{version}"
    window = clean[clean["month"].isin(options.train_months)]
    if window["y"].nunique() < 2 or (window["y"] == "yes").sum() < 10:
        raise DataError(
            f"train_months {options.train_months} hold {len(window)} rows with "
            f"{(window['y'] == 'yes').sum()} subscribers: too few to train on"
        )
    splits = split_train_validation_test(
        window, options.validation_share, options.test_share, options.seed
    )
    seasons = season_scenario(clean)
    settings_hash = hashlib.sha256(options.model_dump_json().encode()).hexdigest()[:8]
    prepared_id = f"{version[:16]}-{settings_hash}"
    target = settings.data_dir / "prepared" / prepared_id
    manifest = {
        "data_version": version,
        "prepared_id": prepared_id,
        "synthetic": options.synthetic,
        "source": source,
        "rows": len(raw),
        "clean_rows": len(clean),
        "quarantined_rows": len(result.quarantine),
        "quarantine_file": str(quarantine_path) if quarantine_path else None,
        "positive_share": round(float((clean["y"] == "yes").mean()), 6),
        "options": options.model_dump(),
        "splits": {name: {"file": f"{name}.parquet", "rows": len(part)} for name, part in splits.items()},
        "season": {name: {"file": f"season/{name}.parquet", "rows": len(part)} for name, part in seasons.items()},
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
    manifest["path"] = str(target)
    return manifest


def current_manifest(settings: Settings) -> dict:
    """The manifest of the last successful `prepare`; a clear error when there is none."""
    pointer = settings.data_dir / "prepared" / CURRENT
    if not pointer.is_file():
        raise DataError(f"no prepared data in {pointer.parent}: run the prepare pipeline first")
    folder = pointer.parent / json.loads(pointer.read_text())["prepared_id"]
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["path"] = str(folder)
    return manifest


def read_split(manifest: dict, name: str) -> pd.DataFrame:
    """One split or season period of a prepared data version."""
    entry = manifest["splits"].get(name) or manifest["season"].get(name)
    if entry is None:
        raise DataError(f"prepared data has no part named {name!r}")
    return pd.read_parquet(Path(manifest["path"]) / entry["file"])
