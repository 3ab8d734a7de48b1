"""A small HTTP client of the predictor API (the UI never loads a model itself)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import requests

URL_VARIABLE = "PREDICTOR_URL"
API_KEY_VARIABLE = "PREDICTOR_API_KEY"  # sent as X-API-Key when set (the predictor requires it then)
DEFAULT_URL = "http://127.0.0.1:9696"
START_HINT = "start it with `make serve` (or set PREDICTOR_URL to where it runs)"


class PredictorError(Exception):
    """Any failure to get an answer from the predictor."""


class PredictorUnavailable(PredictorError):
    """The API cannot be reached (refused, timed out) or has no model loaded."""


class PredictorRejected(PredictorError):
    """A 4xx answer: the request was refused, `detail` lists the fields at fault."""

    def __init__(self, status: int, error: str, detail: list[dict[str, Any]] | None = None):
        self.status, self.error, self.detail = status, error, list(detail or [])
        fields = "; ".join(f"{d.get('field', '?')}: {d.get('message', '')}" for d in self.detail)
        super().__init__(
            f"The predictor rejected the request ({status} {error})" + (f": {fields}" if fields else "")
        )

    @property
    def fields(self) -> list[str]:
        return [str(d.get("field", "")) for d in self.detail]


def _shift(detail: list[dict[str, Any]], offset: int) -> list[dict[str, Any]]:
    """customers.3.age in a chunk starting at `offset` → customers.{offset + 3}.age."""
    shifted = []
    for item in detail:
        match = re.fullmatch(r"customers\.(\d+)(\..*)?", str(item.get("field", "")))
        if match:
            item = {**item, "field": f"customers.{offset + int(match[1])}{match[2] or ''}"}
        shifted.append(item)
    return shifted


class PredictorClient:
    """`predict`, `predict_batch`, `model`, `challenger` and `ready` over HTTP; errors as PredictorError
    subclasses."""

    def __init__(self, base_url: str | None = None, timeout: float = 10.0, api_key: str | None = None):
        self.base_url = (base_url or os.environ.get(URL_VARIABLE, "").strip() or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        api_key = api_key or os.environ.get(API_KEY_VARIABLE, "").strip()
        if api_key:
            self._session.headers["X-API-Key"] = api_key

    def _request(self, method: str, path: str, body: Any = None, accept: tuple[int, ...] = ()) -> dict:
        url = f"{self.base_url}{path}"
        try:
            response = self._session.request(method, url, json=body, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = "timed out" if isinstance(exc, requests.Timeout) else "refused the connection"
            raise PredictorUnavailable(
                f"The predictor API at {self.base_url} is not reachable ({reason}); {START_HINT}"
            ) from None
        except requests.RequestException as exc:
            raise PredictorError(f"Cannot call the predictor API at {self.base_url}: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.ok or response.status_code in accept:
            if not isinstance(answer, dict):
                raise PredictorError(f"The predictor API at {self.base_url} sent a non-JSON answer to {path}")
            return answer
        answer = answer if isinstance(answer, dict) else {}
        error = str(answer.get("error") or response.reason or "error")
        if response.status_code == 503:
            raise PredictorUnavailable(f"The predictor API at {self.base_url} is not ready: {error}")
        if 400 <= response.status_code < 500:
            raise PredictorRejected(response.status_code, error, answer.get("detail"))
        raise PredictorError(
            f"The predictor API at {self.base_url} failed on {path} ({response.status_code} {error})"
        )

    def predict(self, customer: dict[str, Any], explain: bool = False) -> dict:
        """Score one customer: probability, decision, threshold, model name/version (+ contributions)."""
        return self._request("POST", "/predict", {"customer": customer, "explain": explain})

    def predict_batch(
        self,
        customers: Sequence[dict[str, Any]],
        explain: bool = False,
        chunk: int = 500,
        progress: Callable[[int, int], Any] | None = None,
    ) -> dict:
        """Score many customers in chunks of at most `chunk` (smaller if the API says "at most N").

        Returns model_name, model_version, threshold (of the last chunk), request_ids and the
        predictions in input order, each with its model_version. Field paths in a rejection
        count from the start of `customers` (customers.503.age), not of the chunk.
        `progress(done, total)` is called after each chunk.
        """
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        customers = list(customers)
        predictions: list[dict] = []
        request_ids: list[str] = []
        answer: dict = {}
        start = 0
        while start < len(customers):
            part = customers[start : start + chunk]
            try:
                answer = self._request("POST", "/predict/batch", {"customers": part, "explain": explain})
            except PredictorRejected as exc:
                if exc.status == 413 and len(part) > 1:
                    limit = re.search(r"at most (\d+)", exc.error)
                    chunk = min(int(limit[1]), len(part) - 1) if limit else len(part) // 2
                    chunk = max(chunk, 1)
                    continue
                raise PredictorRejected(exc.status, exc.error, _shift(exc.detail, start)) from None
            version = answer["model_version"]
            predictions.extend({**p, "model_version": version} for p in answer["predictions"])
            request_ids.append(answer["request_id"])
            start += len(part)
            if progress is not None:
                progress(start, len(customers))
        return {
            "model_name": answer.get("model_name"),
            "model_version": answer.get("model_version"),
            "threshold": answer.get("threshold"),
            "request_ids": request_ids,
            "predictions": predictions,
        }

    def model(self) -> dict:
        """The served model: name, version, threshold, metrics, card (markdown), source."""
        return self._request("GET", "/model")

    def challenger(self) -> dict:
        """The challenger set-up (mode, share, production version, the challenger loaded or None,
        registry_error) and the comparisons `monitor` stored, newest period first (comparisons_error
        when the predictor cannot read them)."""
        return self._request("GET", "/challenger")

    def ready(self) -> dict:
        """{"ready": bool, ...}; a 503 (no model yet) is an answer here, not an error."""
        return self._request("GET", "/ready", accept=(503,))
