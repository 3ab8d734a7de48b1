"""bench/figures.py (`make figures`): README's rows that `make demo` measures, from what it stored."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import bench_module

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def figures():
    return bench_module("figures")


def test_readme_holds_each_marker_on_exactly_one_table_row(figures):
    text = (REPO / "README.md").read_text()
    for name in ("candidates", "drift"):
        rows = [line for line in text.splitlines() if figures._marker(name) in line]
        assert len(rows) == 1 and rows[0].startswith("| ") and rows[0].endswith(" |"), name


def test_rewrite_replaces_only_the_marked_row_and_refuses_a_missing_or_doubled_marker(figures):
    text = f"# t\n| a | old {figures._marker('drift')} |\n| b | kept |\n"
    assert figures.rewrite(text, {"drift": "| a | new |"}) == "# t\n| a | new |\n| b | kept |\n"
    with pytest.raises(SystemExit, match="figures:candidates"):
        figures.rewrite(text, {"candidates": "| x |"})
    with pytest.raises(SystemExit, match="exactly one row"):
        figures.rewrite(text + text, {"drift": "| a | new |"})


@pytest.mark.integration
def test_the_rows_come_from_the_registry_and_the_monitored_periods(figures, served, monitored):
    settings, versions, _ = served
    candidates = figures.candidates_row(settings)
    assert re.search(r"\*\*(XGBoost|logistic regression)\*\* v\d+: CV PR-AUC 0\.\d{4} ± 0\.\d{4}", candidates)
    assert "In production: " in candidates and f" v{versions['production']}; on the test split" in candidates
    assert candidates.endswith(f"{figures._marker('candidates')} |")
    drift = figures.drift_row(monitored)
    periods = re.findall(r"(\w+) (\d\.\d{3}) \((\d+)\)", drift)
    assert [p for p, _, _ in periods] == ["test", "jun", "jul", "aug", "sep", "oct", "nov"]
    fired = drift.split("fires on ")[1].split(" |")[0]
    expected = [p for p, score, _ in periods if float(score) > 0.1]
    assert fired == (", ".join(expected) or "no period")
