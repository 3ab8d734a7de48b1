"""Loading: both UCI layouts, the zip, the source order, download with checksum and cache."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from bankmarketing.data import DataError, loading
from bankmarketing.data.prepare import content_hash
from bankmarketing.data.schema import COLUMNS
from bankmarketing.data.validation import validate
from tests.data.conftest import to_bank_full_layout


def test_both_layouts_give_the_same_validated_rows(sample_lines, write_csv):
    csv_layout = loading.read_raw(write_csv("\n".join(sample_lines) + "\n", "data.csv"))
    full_layout = loading.read_raw(write_csv(to_bank_full_layout(sample_lines), "bank-full.csv"))
    assert list(csv_layout.columns) == list(COLUMNS)
    a, b = validate(csv_layout).clean, validate(full_layout).clean
    assert len(a) == len(sample_lines) - 1
    assert content_hash(a) == content_hash(b)
    assert "unknown" in set(a["poutcome"])  # empty fields become the 'unknown' category


def test_nested_uci_zip_is_read(sample_lines, tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as bank_zip:
        bank_zip.writestr("bank-full.csv", to_bank_full_layout(sample_lines))
        bank_zip.writestr("bank-names.txt", "names")
    outer = tmp_path / "bank+marketing.zip"
    with zipfile.ZipFile(outer, "w") as archive:
        archive.writestr("bank.zip", inner.getvalue())
    frame = loading.read_raw(outer)
    assert len(frame) == len(sample_lines) - 1


def test_zip_without_bank_full_is_an_error(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "x")
    with pytest.raises(DataError, match="does not contain bank-full.csv"):
        loading.read_raw(path)


def test_given_folder_is_searched_for_known_names(sample_lines, tmp_path):
    (tmp_path / "data.csv").write_text("\n".join(sample_lines))
    assert loading.locate(tmp_path, tmp_path / "cache", "http://unused") == tmp_path / "data.csv"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds none of the expected files"):
        loading.locate(empty, tmp_path / "cache", "http://unused")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="data file not found: .*nope.csv"):
        loading.locate(tmp_path / "nope.csv", tmp_path, "http://unused")


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server standing in for UCI; counts requests."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


def test_download_is_cached_and_reused(sample_lines, http_server, tmp_path):
    root, base, hits = http_server
    (root / "bank-sample.csv").write_text("\n".join(sample_lines))
    url = f"{base}/bank-sample.csv"
    first = loading.locate(None, tmp_path / "data", url)
    second = loading.locate(None, tmp_path / "data", url)
    assert first == second == tmp_path / "data/raw/bank-sample.csv"
    assert len(hits) == 1  # the second call used the verified cache


def test_corrupted_cache_is_downloaded_again(sample_lines, http_server, tmp_path):
    root, base, hits = http_server
    (root / "bank-sample.csv").write_text("\n".join(sample_lines))
    url = f"{base}/bank-sample.csv"
    path = loading.locate(None, tmp_path / "data", url)
    path.write_text("tampered")
    loading.locate(None, tmp_path / "data", url)
    assert len(hits) == 2
    assert path.read_text() == "\n".join(sample_lines)


def test_checksum_mismatch_of_a_known_file_is_refused(http_server, tmp_path):
    root, base, _ = http_server
    (root / "data.csv").write_text("not the UCI file")
    with pytest.raises(DataError, match="checksum mismatch"):
        loading.locate(None, tmp_path / "data", f"{base}/data.csv")
    assert not (tmp_path / "data/raw/data.csv").exists()


def test_known_checksum_matches_the_shared_copy(data_csv):
    assert hashlib.sha256(data_csv.read_bytes()).hexdigest() == loading.KNOWN_SHA256["data.csv"]


def test_unreachable_download_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="could not download .* Set BANK_DATA_PATH"):
        loading.locate(None, tmp_path / "data", "http://127.0.0.1:9/data.csv")


def test_no_download_allowed_and_no_cache(tmp_path):
    with pytest.raises(DataError, match="no cached copy"):
        loading.locate(None, tmp_path / "data", "http://unused", allow_download=False)


def test_given_path_takes_precedence_over_cache(sample_lines, tmp_path):
    given = tmp_path / "mine.csv"
    given.write_text("\n".join(sample_lines))
    assert loading.locate(given, Path("/nonexistent"), "http://unused") == given
