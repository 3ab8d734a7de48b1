"""The UI's pure helpers: CSV rows to customers, row numbers of rejections, result tables."""

from __future__ import annotations

import pandas as pd
import pytest

from bankmarketing.data.schema import FEATURES
from bankmarketing.serving.schemas import Customer
from bankmarketing.ui.customers import (
    DEFAULT_CUSTOMER,
    InvalidRows,
    contributions_frame,
    missing_columns,
    read_csv,
    rejection_lines,
    scored_frame,
    to_customers,
)

ROW = "41,management,married,tertiary,no,1200,yes,no,cellular,5,may,1,-1,0,unknown"


def test_the_default_customer_is_valid():
    assert Customer.model_validate(DEFAULT_CUSTOMER).model_dump() == DEFAULT_CUSTOMER


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_csv_rows_become_customers_extra_columns_ignored(sep):
    header = sep.join(["id", *FEATURES, "duration", "y"])
    row = sep.join(["c-1", *ROW.split(","), "300", "yes"])
    frame = read_csv(f"\ufeff{header}\n{row}\n{row.replace('41', ' 42.0 ', 1)}\n".encode())
    assert list(frame.columns) == ["id", *FEATURES, "duration", "y"]
    customers = to_customers(frame)
    assert customers[0] == dict(zip(FEATURES, [41, *ROW.split(",")[1:]], strict=True)) | {
        "balance": 1200,
        "day_of_week": 5,
        "campaign": 1,
        "pdays": -1,
        "previous": 0,
    }
    assert customers[1]["age"] == 42 and set(customers[1]) == set(FEATURES)  # no id, duration, y
    assert Customer.model_validate(customers[0])


def test_missing_columns_are_listed():
    frame = read_csv("age,job\n41,management\n")
    assert missing_columns(frame) == [f for f in FEATURES if f not in ("age", "job")]
    with pytest.raises(ValueError, match="Missing column\\(s\\): marital, education, default, balance"):
        to_customers(frame)


def test_bad_numbers_name_row_and_field():
    header = ",".join(FEATURES)
    bad = ROW.replace("41,", "41.5,", 1)
    empty = ROW.replace(",1200,", ",,", 1)
    frame = read_csv("\n".join([header, ROW, bad, empty, *[bad] * 12]))
    with pytest.raises(InvalidRows) as caught:
        to_customers(frame)
    problems = caught.value.problems
    assert str(problems[0]) == "row 2 (line 3 of the file), age: '41.5' is not a whole number"
    assert str(problems[1]) == "row 3 (line 4 of the file), balance: empty value"
    assert len(problems) == 10 and caught.value.more == 4 and str(caught.value).endswith("… and 4 more")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"\xff\xfe\x00a", "not UTF-8"),
        (b'age,job\n"41,x\n', "not a readable CSV"),
    ],
)
def test_unreadable_files(data, message):
    with pytest.raises(ValueError, match=message):
        read_csv(data)


def test_rejection_lines_name_the_file_row():
    detail = [
        {"field": "customers.0.age", "message": "too young"},
        {"field": "customers.129", "message": "not an object"},
        {"field": "customer.job", "message": "unknown job"},
        {"field": "customers", "message": "at most 100 items"},
    ]
    assert rejection_lines(detail) == [
        "row 1 (line 2 of the file), age: too young",
        "row 130 (line 131 of the file): not an object",
        "job: unknown job",
        "customers: at most 100 items",
    ]


def test_scored_frame_adds_rank_and_version_and_keeps_every_column():
    frame = pd.DataFrame({"id": ["a", "b", "c"], "probability": ["old"] * 3})
    answer = {
        "model_version": "3",
        "predictions": [
            {"probability": 0.2, "decision": "skip", "model_version": "3"},
            {"probability": 0.7, "decision": "call", "model_version": "3"},
            {"probability": 0.2, "decision": "skip", "model_version": "4"},
        ],
    }
    scored = scored_frame(frame, answer)
    assert scored.to_dict("list") == {
        "id": ["a", "b", "c"],
        "probability": [0.2, 0.7, 0.2],
        "decision": ["skip", "call", "skip"],
        "rank": [2, 1, 3],
        "model_version": ["3", "3", "4"],
    }
    with pytest.raises(ValueError, match="2 predictions for 3 rows"):
        scored_frame(frame, {"predictions": answer["predictions"][:2]})


def test_contributions_sorted_by_absolute_value_without_bias():
    frame = contributions_frame({"age": 0.1, "bias": -2.0, "month": -0.8, "pdays": 0.5})
    assert frame.to_dict("list") == {
        "feature": ["month", "pdays", "age"],
        "contribution": [-0.8, 0.5, 0.1],
        "direction": ["towards skip", "towards call", "towards call"],
    }
