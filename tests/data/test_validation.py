"""Each bad input gets its specific error or its row quarantined with the reason."""

from __future__ import annotations

import pytest

from bankmarketing.data import DataError, loading
from bankmarketing.data.validation import check_bad_share, validate
from tests.data.conftest import replace_field


def _validate(write_csv, lines: list[str]):
    return validate(loading.read_raw(write_csv("\n".join(lines) + "\n")))


def test_clean_sample_passes_with_types(sample_lines, write_csv):
    result = _validate(write_csv, sample_lines)
    assert result.quarantine.empty
    assert str(result.clean["age"].dtype) == "int64"
    assert len(result.clean) == len(sample_lines) - 1


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("age", "forty", "coerce_dtype('int64')"),
        ("age", "150", "in_range(18, 100)"),
        ("campaign", "0", "in_range(1, 100)"),
        ("job", "astronaut", "isin("),
        ("month", "jun-ish", "isin("),
        ("y", "maybe", "isin(("),
    ],
)
def test_bad_value_quarantines_that_row_with_line_column_and_rule(
    sample_lines, write_csv, column, value, rule
):
    result = _validate(write_csv, replace_field(sample_lines, 5, column, value))
    assert len(result.quarantine) == 1
    bad = result.quarantine.iloc[0]
    assert bad["line"] == 6  # header is line 1, data row 5 is line 6
    assert bad["reason"].startswith(f"{column}: ")
    assert value in bad["reason"] and rule in bad["reason"]
    assert len(result.clean) == len(sample_lines) - 2


def test_inconsistent_pdays_and_previous_is_quarantined(sample_lines, write_csv):
    lines = replace_field(replace_field(sample_lines, 3, "pdays", "-1"), 3, "previous", "4")
    result = _validate(write_csv, lines)
    assert "pdays=-1 implies previous=0" in result.quarantine.iloc[0]["reason"]


def test_truncated_last_line_is_quarantined(sample_lines, write_csv):
    lines = [*sample_lines[:-1], sample_lines[-1][:20]]
    result = _validate(write_csv, lines)
    assert result.quarantine["line"].tolist() == [len(sample_lines)]
    assert "truncated line" in result.quarantine.iloc[0]["reason"]


def test_too_many_bad_rows_stops_naming_rule_and_first_row(sample_lines, write_csv):
    lines = [sample_lines[0]] + [
        replace_field(sample_lines, i, "age", "old")[i] if i % 2 else sample_lines[i]
        for i in range(1, len(sample_lines))
    ]
    result = _validate(write_csv, lines)
    with pytest.raises(DataError) as error:
        check_bad_share(result, limit=0.05)
    message = str(error.value)
    assert "50.0% of rows failed validation (limit 5.0%)" in message
    assert "age fails coerce_dtype('int64')" in message
    assert "First bad row: line 2" in message
    check_bad_share(result, limit=0.6)  # a looser limit accepts the same data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("   \n\n", "is empty"),
        (b"\x00\x01\x02binary\x00", "binary data"),
        ("age\tjob\tmarital\n30\tadmin.\tsingle\n", "cannot find the delimiter"),
        (b"age,job\n\xff\xfe30,admin.\n", "not UTF-8"),
    ],
)
def test_unusable_files_stop_with_a_specific_error(write_csv, content, message):
    with pytest.raises(DataError, match=message):
        loading.read_raw(write_csv(content))


def test_header_only_file(sample_lines, write_csv):
    with pytest.raises(DataError, match="header but no data rows"):
        loading.read_raw(write_csv(sample_lines[0] + "\n"))


def test_missing_column_is_named(sample_lines, write_csv):
    header = sample_lines[0].split(",")
    drop = header.index("poutcome")
    lines = [",".join(f for i, f in enumerate(line.split(",")) if i != drop) for line in sample_lines]
    with pytest.raises(DataError, match=r"missing column\(s\) poutcome"):
        loading.read_raw(write_csv("\n".join(lines)))


def test_wrong_delimiter_with_a_plausible_header(sample_lines, write_csv):
    lines = [line.replace(",", "|") for line in sample_lines]
    with pytest.raises(DataError, match="cannot find the delimiter"):
        loading.read_raw(write_csv("\n".join(lines)))


def test_line_with_too_many_fields_is_named(sample_lines, write_csv):
    lines = [*sample_lines[:10], sample_lines[10] + ",extra", *sample_lines[11:]]
    with pytest.raises(DataError, match="malformed CSV.*line 11"):
        loading.read_raw(write_csv("\n".join(lines)))
