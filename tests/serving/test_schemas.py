"""Request schemas and the documented example body."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bankmarketing.data.schema import CATEGORIES, FEATURES
from bankmarketing.serving.schemas import PredictRequest, record
from tests.conftest import REPO

EXAMPLE = json.loads((REPO / "docs/example-customer.json").read_text())


def test_the_documented_example_is_a_valid_request():
    request = PredictRequest.model_validate(EXAMPLE)
    assert set(request.customer.model_dump()) == set(FEATURES)


def test_every_allowed_category_is_accepted_and_nothing_else():
    for field, allowed in CATEGORIES.items():
        for value in allowed:
            PredictRequest.model_validate({"customer": EXAMPLE["customer"] | {field: value}})
        with pytest.raises(ValidationError):
            PredictRequest.model_validate({"customer": EXAMPLE["customer"] | {field: value.upper() + "?"}})


def test_record_is_model_dump():
    request = PredictRequest.model_validate_json(json.dumps(EXAMPLE))
    assert record(request.customer) == request.customer.model_dump() == EXAMPLE["customer"]
