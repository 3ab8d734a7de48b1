"""Campaign targeting on five hand-checkable customers: ranking, budgets, profitability, baseline, gains."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bankmarketing.targeting import CampaignPlan, gains_curve, plan_campaign, rank_customers


@pytest.fixture
def scored() -> pd.DataFrame:
    # mean probability 0.3; by probability: e (0.6), b (0.5), c = d (0.2, input order kept), a (0.0)
    return pd.DataFrame(
        {"customer": ["a", "b", "c", "d", "e"], "probability": [0.0, 0.5, 0.2, 0.2, 0.6], "rank": 99},
        index=[10, 11, 12, 13, 14],
    )


def test_ranking_is_stable_with_cumulative_columns_and_other_columns_kept(scored):
    ranked = rank_customers(scored, value_per_subscription=10, cost_per_call=1)
    assert ranked["customer"].tolist() == ["e", "b", "c", "d", "a"]
    assert ranked.index.tolist() == [14, 11, 12, 13, 10]
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5]  # the input's rank column is replaced
    np.testing.assert_allclose(ranked["expected_subscriptions"], [0.6, 1.1, 1.3, 1.5, 1.5])
    # 10 * cumulative p - 1 * calls
    np.testing.assert_allclose(ranked["expected_profit"], [5.0, 9.0, 10.0, 11.0, 10.0])
    assert list(ranked.columns[:4]) == ["rank", "probability", "expected_subscriptions", "expected_profit"]
    assert scored["rank"].tolist() == [99] * 5  # the input is not changed


def test_budget_in_calls(scored):
    plan = plan_campaign(scored, max_calls=2, cost_per_call=1, value_per_subscription=10)
    assert isinstance(plan, CampaignPlan)
    assert plan.call_list["customer"].tolist() == ["e", "b"]
    s = plan.summary
    assert (s["customers"], s["calls"], s["limited_by"]) == (5, 2, "budget")
    assert s["share_called"] == pytest.approx(0.4)
    assert s["spend"] == pytest.approx(2.0)
    assert s["expected_subscriptions"] == pytest.approx(1.1)
    assert s["expected_profit"] == pytest.approx(9.0)
    assert s["expected_subscription_rate"] == pytest.approx(0.55)
    assert s["mean_probability"] == pytest.approx(0.3)
    assert s["random_expected_subscriptions"] == pytest.approx(0.6)  # 2 calls at 0.3
    assert s["random_expected_profit"] == pytest.approx(4.0)  # 10 * 0.6 - 2
    assert s["lift"] == pytest.approx(0.55 / 0.3)


def test_budget_in_money_rounds_down_to_whole_calls(scored):
    plan = plan_campaign(scored, budget=7.5, cost_per_call=2.5, value_per_subscription=10)
    assert plan.summary["calls"] == 3 and plan.call_list["customer"].tolist() == ["e", "b", "c"]
    assert plan_campaign(scored, budget=7.4, cost_per_call=2.5).summary["calls"] == 2
    # 0.3 / 0.1 is 2.9999999999999996 in floating point: still 3 calls
    assert plan_campaign(scored, budget=0.3, cost_per_call=0.1).summary["calls"] == 3


def test_budget_larger_than_the_list_calls_everyone(scored):
    plan = plan_campaign(scored, max_calls=50)
    assert plan.summary["calls"] == 5 and plan.summary["limited_by"] == "customers"
    assert plan.summary["lift"] == pytest.approx(1.0)
    assert plan_campaign(scored, budget=1000, cost_per_call=1).summary["calls"] == 5


def test_stop_when_unprofitable_calls_only_customers_worth_their_cost(scored):
    # value 10, cost 2.5: a call pays only when p > 0.25, i.e. e and b
    options = {"max_calls": 5, "cost_per_call": 2.5, "value_per_subscription": 10}
    everyone = plan_campaign(scored, **options)
    stopped = plan_campaign(scored, **options, stop_when_unprofitable=True)
    assert everyone.summary["calls"] == 5
    assert stopped.summary["calls"] == 2 and stopped.summary["limited_by"] == "profitability"
    assert stopped.call_list["customer"].tolist() == ["e", "b"]
    assert stopped.summary["expected_profit"] == pytest.approx(11 - 5)
    assert stopped.summary["expected_profit"] == rank_customers(scored, 10, 2.5)["expected_profit"].max()
    # break-even (p * value == cost) is not called; a tighter budget still wins
    assert (
        plan_campaign(
            scored, max_calls=5, cost_per_call=5, value_per_subscription=10, stop_when_unprofitable=True
        ).summary["calls"]
        == 1
    )
    assert (
        plan_campaign(scored, **{**options, "max_calls": 1}, stop_when_unprofitable=True).summary[
            "limited_by"
        ]
        == "budget"
    )


def test_nobody_called(scored):
    plan = plan_campaign(scored, max_calls=0, cost_per_call=1, value_per_subscription=10)
    assert plan.call_list.empty and list(plan.call_list.columns)[:2] == ["rank", "probability"]
    s = plan.summary
    assert (s["calls"], s["expected_subscriptions"], s["expected_profit"], s["random_expected_profit"]) == (
        0,
        0.0,
        0.0,
        0.0,
    )
    assert math.isnan(s["expected_subscription_rate"]) and math.isnan(s["lift"])


def test_gains_curve(scored):
    gains = gains_curve(scored)
    assert gains["calls"].tolist() == [0, 1, 2, 3, 4, 5]  # never more points than n + 1
    np.testing.assert_allclose(gains["share_called"], [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(gains["model"], np.array([0, 0.6, 1.1, 1.3, 1.5, 1.5]) / 1.5)
    np.testing.assert_allclose(gains["random"], gains["share_called"])
    many = gains_curve(np.linspace(0, 1, 1000), points=11)
    assert len(many) == 11 and many["calls"].tolist()[:3] == [0, 100, 200]
    assert many["model"].is_monotonic_increasing and (many["model"] >= many["random"]).all()
    np.testing.assert_allclose(gains_curve([0.0, 0.0])["model"], [0, 0.5, 1])  # nothing expected: random


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_calls": -1}, "max_calls must be >= 0"),
        ({"max_calls": 2.5}, "max_calls must be a whole number"),
        ({"budget": -10, "cost_per_call": 1}, "budget must be >= 0"),
        ({"budget": 10}, "cost_per_call must be > 0 when the budget is money"),
        ({"budget": 10, "cost_per_call": 0}, "cost_per_call must be > 0 when the budget is money"),
        ({"max_calls": 2, "cost_per_call": -1}, "cost_per_call must be >= 0"),
        ({"max_calls": 2, "value_per_subscription": float("nan")}, "value_per_subscription must be a finite"),
        ({"max_calls": 2, "value_per_subscription": "50"}, "value_per_subscription must be a number"),
        ({}, "give exactly one of max_calls"),
        ({"max_calls": 2, "budget": 10, "cost_per_call": 1}, "give exactly one of max_calls"),
    ],
)
def test_bad_parameters_are_named(scored, options, message):
    with pytest.raises(ValueError, match=message):
        plan_campaign(scored, **options)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"score": [0.1]}), "no 'probability' column"),
        (pd.DataFrame({"probability": [0.1, 1.2]}), r"within \[0, 1\]: 1 are not \(first at index 1: 1.2\)"),
        (pd.DataFrame({"probability": [-0.1, 0.5]}), r"within \[0, 1\]"),
        (pd.DataFrame({"probability": [0.1, None]}), r"within \[0, 1\]"),
        (pd.DataFrame({"probability": ["high"]}), "must be numeric"),
        (pd.DataFrame({"probability": []}), "no customers"),
    ],
)
def test_bad_scores_are_named(frame, message):
    with pytest.raises(ValueError, match=message):
        plan_campaign(frame, max_calls=1)
    if len(frame):
        with pytest.raises(ValueError, match=message):
            gains_curve(frame)
