"""Campaign targeting: who to call first, how many to call, and what it is expected to earn.

Pure functions over scored customers (a frame with a `probability` column); no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PROBABILITY = "probability"
#: Columns the ranking adds (replacing any of the same name in the input).
RANK_COLUMNS = ("rank", PROBABILITY, "expected_subscriptions", "expected_profit")


@dataclass(frozen=True)
class CampaignPlan:
    """The ranked call list (selected rows only) and its summary numbers."""

    call_list: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _number(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value:g}")
    return value


def _probabilities(scored: pd.DataFrame) -> np.ndarray:
    if not isinstance(scored, pd.DataFrame):
        raise ValueError(f"scored must be a pandas DataFrame, got {type(scored).__name__}")
    if PROBABILITY not in scored.columns:
        raise ValueError(
            f"scored has no '{PROBABILITY}' column (columns: {', '.join(map(str, scored.columns))})"
        )
    try:
        p = scored[PROBABILITY].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the '{PROBABILITY}' column must be numeric: {exc}") from None
    bad = ~((p >= 0) & (p <= 1))  # NaN is bad too
    if bad.any():
        first = scored.index[int(np.argmax(bad))]
        raise ValueError(
            f"probabilities must be within [0, 1]: {int(bad.sum())} are not "
            f"(first at index {first!r}: {p[bad][0]})"
        )
    return p


def rank_customers(
    scored: pd.DataFrame, value_per_subscription: float = 0.0, cost_per_call: float = 0.0
) -> pd.DataFrame:
    """All customers by probability, highest first (ties keep input order), with `rank` 1..n,
    `expected_subscriptions` (cumulative sum of probabilities) and `expected_profit`
    (cumulative value × p − cost per call). Other columns and the index are kept."""
    p = _probabilities(scored)
    value = _number("value_per_subscription", value_per_subscription)
    cost = _number("cost_per_call", cost_per_call)
    order = np.argsort(-p, kind="stable")
    rest = scored.drop(columns=[c for c in RANK_COLUMNS if c in scored.columns]).iloc[order]
    ranked_p = p[order]
    rank = np.arange(1, len(p) + 1)
    expected = np.cumsum(ranked_p)
    columns = {
        "rank": rank,
        PROBABILITY: ranked_p,
        "expected_subscriptions": expected,
        "expected_profit": value * expected - cost * rank,
    }
    ranked = rest.copy()
    for position, (name, values) in enumerate(columns.items()):
        ranked.insert(position, name, values)
    return ranked


def plan_campaign(
    scored: pd.DataFrame,
    *,
    max_calls: int | None = None,
    budget: float | None = None,
    cost_per_call: float = 0.0,
    value_per_subscription: float = 0.0,
    stop_when_unprofitable: bool = False,
) -> CampaignPlan:
    """Choose whom to call: the top k by probability.

    k = min(max_calls, n) for a budget in calls, or min(budget // cost_per_call, n) for a budget in
    money (then `cost_per_call` must be > 0). Give exactly one of `max_calls` and `budget`.
    With `stop_when_unprofitable`, k also stops where the expected profit stops increasing:
    only customers with p × value_per_subscription > cost_per_call are called.

    The summary has: customers, calls, share_called, spend, expected_subscriptions,
    expected_profit, expected_subscription_rate (among the called), mean_probability (all
    customers), random_expected_subscriptions and random_expected_profit (as many calls to
    random customers), lift (rate among the called / mean probability) and limited_by
    ("budget", "customers" or "profitability"). Ratios are NaN when nobody is called.
    """
    if (max_calls is None) == (budget is None):
        raise ValueError("give exactly one of max_calls (a number of calls) and budget (money)")
    value = _number("value_per_subscription", value_per_subscription)
    cost = _number("cost_per_call", cost_per_call)
    if max_calls is not None:
        if isinstance(max_calls, bool) or not isinstance(max_calls, (int, np.integer)):
            raise ValueError(f"max_calls must be a whole number, got {max_calls!r}")
        if max_calls < 0:
            raise ValueError(f"max_calls must be >= 0, got {max_calls}")
        affordable = int(max_calls)
    else:
        money = _number("budget", budget)
        if cost == 0:
            raise ValueError("cost_per_call must be > 0 when the budget is money")
        affordable = math.floor(money / cost + 1e-9)  # 1.0 / 0.1 is 9.999…: still 10 calls
    ranked = rank_customers(scored, value, cost)
    n = len(ranked)
    if n == 0:
        raise ValueError("scored has no customers")
    k, limited_by = (affordable, "budget") if affordable < n else (n, "customers")
    if stop_when_unprofitable:
        profitable = int((ranked[PROBABILITY].to_numpy() * value > cost).sum())  # a prefix: sorted
        if profitable < k:
            k, limited_by = profitable, "profitability"

    call_list = ranked.iloc[:k]
    mean = float(ranked[PROBABILITY].mean())
    expected = float(call_list[PROBABILITY].sum())
    rate = expected / k if k else math.nan
    summary = {
        "customers": n,
        "calls": k,
        "share_called": k / n,
        "spend": cost * k,
        "expected_subscriptions": expected,
        "expected_profit": value * expected - cost * k,
        "expected_subscription_rate": rate,
        "mean_probability": mean,
        "random_expected_subscriptions": mean * k,
        "random_expected_profit": value * mean * k - cost * k,
        "lift": rate / mean if k and mean > 0 else math.nan,
        "limited_by": limited_by,
    }
    return CampaignPlan(call_list=call_list, summary=summary)


def gains_curve(scored: pd.DataFrame | Any, points: int = 101) -> pd.DataFrame:
    """Cumulative gains for a chart: calling the top `share_called` of customers by probability
    gets `model` of all expected subscriptions; `random` (= share_called) is random calling.

    `scored` is a frame with a probability column or an array of probabilities; `points`
    evenly spaced shares from 0 to 1 (at most n + 1).
    """
    if not isinstance(scored, pd.DataFrame):
        scored = pd.DataFrame({PROBABILITY: np.asarray(scored, dtype=float).ravel()})
    p = np.sort(_probabilities(scored))[::-1]
    if len(p) == 0:
        raise ValueError("scored has no customers")
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points must be a whole number >= 2, got {points!r}")
    n = len(p)
    calls = np.unique(np.round(np.linspace(0, n, min(int(points), n + 1))).astype(int))
    cumulative = np.concatenate([[0.0], np.cumsum(p)])
    total = cumulative[-1]
    share = calls / n
    model = cumulative[calls] / total if total > 0 else share
    return pd.DataFrame({"calls": calls, "share_called": share, "model": model, "random": share})
