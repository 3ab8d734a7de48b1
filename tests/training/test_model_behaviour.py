"""Behaviour of a trained model: invariance, direction, and beating the baseline."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from bankmarketing.data.prepare import PrepareOptions, prepare, read_split
from bankmarketing.training.candidates import CANDIDATES, REFERENCE_XGBOOST_PARAMS
from bankmarketing.training.train import TrainOptions, fit_calibrated, xy
from tests.conftest import settings_for


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_csv):
    settings = settings_for(tmp_path_factory.mktemp("trained"), data_csv)
    manifest = prepare(settings, PrepareOptions())
    X, y = xy(read_split(manifest, "train"))
    model = fit_calibrated(CANDIDATES["xgboost"], REFERENCE_XGBOOST_PARAMS, TrainOptions(), X, y)
    return model, read_split(manifest, "test")


def test_beats_the_majority_baseline_on_pr_auc_by_a_wide_margin(trained):
    model, test = trained
    X, y = xy(test)
    pr_auc = average_precision_score(y, model.predict_proba(X)[:, 1])
    assert pr_auc > 2.5 * y.mean(), (pr_auc, y.mean())  # majority baseline PR-AUC = base rate


def test_irrelevant_fields_do_not_change_the_score(trained):
    model, test = trained
    X = test.head(500)
    base = model.predict_proba(X)[:, 1]
    noisy = X.assign(
        request_id=[f"req-{i}" for i in range(len(X))],
        duration=np.random.default_rng(0).integers(0, 3000, len(X)),  # known only after the call
        y="yes",
    )
    np.testing.assert_array_equal(model.predict_proba(noisy)[:, 1], base)


def test_column_order_does_not_matter(trained):
    model, test = trained
    X, _ = xy(test.head(200))
    shuffled = X[list(reversed(X.columns))]
    np.testing.assert_array_equal(model.predict_proba(shuffled)[:, 1], model.predict_proba(X)[:, 1])


def test_previous_success_does_not_lower_the_score(trained):
    model, test = trained
    contacted = test[test["pdays"] != -1].head(300)
    failure = model.predict_proba(contacted.assign(poutcome="failure"))[:, 1]
    success = model.predict_proba(contacted.assign(poutcome="success"))[:, 1]
    assert (success >= failure - 1e-9).mean() >= 0.98
    assert success.mean() > failure.mean() + 0.1


def test_scores_are_probabilities(trained):
    model, test = trained
    proba = model.predict_proba(xy(test)[0])[:, 1]
    assert ((proba >= 0) & (proba <= 1)).all()
    assert abs(proba.mean() - (test["y"] == "yes").mean()) < 0.02  # calibrated on average
