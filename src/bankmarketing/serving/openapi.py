"""The predictor's OpenAPI 3.1 document, generated from the pydantic schemas."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from bankmarketing import __version__
from bankmarketing.serving.schemas import (
    BatchPrediction,
    BatchRequest,
    ErrorBody,
    OutcomesRequest,
    Prediction,
    PredictRequest,
)


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def openapi_document(max_batch: int) -> dict[str, Any]:
    """The predictor's OpenAPI 3.1 document. Longer than 80 lines on purpose: one literal that
    reads top to bottom as the document does (split, the paths would lose their context)."""
    _, schemas = models_json_schema(
        [(m, "validation") for m in (PredictRequest, BatchRequest, OutcomesRequest)]
        + [(m, "serialization") for m in (Prediction, BatchPrediction, ErrorBody)],
        ref_template="#/components/schemas/{model}",
    )
    errors = {
        "400": {"description": "body is not valid JSON", **_json("ErrorBody")},
        "408": {"description": "body not received within the bound", **_json("ErrorBody")},
        "413": {"description": "body or batch too large", **_json("ErrorBody")},
        "415": {"description": "not application/json", **_json("ErrorBody")},
        "422": {
            "description": "a field is missing, of the wrong type, out of range or unknown",
            **_json("ErrorBody"),
        },
        "503": {"description": "no model loaded yet", **_json("ErrorBody")},
    }
    keyed = {  # scoring: the API key when PREDICTOR_API_KEY is set (compose), open otherwise
        "security": [{"apiKey": []}, {}],
        "401": {"description": "missing or wrong API key (when one is set)", **_json("ErrorBody")},
    }
    text = {"200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Term-deposit propensity predictor",
            "version": __version__,
            "description": "Probability that a bank customer subscribes to a term deposit if "
            "called, from the production model in the MLflow registry.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Score one customer",
                    "requestBody": {"required": True, **_json("PredictRequest")},
                    "security": keyed["security"],
                    "responses": {
                        "200": {"description": "prediction", **_json("Prediction")},
                        "401": keyed["401"],
                        **errors,
                    },
                }
            },
            "/predict/batch": {
                "post": {
                    "summary": f"Score up to {max_batch} customers",
                    "requestBody": {"required": True, **_json("BatchRequest")},
                    "security": keyed["security"],
                    "responses": {
                        "200": {"description": "predictions in input order", **_json("BatchPrediction")},
                        "401": keyed["401"],
                        **errors,
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "The process is alive",
                    "responses": {
                        "200": {
                            "description": "alive",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"type": "string", "enum": ["alive"]}},
                                        "required": ["status"],
                                    },
                                    "example": {"status": "alive"},
                                }
                            },
                        }
                    },
                }
            },
            "/ready": {
                "get": {
                    "summary": "A model is loaded (and from where)",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "no model yet"}},
                }
            },
            "/model": {
                "get": {
                    "summary": "Served version, its metrics and model card",
                    "responses": {"200": {"description": "model"}, "503": {"description": "none"}},
                }
            },
            "/challenger": {
                "get": {
                    "summary": "The challenger set-up and its newest live comparisons with production",
                    "description": "Mode (off, shadow, split), share, the challenger version loaded, and "
                    "the periods `monitor` compared (ROC AUC difference with DeLong's p-value).",
                    "responses": {"200": {"description": "challenger"}},
                }
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": text}},
            "/outcomes": {
                "post": {
                    "summary": f"Load call outcomes of up to {max_batch} past predictions (bearer token)",
                    "description": "Each outcome replaces an earlier one for the same request id. Batch "
                    "answers carry one request id per customer (<id>:<position>). `monitor` joins them "
                    "to the prediction log; the next `retrain` trains on them.",
                    "requestBody": {"required": True, **_json("OutcomesRequest")},
                    "responses": {
                        "200": {"description": "loaded: how many, and how many predictions they label"},
                        "401": {"description": "missing or wrong token", **_json("ErrorBody")},
                        **{k: v for k, v in errors.items() if k != "503"},
                    },
                }
            },
            "/admin/reload": {
                "post": {
                    "summary": "Follow the registry alias now (bearer token)",
                    "responses": {
                        "200": {"description": "reloaded or unchanged"},
                        "401": {"description": "missing or wrong token"},
                    },
                }
            },
        },
        "components": {
            "schemas": schemas["$defs"] if "$defs" in schemas else schemas,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }
