"""Bad input files stop `prepare` with their specific error, and nothing gets registered."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _lines(data_csv: Path, rows: int = 300) -> list[str]:
    return data_csv.read_text().splitlines()[: rows + 1]


CASES = {
    "missing file": (None, "data file not found"),
    "wrong delimiter": (
        lambda lines: "\n".join(line.replace(",", "\t") for line in lines),
        "cannot find the delimiter",
    ),
    "missing column": (
        lambda lines: "\n".join(",".join(line.split(",")[:-2] + line.split(",")[-1:]) for line in lines),
        "missing column(s) poutcome",
    ),
    "wrong type": (
        lambda lines: "\n".join([lines[0]] + ["x" + line for line in lines[1:]]),
        "age fails coerce_dtype('int64')",
    ),
    "unknown category": (
        lambda lines: "\n".join(
            [lines[0]]
            + [
                line.replace(",management,", ",pilot,").replace(",technician,", ",pilot,")
                for line in lines[1:]
            ]
        ),
        "job fails isin",
    ),
    "out of range": (
        lambda lines: "\n".join([lines[0]] + ["200" + line[line.index(",") :] for line in lines[1:]]),
        "age fails in_range(18, 100)",
    ),
    "empty file": (lambda lines: "", "is empty"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_stops_prepare_and_train_registers_nothing(mage_project, data_csv, tmp_path, case):
    make, message = CASES[case]
    path = tmp_path / "input.csv"
    if make is not None:
        path.write_text(make(_lines(data_csv)))
    prepared = mage_project.run("prepare", BANK_DATA_PATH=str(path))
    output = mage_project.output(prepared)
    assert prepared.returncode != 0, output[-2000:]
    assert message in output, output[-3000:]
    assert not (mage_project.data_dir / "prepared" / "current.json").exists()
    trained = mage_project.run("train", '{"trials": 1}')
    assert trained.returncode != 0
    assert "no prepared data" in mage_project.output(trained)
    assert mage_project.versions() == []


def test_truncated_last_line_is_quarantined_and_prepare_succeeds(mage_project, data_csv, tmp_path):
    lines = _lines(data_csv, 2000)
    path = tmp_path / "input.csv"
    path.write_text("\n".join([*lines[:-1], lines[-1][:15]]))
    prepared = mage_project.run("prepare", BANK_DATA_PATH=str(path))
    assert prepared.returncode == 0, prepared.stdout[-2000:]
    quarantine = list((mage_project.data_dir / "quarantine").glob("*.csv"))
    assert len(quarantine) == 1
    text = quarantine[0].read_text()
    assert f"{len(lines)}," in text and "truncated line" in text
