"""`measure` on a log period both ways, in Mage's environment (Evidently): the period read at
once (the path before issue 16) and the chunked aggregates with their sample. Prints JSON.

    .venv/mage/bin/python -m tests.monitoring.measure_check DATA_CSV REPORT_DIR
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from bankmarketing.data.schema import CATEGORIES, FEATURES, MISSING
from bankmarketing.monitoring.aggregates import ROW_ID, ROW_KEY, PeriodAggregate, request_keys
from bankmarketing.monitoring.drift import PREDICTION, TARGET
from bankmarketing.monitoring.monitor import MonitorOptions, measure
from bankmarketing.monitoring.periods import Period

THRESHOLD = 0.3
START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def frames(data_csv: Path, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference (4,000 customers of Dec-May, scores and outcomes) and `rows` logged ones of
    the later months (shifted scores, outcomes for a third)."""
    data = pd.read_csv(data_csv, keep_default_na=False)
    for column in CATEGORIES:
        data.loc[data[column].eq(""), column] = MISSING
    early = data[data["month"].isin(["dec", "jan", "feb", "mar", "apr", "may"])]
    later = data[~data.index.isin(early.index)]
    rng = np.random.default_rng(0)
    reference = early.sample(4_000, random_state=1)[list(FEATURES)].reset_index(drop=True)
    reference[PREDICTION] = rng.beta(1.2, 7, len(reference))
    reference[TARGET] = (rng.random(len(reference)) < reference[PREDICTION]).astype(int)
    current = later.sample(rows, random_state=2, replace=True)[list(FEATURES)].reset_index(drop=True)
    current[PREDICTION] = rng.beta(1.3, 6.5, rows)
    subscribed = (rng.random(rows) < current[PREDICTION]).astype(float)
    current[TARGET] = np.where(rng.random(rows) < 1 / 3, subscribed, np.nan)
    return reference, current


def both_ways(reference: pd.DataFrame, current: pd.DataFrame, sample_rows: int, report_dir: Path) -> dict:
    aggregate = PeriodAggregate(THRESHOLD, sample_rows)
    keyed = current.assign(
        **{ROW_ID: np.arange(len(current)), ROW_KEY: request_keys(f"r-{i}" for i in range(len(current)))}
    )
    for first in range(0, len(keyed), 997):
        aggregate.add(keyed.iloc[first : first + 997])
    sample = aggregate.sample.rows([*FEATURES, PREDICTION, TARGET])
    end = START + dt.timedelta(days=1)
    whole = Period("2026-11-02", START, end, "log", 1, current)
    chunked = Period("2026-11-02", START, end, "log", 1, sample, aggregate)
    options = MonitorOptions(source="log")
    return {
        "whole": asdict(measure(whole, reference, THRESHOLD, options, report_dir / "whole")),
        "chunked": asdict(measure(chunked, reference, THRESHOLD, options, report_dir / "chunked")),
        "sample_rows": len(sample),
    }


def main() -> None:
    data_csv, report_dir = Path(sys.argv[1]), Path(sys.argv[2])
    reference, current = frames(data_csv, 6_000)
    result = {
        "small": both_ways(reference, current, 10_000, report_dir / "small"),
        "large": both_ways(reference, current, 2_000, report_dir / "large"),
    }
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
