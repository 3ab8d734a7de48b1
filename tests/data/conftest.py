"""Small real samples of the data in both published layouts, and ways to break them."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE_ROWS = 400


@pytest.fixture(scope="session")
def sample_lines(data_csv: Path) -> list[str]:
    """Header + the first rows of the real file (UCI data.csv layout)."""
    with open(data_csv, encoding="utf-8") as handle:
        return [next(handle).rstrip("\n") for _ in range(SAMPLE_ROWS + 1)]


def to_bank_full_layout(lines: list[str]) -> str:
    """The same rows as UCI's bank-full.csv: ';', quoted strings, `day`, 'unknown'."""
    header = lines[0].replace("day_of_week", "day").split(",")
    out = [";".join(f'"{h}"' for h in header)]
    for line in lines[1:]:
        fields = []
        for value in line.split(","):
            if value == "":
                value = "unknown"
            fields.append(value if value.lstrip("-").isdigit() else f'"{value}"')
        out.append(";".join(fields))
    return "\n".join(out) + "\n"


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write text (or bytes) to a file in tmp_path and return its path."""

    def write(content: str | bytes, name: str = "customers.csv") -> Path:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    return write


def replace_field(lines: list[str], row: int, column: str, value: str) -> list[str]:
    """A copy of `lines` with one field of data row `row` (1-based) replaced."""
    header = lines[0].split(",")
    fields = lines[row].split(",")
    fields[header.index(column)] = value
    return [*lines[:row], ",".join(fields), *lines[row + 1 :]]
