"""The missing-values metric counts the data set's own marker `unknown`, not only empty cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bankmarketing.data.loading import read_raw
from bankmarketing.data.schema import FEATURES, MISSING
from bankmarketing.monitoring.missing import main, missing_by_column, missing_values_share, period_table


def _customers(rows: int = 4) -> pd.DataFrame:
    frame = pd.DataFrame({column: ["known"] * rows for column in FEATURES})
    return frame.assign(age=[30] * rows, balance=[100.0] * rows)


def test_unknown_and_empty_cells_are_counted_per_column():
    frame = _customers()
    frame["job"] = [MISSING, "admin.", MISSING, "services"]
    frame["contact"] = [None, "", " ", "cellular"]
    frame["balance"] = [np.nan, 1.0, 2.0, 3.0]
    frame["education"] = ["unknownish", "Unknown?", "primary", "tertiary"]  # not the marker
    counted = {row["column_name"]: row for row in missing_by_column(frame)}
    assert list(counted) == list(FEATURES)
    assert counted["job"]["missing"] == 2 and counted["job"]["missing_share"] == 0.5
    assert counted["contact"]["missing"] == 3 and counted["balance"]["missing"] == 1
    assert counted["education"]["missing"] == 0
    assert sum(row["missing"] for row in counted.values()) == 6
    assert missing_values_share(frame) == pytest.approx(6 / (4 * len(FEATURES)))


def test_an_empty_period_has_no_missing_values():
    frame = _customers(0)
    assert missing_values_share(frame) == 0.0
    assert {row["missing_share"] for row in missing_by_column(frame)} == {0.0}


def test_the_real_data_has_unknown_in_four_inputs_and_no_empty_cell(data_csv):
    """The loader turns UCI's blank cells into `unknown`: a NaN count alone would be 0."""
    raw = read_raw(data_csv)
    assert raw[list(FEATURES)].isna().to_numpy().sum() == 0
    table = period_table({"all": raw})
    assert list(table.columns) == ["rows", "all inputs", "job", "education", "contact", "poutcome"]
    assert table.loc["all", "poutcome"] == pytest.approx((raw["poutcome"] == MISSING).mean())
    assert table.loc["all", "all inputs"] > 0.05


def test_the_command_names_a_missing_prepared_version(settings, monkeypatch, capsys):
    monkeypatch.setenv("BANK_DATA_DIR", str(settings.data_dir))
    assert main(["--prepared-id", "nothing-here"]) == 2
    assert "nothing-here" in capsys.readouterr().err
