"""docs/api.md is generated from the predictor's OpenAPI document and never goes stale."""

from __future__ import annotations

import re
from pathlib import Path

from bankmarketing.serving.api_docs import DEFAULT_MAX_BATCH, EXAMPLE_CUSTOMER, api_markdown, generate, main
from bankmarketing.serving.app import ServingConfig
from bankmarketing.serving.openapi import openapi_document
from bankmarketing.serving.schemas import PredictRequest

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_docs_api_md_is_what_the_generator_writes_now():
    assert API_MD.read_text() == generate(), "docs/api.md is stale: run `make api-docs`"


def test_every_path_method_and_schema_is_documented():
    document = openapi_document(DEFAULT_MAX_BATCH)
    text = api_markdown(document)
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert f"## `{method.upper()} {path}`" in text
            assert operation["summary"] in text
            for status, response in operation["responses"].items():
                assert re.search(
                    rf"^\| {status} \| {re.escape(response['description'])} \|", text, re.MULTILINE
                )
    for name, schema in document["components"]["schemas"].items():
        assert f"### {name}" in text
        for field in schema["properties"]:
            assert f"| `{field}` |" in text


def test_fields_show_types_constraints_and_allowed_values():
    text = generate()
    assert "| `age` | integer | yes | ≥ 18, ≤ 100 |" in text
    assert "`admin.`, `blue-collar`" in text  # job's allowed values
    assert "| `customers` | array of [Customer](#schema-customer) | yes | items ≥ 1 |" in text
    assert "| `explain` | boolean | no (default `false`) |" in text
    assert "object of number \\| null" in text  # contributions


def test_examples_are_checked_against_the_schema():
    PredictRequest.model_validate({"customer": EXAMPLE_CUSTOMER})
    text = generate()
    assert '"field": "customer.duration"' in text and '"message": "Extra inputs are not permitted"' in text


def test_generated_with_the_predictors_default_batch_limit():
    assert DEFAULT_MAX_BATCH == ServingConfig().max_batch
    assert f"Score up to {DEFAULT_MAX_BATCH} customers" in generate()


def test_cli_writes_and_checks(tmp_path, capsys):
    target = tmp_path / "api.md"
    assert main(["--output", str(target), "--check"]) == 1
    assert main(["--output", str(target)]) == 0
    assert target.read_text() == generate()
    assert main(["--output", str(target), "--check"]) == 0
    target.write_text(target.read_text() + "edited by hand\n")
    assert main(["--output", str(target), "--check"]) == 1
