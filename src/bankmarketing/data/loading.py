"""Find the data (local path, cache, UCI download) and read it into a canonical frame."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from bankmarketing.data import DataError
from bankmarketing.data.schema import CATEGORIES, COLUMNS, MISSING

log = logging.getLogger(__name__)

#: File names looked for, in order, inside a folder given as the data path.
KNOWN_FILE_NAMES = ("bank-marketing.csv", "data.csv", "bank-full.csv", "bank+marketing.zip")
#: Checksums of the files UCI publishes, where the project knows them.
KNOWN_SHA256 = {
    "data.csv": "3439616095640d56d22d8fe900135a3c68187f32b28f7a59a08922ea7baac252",
}
FIELD_LIMIT = len(COLUMNS)
#: Default size limit of an input file in MB (PrepareOptions.max_file_mb); UCI's are ~5 MB.
MAX_FILE_MB = 100.0
#: How much of a file is looked at before reading it whole.
SNIFF_BYTES = 4096
#: Leading bytes of formats that get given by mistake instead of the CSV.
MAGIC = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\x1f\x8b": "a gzip archive (decompress it first)",
    b"PK\x03\x04": "a zip archive (name it .zip, like UCI's bank+marketing.zip, or extract the CSV)",
    b"%PDF": "a PDF document",
    b"BZh": "a bzip2 archive (decompress it first)",
    b"\xfd7zXZ\x00": "an xz archive (decompress it first)",
    b"PAR1": "a Parquet file",
    b"\xd0\xcf\x11\xe0": "an Office (OLE) document, e.g. an old Excel file",
    b"\x7fELF": "an executable",
}
UTF16_BOMS = {b"\xff\xfe": "UTF-16 little-endian", b"\xfe\xff": "UTF-16 big-endian"}
EXPECTED = "expected a UTF-8 CSV file (UCI's data.csv or bank-full.csv)"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(data_path: Path | None, data_dir: Path, url: str, allow_download: bool = True) -> Path:
    """The file to load: the given path, else the verified cache, else a fresh download."""
    if data_path is not None:
        return _from_given_path(data_path)
    cached = _cached(data_dir, url)
    if cached is not None:
        return cached
    if not allow_download:
        raise DataError(f"no data: BANK_DATA_PATH is unset and there is no cached copy under {data_dir}/raw")
    return download(url, data_dir)


def _from_given_path(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for name in KNOWN_FILE_NAMES:
            if (path / name).is_file():
                return path / name
        raise DataError(f"folder {path} holds none of the expected files: {', '.join(KNOWN_FILE_NAMES)}")
    raise DataError(f"data file not found: {path} (from BANK_DATA_PATH or the data_path variable)")


def _cache_record(data_dir: Path) -> Path:
    return data_dir / "raw" / "download.json"


def _cached(data_dir: Path, url: str) -> Path | None:
    record_path = _cache_record(data_dir)
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    path = data_dir / "raw" / record["file"]
    if record.get("url") != url or not path.is_file():
        return None
    if sha256_of(path) != record["sha256"]:
        log.warning("cached %s does not match its recorded checksum; downloading again", path)
        return None
    return path


def download(url: str, data_dir: Path, timeout: float = 60.0) -> Path:
    """Download the UCI file into data_dir/raw, check its checksum and record it for the cache."""
    raw_dir = data_dir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    name = url.rstrip("/").rsplit("/", 1)[-1] or "data.csv"
    target = raw_dir / name
    partial = target.with_suffix(target.suffix + ".part")
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url}: {exc}. Set BANK_DATA_PATH to a local copy of the data."
        ) from exc
    checksum = sha256_of(partial)
    expected = KNOWN_SHA256.get(name)
    if expected and checksum != expected:
        partial.unlink()
        raise DataError(f"checksum mismatch for {url}: got {checksum}, expected {expected}")
    partial.replace(target)
    _cache_record(data_dir).write_text(json.dumps({"url": url, "file": name, "sha256": checksum}))
    return target


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def check_file(path: Path, max_bytes: int | None = None) -> None:
    """Refuse, before reading it whole, a file that is empty, too big, binary or UTF-16.

    Looks only at the size and the first SNIFF_BYTES bytes, so the refusal of a huge file
    costs neither time nor memory.
    """
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes): {EXPECTED} with a header and data rows")
    if max_bytes is not None and size > max_bytes:
        raise DataError(
            f"{path} is {_size(size)}, over the {_size(max_bytes)} limit for an input file "
            f"(option max_file_mb): {EXPECTED}, about 5 MB; raise max_file_mb if the file is right"
        )
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    for magic, kind in MAGIC.items():
        if head.startswith(magic) and not (path.suffix == ".zip" and magic == b"PK\x03\x04"):
            raise DataError(f"{path} is {kind}, not CSV text: {EXPECTED}")
    if path.suffix == ".zip":
        return
    for bom, encoding in UTF16_BOMS.items():
        if head.startswith(bom):
            raise DataError(f"{path} is {encoding} text: {EXPECTED}; save it as UTF-8")
    if b"\x00" in head:
        odd, even = head[1::2], head[0::2]
        if odd.count(0) > len(odd) * 0.4 or even.count(0) > len(even) * 0.4:
            raise DataError(
                f"{path} looks like UTF-16 text (every other byte is NUL): {EXPECTED}; save it as UTF-8"
            )
        raise DataError(f"{path} contains binary data (NUL byte at byte {head.index(0)}): {EXPECTED}")


def decode(data: bytes, source: str) -> str:
    """UTF-8 text (a BOM is dropped); a character cut off at the very end is dropped too.

    A file cut in the middle of a multi-byte character is a truncated file: its last line
    then goes to quarantine like any truncated line. Any other invalid byte stops, naming
    the line and the byte.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.end == len(data):
            log.warning(
                "%s ends inside a UTF-8 character (truncated file?); the partial character is dropped", source
            )
            return data[: exc.start].decode("utf-8-sig")
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1]
        raise DataError(
            f"{source} is not UTF-8 text: line {line} (byte {exc.start}) holds {byte!r}, "
            f"which would be {byte.decode('latin-1')!r} in Latin-1: {EXPECTED}; "
            "a Latin-1 or Windows-1252 file must be saved as UTF-8"
        ) from exc


