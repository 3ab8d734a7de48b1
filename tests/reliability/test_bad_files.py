"""Item 6: bad input files given to `prepare` through Mage and the CLI.

Every bad file either stops `prepare` with an error naming the file and what was expected,
or (a truncated last line) is quarantined row by row. Nothing is registered in MLflow, and
a failed run leaves the current prepared data (current.json and its folder) byte for byte
as it was. The 1 GB file is refused from its size before a byte of it is read.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import subprocess
import sys
import time
import tracemalloc
import uuid
import zlib
from pathlib import Path

import pytest

from bankmarketing.data import DataError
from bankmarketing.data.prepare import CURRENT, PrepareOptions, prepare
from bankmarketing.registry import client_for
from tests.conftest import REPO, mage_env, mage_run, settings_for

pytestmark = pytest.mark.integration

GB = 1_000_000_000


def _rows(data_csv: Path, rows: int) -> list[bytes]:
    with open(data_csv, "rb") as handle:
        return [next(handle) for _ in range(rows + 1)]


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\0"))
        + chunk(b"IEND", b"")
    )


def _corrupt_middle(rows: list[bytes]) -> bytes:
    data = bytearray(b"".join(rows))
    middle = len(data) // 2
    data[middle : middle + 64] = random.Random(6).randbytes(64)
    return bytes(data)


def _extra_fields(rows: list[bytes]) -> bytes:
    return b"".join(rows[:100] + [rows[100].rstrip(b"\n") + b",x,y,z\n"] + rows[101:])


def _cut_mid_row(rows: list[bytes]) -> bytes:
    return b"".join(rows[:-1]) + rows[-1][: len(rows[-1]) // 2]


def _cut_mid_character(rows: list[bytes]) -> bytes:
    return b"".join(rows[:-1]) + rows[-1][:20] + "é".encode()[:1]


def _latin1(rows: list[bytes]) -> bytes:
    text = b"".join(rows).decode()
    return text.replace("married", "mariée").encode("latin-1")


#: name -> (file bytes from the first rows of the real data, what the error must say)
ERRORS = {
    "empty": (lambda rows: b"", "is empty (0 bytes): expected a UTF-8 CSV file"),
    "header only": (lambda rows: rows[0], "has a header but no data rows"),
    "whitespace only": (lambda rows: b"\n \n\n", "is empty: expected a header and data rows"),
    "tab delimiter": (lambda rows: b"".join(rows).replace(b",", b"\t"), "cannot find the delimiter"),
    "pipe delimiter": (lambda rows: b"".join(rows).replace(b",", b"|"), "expected ',' (UCI data.csv)"),
    "corrupt bytes mid-file": (_corrupt_middle, "is not UTF-8 text: line "),
    "corrupt line (extra fields)": (_extra_fields, "malformed CSV: Error tokenizing data"),
    "random bytes": (lambda rows: random.Random(1).randbytes(100_000), "expected a UTF-8 CSV file"),
    "png image": (lambda rows: _png(), "is a PNG image, not CSV text"),
    "gzip of the csv": (
        lambda rows: gzip.compress(b"".join(rows)),
        "is a gzip archive (decompress it first)",
    ),
    "utf-16 with bom": (
        lambda rows: b"".join(rows).decode().encode("utf-16"),
        "is UTF-16 little-endian text",
    ),
    "utf-16 without bom": (
        lambda rows: b"".join(rows).decode().encode("utf-16-le"),
        "looks like UTF-16 text",
    ),
    "latin-1 with accents": (_latin1, "which would be 'é' in Latin-1"),
}
#: name -> file bytes whose last line is quarantined while prepare succeeds
QUARANTINED = {"cut mid-row": _cut_mid_row, "cut mid-character": _cut_mid_character}


def _snapshot(data_dir: Path) -> dict[str, tuple[int, str]]:
    """Every file under data/prepared: mtime and sha256."""
    prepared = data_dir / "prepared"
    return {
        str(path.relative_to(prepared)): (
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(prepared.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, data_csv, mlflow_server):
    """Settings whose data/prepared holds a successful prepare of the real data."""
    root = tmp_path_factory.mktemp("bad-files")
    settings = settings_for(root, data_csv, mlflow_server.uri, f"bad-files-{uuid.uuid4().hex[:6]}")
    prepare(settings, PrepareOptions())
    assert (settings.data_dir / "prepared" / CURRENT).is_file()
    return settings


def _cli(settings, path: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bankmarketing.cli", "prepare", "--data-path", str(path), *extra]
    return subprocess.run(
        command, cwd=REPO, env=mage_env(settings), capture_output=True, text=True, timeout=300
    )


def _said(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def _nothing_registered(settings) -> None:
    client = client_for(settings.tracking_uri)
    assert client.search_model_versions(f"name='{settings.model_name}'") == []
    assert client.get_experiment_by_name(settings.experiment) is None


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_file_stops_prepare_naming_the_file_and_overwrites_nothing(prepared, data_csv, tmp_path, case):
    make, message = ERRORS[case]
    path = tmp_path / "customers.csv"
    path.write_bytes(make(_rows(data_csv, 300)))
    before = _snapshot(prepared.data_dir)

    with pytest.raises(DataError) as error:
        prepare(prepared, PrepareOptions(data_path=str(path)))
    assert str(path) in str(error.value) and message in str(error.value)

    through_mage = mage_run(prepared, "prepare", {"data_path": str(path)})
    assert through_mage.returncode != 0
    assert str(path) in _said(through_mage) and message in _said(through_mage), _said(through_mage)[-2000:]

    through_cli = _cli(prepared, path)
    assert through_cli.returncode != 0
    assert f"error: {path}" in _said(through_cli) and message in _said(through_cli), _said(through_cli)[
        -2000:
    ]

    assert _snapshot(prepared.data_dir) == before
    _nothing_registered(prepared)


@pytest.mark.parametrize("case", list(QUARANTINED))
def test_truncated_file_quarantines_its_last_line(settings, data_csv, tmp_path, case):
    rows = _rows(data_csv, 2000)
    path = tmp_path / "customers.csv"
    path.write_bytes(QUARANTINED[case](rows))
    result = _cli(settings, path)
    assert result.returncode == 0, _said(result)[-2000:]
    (quarantine,) = (settings.data_dir / "quarantine").glob("*.csv")
    text = quarantine.read_text()
    assert text.count("\n") == 2  # header and the one cut line
    assert text.startswith("line,") and f"\n{len(rows)}," in text and "truncated line" in text


def test_utf8_with_a_bom_is_read(settings, data_csv, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(_rows(data_csv, 2000)))
    assert prepare(settings, PrepareOptions(data_path=str(path)))["clean_rows"] == 2000


def _one_gigabyte_file(data_csv: Path, path: Path) -> None:
    """A valid header and rows, extended to 1 GB with a sparse tail (no disk, no time)."""
    path.write_bytes(b"".join(_rows(data_csv, 1000)))
    os.truncate(path, GB)


def _cli_measured(settings, path: Path) -> tuple[float, float, str]:
    """Wall time, peak RSS (MB) and output of a failing `bankmarketing prepare` process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bankmarketing.cli", "prepare", "--data-path", str(path)],
        cwd=REPO,
        env=mage_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode != 0
    return time.perf_counter() - started, usage.ru_maxrss / 1024, " ".join(output.split())


