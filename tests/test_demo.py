"""`make demo`'s runner: a line per stage with the figure the stage stored; a failed stage stops
it loudly with the end of the log."""

from __future__ import annotations

import re

import pytest

from bankmarketing import demo
from bankmarketing.holdout import TestOptions, evaluate_split
from tests.conftest import MAGE

pytestmark = pytest.mark.integration


def test_each_stage_line_reads_its_figure_from_where_the_stage_stored_it(served, monitored):
    settings, versions, test = served
    prepared = demo.prepared_figure(settings)
    assert re.fullmatch(
        r"45,211 rows \(0 quarantined\): train [\d,]+ / validation [\d,]+ / test ([\d,]+); "
        r"later months jun, jul, aug, sep, oct, nov",
        prepared,
    ), prepared
    assert prepared.rsplit("test ", 1)[1].startswith(f"{len(test):,};")
    trained = demo.trained_figure(settings)
    assert re.fullmatch(
        r"2 candidates registered; best (xgboost|logistic_regression) \(v\d+\) CV PR-AUC 0\.\d{4}", trained
    )
    assert demo.deployed_figure(settings).startswith(f"production: v{versions['production']} (")
    result = evaluate_split(settings, TestOptions(split="test"))
    roc, pr = result["metrics"]["roc_auc"], result["metrics"]["pr_auc"]
    assert demo.FIGURES["test"](settings, {"split": "test"}) == (
        f"v{versions['production']}: ROC-AUC {roc:.3f}, PR-AUC {pr:.3f} on {len(test):,} rows"
    )
    monitored_line = demo.monitored_figure(monitored)
    assert re.fullmatch(r"7 periods stored; prediction drift in (none|[a-z]+(, [a-z]+)*)", monitored_line)


def test_a_failed_stage_stops_the_demo_and_shows_the_end_of_its_log(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "STAGES", [("prepare", "no_such_pipeline", {}), ("train", "train", {})])
    log = tmp_path / "demo.log"
    assert demo.run_demo(settings, str(MAGE), log) == 1
    out, err = capsys.readouterr()
    assert out == ""  # nothing after the failed stage ran or was reported
    assert err.startswith("FAILED prepare") and f"exit 1; end of {log}:" in err
    assert "Pipeline no_such_pipeline does not exist" in err.replace("\n", " ")
    assert "===== train" not in log.read_text()