def read_raw(path: Path, max_bytes: int | None = None) -> pd.DataFrame:
    """Read either published layout into strings, one row per data line, index = file line.

    `max_bytes` bounds the file (or the CSV inside a zip) before anything is read.
    """
    check_file(path, max_bytes)
    if path.suffix == ".zip":
        text = _bank_full_from_zip(path, max_bytes)
    else:
        text = decode(path.read_bytes(), str(path))
    return parse_csv_text(text, str(path))


def _bank_full_from_zip(path: Path, max_bytes: int | None = None) -> str:
    """UCI's zip nests bank.zip, which holds bank-full.csv."""

    def search(archive: zipfile.ZipFile) -> str | None:
        for member in archive.namelist():
            size = archive.getinfo(member).file_size
            if max_bytes is not None and size > max_bytes:
                raise DataError(
                    f"{path}: {member} unpacks to {_size(size)}, over the {_size(max_bytes)} limit "
                    "for an input file (option max_file_mb)"
                )
            if member.endswith("bank-full.csv"):
                return decode(archive.read(member), f"{path}:{member}")
            if member.endswith(".zip"):
                found = search(zipfile.ZipFile(io.BytesIO(archive.read(member))))
                if found is not None:
                    return found
        return None

    try:
        found = search(zipfile.ZipFile(path))
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path} is not a valid zip archive") from exc
    if found is None:
        raise DataError(f"{path} does not contain bank-full.csv")
    return found


def _record_lines_and_widths(text: str, separator: str) -> tuple[list[int], np.ndarray]:
    """The file line of each data record and how many fields it has."""
    reader = csv.reader(io.StringIO(text), delimiter=separator, skipinitialspace=True)
    next(reader)
    lines, widths = [], []
    for record in reader:
        if record:
            lines.append(reader.line_num)
            widths.append(len(record))
    return lines, np.array(widths)


def parse_csv_text(text: str, source: str) -> pd.DataFrame:
    """Parse CSV text of either layout; too-short lines are kept with NaN for the validator."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{source} contains binary data (a NUL byte on line {line}): {EXPECTED}")
    lines = text.splitlines()
    if not lines or not text.strip():
        raise DataError(f"{source} is empty: expected a header and data rows")
    header = lines[0]
    separator = ";" if header.count(";") > header.count(",") else ","
    if header.count(separator) == 0:
        raise DataError(
            f"{source}: cannot find the delimiter in the header {header[:80]!r}: "
            "expected ',' (UCI data.csv) or ';' (UCI bank-full.csv)"
        )
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
        )
    except pd.errors.ParserError as exc:
        raise DataError(f"{source}: malformed CSV: {exc}") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    frame = frame.rename(columns={"day": "day_of_week"})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; the header has {', '.join(frame.columns)}"
        )
    if frame.empty:
        raise DataError(f"{source} has a header but no data rows")
    lines, widths = _record_lines_and_widths(text, separator)
    width = len(frame.columns)
    if len(lines) == len(frame):
        frame.index = pd.Index(lines, name="line")
        for position in np.flatnonzero(widths < width):  # pandas pads short lines with ""
            frame.iloc[position, widths[position] :] = np.nan
    else:
        frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")
    frame = frame[list(COLUMNS)]
    for column in frame.columns:
        frame[column] = frame[column].str.strip()
    for column in CATEGORIES:
        frame[column] = frame[column].mask(frame[column] == "", MISSING)
    return frame