def test_one_gigabyte_file_is_refused_fast_with_bounded_memory(prepared, data_csv, tmp_path):
    path = tmp_path / "huge.csv"
    _one_gigabyte_file(data_csv, path)
    before = _snapshot(prepared.data_dir)
    message = "is 1.0 GB, over the 100.0 MB limit for an input file (option max_file_mb)"
    try:
        tracemalloc.start()
        started = time.perf_counter()
        with pytest.raises(DataError, match="max_file_mb") as error:
            prepare(prepared, PrepareOptions(data_path=str(path)))
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert str(path) in str(error.value) and message in str(error.value)
        assert seconds < 1 and peak < 5_000_000

        cli_seconds, cli_peak_mb, output = _cli_measured(prepared, path)
        assert message in output
        empty = tmp_path / "empty.csv"
        empty.write_bytes(b"")
        baseline_mb = _cli_measured(prepared, empty)[1]
        # the interpreter and its imports; the big file is never read
        assert cli_peak_mb < baseline_mb + 20

        started = time.perf_counter()
        through_mage = mage_run(prepared, "prepare", {"data_path": str(path)})
        mage_seconds = time.perf_counter() - started
        assert through_mage.returncode != 0 and message in _said(through_mage)
        print(
            f"\n1 GB refusal: prepare() {seconds * 1000:.1f} ms, peak Python allocations "
            f"{peak / 1000:.0f} kB; CLI process {cli_seconds:.2f} s, peak RSS {cli_peak_mb:.0f} MB "
            f"(refusing an empty file: {baseline_mb:.0f} MB); mage run {mage_seconds:.2f} s"
        )
        assert _snapshot(prepared.data_dir) == before
        _nothing_registered(prepared)
    finally:
        path.unlink(missing_ok=True)


def test_the_size_limit_is_an_option(settings, data_csv, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(b"".join(_rows(data_csv, 2000)))
    with pytest.raises(DataError, match=r"over the 100.0 kB limit .*raise max_file_mb"):
        prepare(settings, PrepareOptions(data_path=str(path), max_file_mb=0.1))
    assert PrepareOptions().max_file_mb == 100
