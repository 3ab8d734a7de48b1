"""The search starts from each kind's known-good point; candidates are compared on shared folds."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest

from bankmarketing.data.loading import read_raw
from bankmarketing.data.prepare import xy
from bankmarketing.data.validation import validate
from bankmarketing.training.candidates import CANDIDATES
from bankmarketing.training.tuning import search, selection_scores


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_first_trial_lies_in_the_search_space(name):
    candidate = CANDIDATES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # optuna warns when a fixed value is outside its range
        params = candidate.suggest(optuna.trial.FixedTrial(candidate.first_trial), 7.5)
    assert candidate.make(params, 0) is not None


@pytest.fixture(scope="module")
def sample(data_csv):
    return xy(validate(read_raw(data_csv)).clean.sample(3000, random_state=0))


def test_a_one_trial_search_returns_the_first_trial(sample):
    X, y = sample
    candidate = CANDIDATES["hist_gradient_boosting"]
    found = search(candidate, X, y, trials=1, timeout_s=60, cv_folds=2, seed=0)
    assert found.trials == 1
    assert found.params == candidate.suggest(optuna.trial.FixedTrial(candidate.first_trial), 1.0)


def test_selection_folds_are_shared_by_every_candidate_and_not_the_searchs(sample):
    X, y = sample
    candidate = CANDIDATES["logistic_regression"]
    found = search(candidate, X, y, trials=1, timeout_s=60, cv_folds=3, seed=0)
    scores = selection_scores(candidate, found.params, X, y, folds=3, seed=0)
    assert len(scores) == 3 and np.array_equal(
        scores, selection_scores(candidate, found.params, X, y, folds=3, seed=0)
    )
    assert not np.isclose(scores.mean(), found.cv_pr_auc, rtol=0, atol=1e-9)  # fresh folds
