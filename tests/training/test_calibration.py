import pickle

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from bankmarketing.data.loading import read_raw
from bankmarketing.data.validation import validate
from bankmarketing.training.calibration import center_plateaus
from bankmarketing.training.candidates import CANDIDATES
from bankmarketing.training.evaluation import expected_calibration_error
from bankmarketing.training.train import TrainOptions, fit_calibrated, xy


@pytest.fixture(scope="module")
def scores_and_outcomes():
    """Noisy scores whose isotonic fit has many flat segments."""
    rng = np.random.default_rng(0)
    scores = rng.normal(size=4000)
    outcomes = (rng.random(4000) < 1 / (1 + np.exp(-2 * scores))).astype(int)
    return scores, outcomes


def test_centering_keeps_the_ranking_inside_the_outermost_segments(scores_and_outcomes):
    scores, outcomes = scores_and_outcomes
    plain = IsotonicRegression(out_of_bounds="clip").fit(scores, outcomes)
    assert np.any(np.diff(plain.y_thresholds_) == 0)  # the plain fit has plateaus
    centered = center_plateaus(IsotonicRegression(out_of_bounds="clip").fit(scores, outcomes))
    knots = centered.X_thresholds_
    assert (knots[0], knots[-1]) == (plain.X_thresholds_[0], plain.X_thresholds_[-1])  # same range
    inner = np.sort(scores[(scores > knots[1]) & (scores < knots[-2])])
    assert len(inner) > 3000
    assert len(np.unique(plain.predict(inner))) < len(inner) / 10  # ties everywhere
    assert np.all(np.diff(centered.predict(inner)) > 0)  # none left
    assert np.all(np.diff(centered.predict(np.sort(scores))) >= 0)  # still monotone


def test_centering_keeps_the_calibration(scores_and_outcomes):
    scores, outcomes = scores_and_outcomes
    plain = IsotonicRegression(out_of_bounds="clip").fit(scores, outcomes)
    centered = center_plateaus(IsotonicRegression(out_of_bounds="clip").fit(scores, outcomes))
    assert abs(centered.predict(scores).mean() - outcomes.mean()) < 0.005
    assert np.max(np.abs(centered.predict(scores) - plain.predict(scores))) < 0.2
    assert expected_calibration_error(outcomes, centered.predict(scores)) < 0.02


def test_the_centered_calibrator_survives_pickling(scores_and_outcomes):
    scores, outcomes = scores_and_outcomes
    centered = center_plateaus(IsotonicRegression(out_of_bounds="clip").fit(scores, outcomes))
    restored = pickle.loads(pickle.dumps(centered))  # __setstate__ rebuilds the interpolator
    np.testing.assert_array_equal(restored.predict(scores), centered.predict(scores))


def test_train_registers_one_model_with_a_centered_calibrator(data_csv):
    X, y = xy(validate(read_raw(data_csv)).clean.head(4000))
    options = TrainOptions()
    assert options.calibration == "centered_isotonic"
    params = {
        "learning_rate": 0.1,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 20,
        "l2_regularization": 1.0,
        "class_weight": None,
    }
    model = fit_calibrated(CANDIDATES["hist_gradient_boosting"], params, options, X, y)
    (calibrated,) = model.named_steps["model"].calibrated_classifiers_
    (calibrator,) = calibrated.calibrators
    assert np.all(np.diff(calibrator.y_thresholds_[1:-1]) > 0)
    plain = fit_calibrated(
        CANDIDATES["hist_gradient_boosting"], params, TrainOptions(calibration="isotonic"), X, y
    )
    assert len(np.unique(model.predict_proba(X)[:, 1])) > len(np.unique(plain.predict_proba(X)[:, 1]))
