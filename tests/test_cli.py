"""The command line: exit codes and messages a user or a scheduler can act on."""

from __future__ import annotations

import json

from bankmarketing import cli


def test_prepare_then_report_manifest(settings, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("BANK_DATA_PATH", str(settings.data_path))
    monkeypatch.setenv("BANK_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["prepare", "--train-months", "dec,jan,feb,mar,apr,may"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["clean_rows"] == 45_211


def test_bad_option_exits_2_naming_it(capsys):
    assert cli.main(["prepare", "--max-bad-share", "plenty"]) == 2
    assert "max_bad_share: Input should be a valid number" in capsys.readouterr().err


def test_bad_data_exits_2_naming_the_file(monkeypatch, capsys, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    monkeypatch.setenv("BANK_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["prepare", "--data-path", str(empty)]) == 2
    assert "empty.csv is empty" in capsys.readouterr().err


def test_train_without_mlflow_exits_3_with_the_fix(monkeypatch, capsys, settings, tmp_path):
    monkeypatch.setenv("BANK_DATA_PATH", str(settings.data_path))
    monkeypatch.setenv("BANK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert cli.main(["prepare"]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--trials", "1"]) == 3
    assert "make mlflow" in capsys.readouterr().err


def test_mlflow_server_serves_artifacts_from_sqlite_by_default(settings):
    command = cli.mlflow_server_command(settings, "127.0.0.1", 5000)
    assert "--serve-artifacts" in command
    assert command[command.index("--backend-store-uri") + 1].startswith("sqlite:///")
