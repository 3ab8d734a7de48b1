"""How `train` builds its ensemble candidate and logs nested parameters."""

from __future__ import annotations

from bankmarketing.training.train import TrainOptions, flat_params, members_by_selection


def test_ensemble_members_are_the_best_kinds_that_can_vote():
    selection = {"svc": 0.46, "xgboost": 0.44, "random_forest": 0.45, "logistic_regression": 0.40}
    options = TrainOptions(ensemble_members=2)
    assert members_by_selection(selection, options) == ["random_forest", "xgboost"]  # not svc
    assert members_by_selection(selection, TrainOptions(ensemble_members=3))[-1] == "logistic_regression"
    assert members_by_selection({"svc": 0.5, "xgboost": 0.4}, options) == []  # one voter: no ensemble
    assert members_by_selection(selection, TrainOptions()) == []  # off by default


def test_nested_parameters_get_one_name_each():
    params = {"members": {"xgboost": {"max_depth": 4}, "logistic_regression": {"C": 1.0}}}
    assert flat_params(params, "model") == {
        "model__members__xgboost__max_depth": 4,
        "model__members__logistic_regression__C": 1.0,
    }
