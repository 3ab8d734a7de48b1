"""Periods of monitoring: slices of current data per model version, and the comparisons of two
versions on the same customers; the calendar they are cut on."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bankmarketing.monitoring.aggregates import PeriodAggregate

GRANULARITY = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1)}


@dataclass(frozen=True)
class Period:
    """One slice of current data for one model version."""

    name: str
    start: dt.datetime
    end: dt.datetime
    source: str
    version: int
    frame: pd.DataFrame  # raw features, `prediction`, and `target` where known
    #: log: the whole period's aggregates; `frame` is then its sample (all of it when small)
    aggregate: PeriodAggregate | None = None


@dataclass(frozen=True)
class Comparison:
    """Production and challenger scores of the same customers in one period."""

    name: str
    start: dt.datetime
    end: dt.datetime
    source: str
    production_version: int
    challenger_version: int
    features: pd.DataFrame  # the customers
    target: np.ndarray  # 1/0 where the outcome is known, NaN elsewhere
    production: np.ndarray
    challenger: np.ndarray
    served_share: float | None  # log: share of the customers the challenger answered for
    #: log: customers both scored; the arrays above then hold a sample of the labelled ones
    scored_rows: int | None = None


def period_start(moment: dt.datetime, granularity: str) -> dt.datetime:
    """The start of the period (UTC) an instant falls in."""
    moment = moment.astimezone(dt.UTC)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(days=day.weekday()) if granularity == "week" else day


def period_starts(at: pd.Series, granularity: str) -> pd.Series:
    """`period_start` of every instant (UTC), vectorised."""
    if granularity == "hour":
        return at.dt.floor("h")
    day = at.dt.floor("D")
    return day - pd.to_timedelta(day.dt.weekday, unit="D") if granularity == "week" else day


def period_name(start: dt.datetime, granularity: str) -> str:
    return start.strftime("%Y-%m-%dT%H" if granularity == "hour" else "%Y-%m-%d")
