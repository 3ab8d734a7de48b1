"""The prepare stage: versions, splits, season scenario, synthetic data, failure safety."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from bankmarketing.data import DataError
from bankmarketing.data.identity import ROW_ID, row_ids
from bankmarketing.data.prepare import (
    PrepareOptions,
    current_manifest,
    load,
    prepare,
    read_split,
    split_and_write,
    validate_and_quarantine,
)
from bankmarketing.data.schema import FEATURES, LEAKY_COLUMNS
from bankmarketing.data.split import LATER_SEASONS, REFERENCE_MONTHS
from bankmarketing.options import OptionsError, parse_options
from tests.conftest import settings_for


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, data_csv):
    settings = settings_for(tmp_path_factory.mktemp("prepared"), data_csv)
    return settings, prepare(settings, PrepareOptions())


def test_full_data_is_versioned_by_content(prepared):
    settings, manifest = prepared
    assert manifest["rows"] == manifest["clean_rows"] == 45_211
    assert len(manifest["data_version"]) == 64
    assert current_manifest(settings)["data_version"] == manifest["data_version"]
    again = prepare(settings, PrepareOptions())
    assert again["data_version"] == manifest["data_version"]


def test_splits_are_disjoint_stratified_and_in_the_training_window(prepared):
    _, manifest = prepared
    parts = {name: read_split(manifest, name) for name in ("train", "validation", "test")}
    sizes = {name: len(part) for name, part in parts.items()}
    window = read_split(manifest, "reference")
    assert sum(sizes.values()) == len(window)
    assert sizes["validation"] == pytest.approx(0.15 * len(window), abs=2)
    rates = [(part["y"] == "yes").mean() for part in parts.values()]
    assert max(rates) - min(rates) < 0.005
    for part in parts.values():
        assert set(part["month"]) <= set(REFERENCE_MONTHS)
        assert part[ROW_ID].equals(row_ids(part))  # every row carries its identity


def test_no_customer_is_in_two_splits(prepared):
    _, manifest = prepared
    ids = {name: set(read_split(manifest, name)[ROW_ID]) for name in ("train", "validation", "test")}
    assert not ids["train"] & ids["validation"] and not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    # together they are the training window, each customer once
    assert ids["train"] | ids["validation"] | ids["test"] == set(read_split(manifest, "reference")[ROW_ID])
    assert not ids["validation"] & ids["test"]
    window = read_split(manifest, "reference")
    twins = window[window.duplicated(ROW_ID, keep=False)]  # identical features, another call
    assert len(twins) >= 2  # the data set has such customers; each pair shares one split
    assert sum(len(ids[name] & set(twins[ROW_ID])) for name in ids) == twins[ROW_ID].nunique()


def test_feedback_rows_are_new_customers_once_and_train_only(prepared, tmp_path):
    settings, manifest = prepared
    settings = replace(settings, data_dir=tmp_path / "data")  # the module's current data stays
    options = PrepareOptions()
    window = read_split(manifest, "reference")
    raw = load(settings, options)
    clean = validate_and_quarantine(settings, options, raw)
    known = window.sample(5, random_state=1)[list(FEATURES) + ["y"]]  # customers of the data set
    new = window.sample(2, random_state=2)[list(FEATURES) + ["y"]].assign(balance=[123_456_789, 987_654_321])
    feedback = pd.concat([known, new, new.assign(y="yes")], ignore_index=True)  # each new one twice
    written = split_and_write(settings, options, raw, clean, feedback)
    assert (written["feedback_rows"], written["feedback_duplicates_dropped"]) == (2, 7)
    parts = {name: read_split(written, name) for name in ("train", "validation", "test")}
    added = set(row_ids(new))
    assert set(parts["train"][ROW_ID]) >= added
    assert not added & (set(parts["validation"][ROW_ID]) | set(parts["test"][ROW_ID]))
    assert parts["train"][parts["train"][ROW_ID].isin(added)]["y"].eq("yes").all()  # the latest outcome
    counts = pd.concat(parts.values())[ROW_ID].value_counts()
    assert counts[list(set(row_ids(known)))].eq(1).all()  # the data set's rows, once
    assert sum(p["rows"] for p in written["splits"].values()) == len(window) + 2


def test_held_out_months_are_in_no_split(prepared, tmp_path):
    settings = replace(prepared[0], data_dir=tmp_path / "data")
    manifest = prepare(
        settings, PrepareOptions(train_months=[*REFERENCE_MONTHS, "jun"], holdout_months=["jul"])
    )
    held_out = read_split(manifest, "holdout")
    assert set(held_out["month"]) == {"jul"} and len(held_out) == manifest["season"]["jul"]["rows"]
    for name in ("train", "validation", "test"):
        assert "jul" not in set(read_split(manifest, name)["month"])
    with pytest.raises(ValueError, match=r"holdout_months \['jun'\] are also in train_months"):
        PrepareOptions(train_months=["dec", "jun"], holdout_months=["jun"])


def test_season_scenario_has_reference_and_each_later_month(prepared):
    _, manifest = prepared
    later = [m for months in LATER_SEASONS.values() for m in months]
    assert list(manifest["season"]) == ["reference", *later]
    assert sum(entry["rows"] for entry in manifest["season"].values()) == 45_211
    for month in later:
        assert set(read_split(manifest, month)["month"]) == {month}


def test_outputs_are_parquet_with_types(prepared):
    _, manifest = prepared
    train = read_split(manifest, "train")
    assert str(train["balance"].dtype) == "int64"
    for entry in [*manifest["splits"].values(), *manifest["season"].values()]:
        written = Path(manifest["path"]) / entry["file"]
        assert written.suffix == ".parquet" and written.read_bytes()[:4] == b"PAR1"


def test_duration_is_never_a_feature():
    assert "duration" in LEAKY_COLUMNS
    assert "duration" not in FEATURES
    assert "y" not in FEATURES


def test_a_failed_prepare_keeps_the_current_data(prepared, tmp_path):
    settings, manifest = prepared
    broken = tmp_path / "broken.csv"
    broken.write_text("age,job\n")
    with pytest.raises(DataError):
        prepare(replace(settings, data_path=broken), PrepareOptions())
    assert current_manifest(settings)["prepared_id"] == manifest["prepared_id"]


def test_too_many_bad_rows_writes_quarantine_and_keeps_current(prepared, tmp_path, data_csv):
    settings, manifest = prepared
    lines = data_csv.read_text().splitlines()[:300]
    bad = [lines[0]] + [line.replace("management", "astronaut") for line in lines[1:]]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match="failed validation"):
        prepare(replace(settings, data_path=path), PrepareOptions(max_bad_share=0.01))
    quarantine = list((settings.data_dir / "quarantine").glob("quarantine-*.csv"))
    assert quarantine, "the bad rows are kept for inspection"
    rows = pd.read_csv(quarantine[0])
    assert rows["reason"].str.contains("job: 'astronaut' fails isin").all()
    assert current_manifest(settings)["prepared_id"] == manifest["prepared_id"]


def test_synthetic_only_on_request_and_labelled(settings):
    manifest = prepare(settings, PrepareOptions(synthetic=True, synthetic_rows=2000))
    assert manifest["synthetic"] is True
    assert manifest["data_version"].startswith("synthetic-")
    assert manifest["source"].startswith("synthetic(")
    assert (
        json.loads((settings.data_dir / "prepared" / manifest["prepared_id"] / "manifest.json").read_text())[
            "synthetic"
        ]
        is True
    )


def test_too_few_subscribers_in_the_window_is_refused(settings):
    with pytest.raises(DataError, match="too few to train on"):
        prepare(settings, PrepareOptions(synthetic=True, synthetic_rows=100, train_months=["jan"]))


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"max_bad_share": "lots"}, "max_bad_share: Input should be a valid number"),
        ({"max_bad_share": 2}, "max_bad_share: Input should be less than or equal to 1"),
        ({"train_months": "dec,smarch"}, "unknown month(s) ['smarch']"),
        ({"sead": 3}, "sead: Extra inputs are not permitted"),
    ],
)
def test_bad_variables_are_named(variables, message):
    with pytest.raises(OptionsError) as error:
        parse_options(PrepareOptions, variables)
    assert message in str(error.value)


def test_mage_kwargs_and_comma_lists_are_accepted():
    options = parse_options(
        PrepareOptions,
        {
            "train_months": "dec, jan",
            "pipeline_uuid": "prepare",
            "execution_date": "x",
            "seed": "7",
        },
    )
    assert options.train_months == ["dec", "jan"] and options.seed == 7
