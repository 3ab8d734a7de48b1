"""Batch scoring of customer files and the campaign call list, with the production model."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from bankmarketing.batch import BatchOptions, CampaignOptions, campaign, score_file
from bankmarketing.data import DataError
from bankmarketing.data.schema import FEATURES
from bankmarketing.registry import load_pipeline
from bankmarketing.scoring import Scorer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def production_scores(served, data_csv):
    settings = served[0]
    frame = pd.read_csv(data_csv, keep_default_na=False)
    frame[list(FEATURES)] = frame[list(FEATURES)].replace("", "unknown")
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@production")
    return frame, np.asarray(model.predict(frame[list(FEATURES)]))[:, 1]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_whole_file_in_chunks_equals_the_registered_model(
    served,
    data_csv,
    production_scores,
    tmp_path,
    suffix,
):
    settings, versions, _ = served
    frame, expected = production_scores
    source = tmp_path / f"customers{suffix}"
    if suffix == ".csv":
        source.write_bytes(data_csv.read_bytes())
    else:
        frame.to_parquet(source, index=False)
    target = tmp_path / f"scored{suffix}"
    summary = score_file(settings, BatchOptions(input=str(source), output=str(target), chunk_rows=10_000))
    assert summary["rows"] == len(frame) == 45_211 and summary["model_version"] == versions["production"]
    scored = (
        pd.read_csv(target, float_precision="round_trip") if suffix == ".csv" else pd.read_parquet(target)
    )
    assert len(scored) == len(frame)
    assert {"duration", "y", "probability", "decision", "rank", "model_version"} <= set(scored.columns)
    np.testing.assert_allclose(scored["probability"], expected, rtol=0, atol=1e-9)
    assert sorted(scored["rank"]) == list(range(1, len(scored) + 1))
    by_rank = scored.sort_values("rank")["probability"].to_numpy()
    assert np.all(np.diff(by_rank) <= 0)
    threshold = summary["threshold"]
    assert ((scored["probability"] >= threshold) == (scored["decision"] == "call")).all()
    assert set(scored["model_version"].astype(str)) == {versions["production"]}


def test_bad_rows_stop_with_the_line_and_keep_the_old_output(served, data_csv, tmp_path):
    settings = served[0]
    lines = data_csv.read_text().splitlines()[:2001]
    lines[1500] = lines[1500].replace(",", ",x", 1)  # job 'xtechnician' on file line 1501
    source = tmp_path / "bad.csv"
    source.write_text("\n".join(lines) + "\n")
    target = tmp_path / "scored.csv"
    target.write_text("previous result\n")
    with pytest.raises(DataError, match=r"row 1501, column 'job': 'x.*' fails isin"):
        score_file(settings, BatchOptions(input=str(source), output=str(target), chunk_rows=1000))
    assert target.read_text() == "previous result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "scored.csv"]  # no partial files


def test_missing_column_and_unknown_format(served, data_csv, tmp_path):
    settings = served[0]
    source = tmp_path / "partial.csv"
    pd.read_csv(data_csv, nrows=50).drop(columns=["poutcome"]).to_csv(source, index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) poutcome"):
        score_file(settings, BatchOptions(input=str(source), output=str(tmp_path / "o.csv")))
    with pytest.raises(DataError, match="must end in .csv or .parquet"):
        score_file(settings, BatchOptions(input=str(source), output=str(tmp_path / "o.xlsx")))


def test_campaign_call_list_within_budget(served, data_csv, tmp_path):
    settings = served[0]
    scored = tmp_path / "scored.parquet"
    score_file(settings, BatchOptions(input=str(data_csv), output=str(scored)))
    summary = campaign(
        settings,
        CampaignOptions(
            input=str(scored),
            output=str(tmp_path / "calls.csv"),
            max_calls=500,
            cost_per_call=5,
            value_per_subscription=50,
        ),
    )
    calls = pd.read_csv(tmp_path / "calls.csv")
    assert summary["calls"] == len(calls) <= 500
    assert calls["probability"].is_monotonic_decreasing
    assert summary["lift"] > 2 and summary["expected_profit"] > summary["random_expected_profit"]


def test_the_call_list_can_carry_each_customers_top_reasons(served, tmp_path):
    settings, versions, test = served
    scored = tmp_path / "scored.parquet"
    test.head(400).to_parquet(tmp_path / "customers.parquet", index=False)
    score_file(settings, BatchOptions(input=str(tmp_path / "customers.parquet"), output=str(scored)))
    options = {"input": str(scored), "max_calls": 50, "cost_per_call": 0, "stop_when_unprofitable": False}
    campaign(settings, CampaignOptions(output=str(tmp_path / "calls.csv"), reasons=3, **options))
    calls = pd.read_csv(tmp_path / "calls.csv", keep_default_na=False)
    assert len(calls) == 50 and {"reason_1", "reason_2", "reason_3"} <= set(calls.columns)
    pipeline = load_pipeline(settings.tracking_uri, settings.model_name, versions["production"])
    scorer = Scorer.from_pipeline(pipeline)
    first = calls.loc[0, list(FEATURES)].to_dict()
    parts = scorer.explain([first])[0]
    top = max((f for f in parts if f != "bias"), key=parts.get)
    assert calls.loc[0, "reason_1"].startswith(f"{top}={first[top]} (+{parts[top]:.2f})")
    plain = campaign(settings, CampaignOptions(output=str(tmp_path / "plain.csv"), **options))
    assert plain["calls"] == 50 and "reason_1" not in pd.read_csv(tmp_path / "plain.csv").columns


@pytest.mark.timeout(600)
def test_spark_engine_gives_the_same_scores(served, tmp_path):
    settings, versions, test = served
    source = tmp_path / "customers.parquet"
    test.assign(customer_id=range(len(test))).to_parquet(source, index=False)
    score_file(settings, BatchOptions(input=str(source), output=str(tmp_path / "pandas.parquet")))
    summary = score_file(
        settings, BatchOptions(input=str(source), output=str(tmp_path / "spark.parquet"), engine="spark")
    )
    assert summary["engine"] == "spark" and summary["rows"] == len(test)
    by_pandas = pd.read_parquet(tmp_path / "pandas.parquet").set_index("customer_id").sort_index()
    by_spark = pd.read_parquet(tmp_path / "spark.parquet").set_index("customer_id").sort_index()
    np.testing.assert_allclose(by_spark["probability"], by_pandas["probability"], rtol=0, atol=1e-9)
    assert (by_spark["decision"] == by_pandas["decision"]).all()
    assert sorted(by_spark["rank"]) == list(range(1, len(test) + 1))
    assert set(by_spark["model_version"]) == {versions["production"]}


def test_parquet_with_empty_categories_scores_them_as_unknown(served, data_csv, tmp_path):
    settings = served[0]
    raw = pd.read_csv(data_csv, keep_default_na=False, nrows=3000)  # data.csv layout: '' = unknown
    assert (raw["poutcome"] == "").any()
    raw.to_parquet(tmp_path / "raw.parquet", index=False)
    raw.replace("", "unknown").to_parquet(tmp_path / "filled.parquet", index=False)
    for name in ("raw", "filled"):
        score_file(
            settings,
            BatchOptions(
                input=str(tmp_path / f"{name}.parquet"), output=str(tmp_path / f"{name}-scored.parquet")
            ),
        )
    raw_scored = pd.read_parquet(tmp_path / "raw-scored.parquet")
    filled_scored = pd.read_parquet(tmp_path / "filled-scored.parquet")
    assert not (raw_scored["poutcome"] == "").any()
    pd.testing.assert_frame_equal(raw_scored, filled_scored)


def test_parquet_bad_category_names_the_row(served, data_csv, tmp_path):
    settings = served[0]
    raw = pd.read_csv(data_csv, keep_default_na=False, nrows=3000).replace("", "unknown")
    raw.loc[2100, "job"] = "astronaut"
    raw.to_parquet(tmp_path / "bad.parquet", index=False)
    options = BatchOptions(
        input=str(tmp_path / "bad.parquet"), output=str(tmp_path / "out.parquet"), chunk_rows=1000
    )
    with pytest.raises(DataError, match=r"row 2102, column 'job': 'astronaut' fails isin"):
        score_file(settings, options)
    assert not (tmp_path / "out.parquet").exists()


def test_prefetch_keeps_order_raises_the_producers_error_and_stops_early():
    from bankmarketing.batch import _prefetched

    assert list(_prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("broken file")

    with pytest.raises(ValueError, match="broken file"):
        list(_prefetched(failing()))
    produced = []

    def endless():
        for i in range(10**9):
            produced.append(i)
            yield i

    for item in _prefetched(endless(), depth=2):
        if item == 5:
            break
    assert len(produced) <= 10  # the producer stopped soon after the consumer left
