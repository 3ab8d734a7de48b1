"""What the body bounds cost: an oversize rejection and a normal /predict, with them and without.

    .venv/app/bin/python bench/oversize.py [--kind logistic_regression] [--normal 300] [--oversize 20]

Sets up as bench/serving.py does (a real MLflow server, `prepare` on the real data, `train`
and `deploy` of one kind, all in a temporary folder), then runs the predictor under its
gunicorn config twice, one after the other: `bounds=on` as shipped (bankmarketing.web.limit_bodies)
and `bounds=off`, the same app with the body bounds taken out (Flask's MAX_CONTENT_LENGTH only,
as before). Against each, one request at a time: POST /predict with one customer (`--normal`
times), then a 5.4 MB POST /predict/batch (`--oversize` times per client: `requests`,
`urllib`, a raw socket writing the whole body before reading). Per-request ms (p50, p90) from
send to the answer read, and how many clients saw a reset instead of the 413. Ends with one
line per setting:

    oversize bench: bounds=on predict_p50_ms=X oversize_p50_ms=Y resets=0/N
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # tests.serving.http_clients: the clients the tests use
from serving import (  # noqa: E402  bench/serving.py's set-up
    DEFAULT_DATA,
    log,
    mlflow_server,
    model_name,
    predictor_server,
    prepare_data,
    register_model,
)

from tests.serving.http_clients import with_requests, with_socket, with_urllib  # noqa: E402

CLIENTS = {"requests": with_requests, "urllib": with_urllib, "socket": with_socket}


def unbounded_app():
    """The predictor without the body bounds (gunicorn loads it with --pythonpath bench)."""
    from bankmarketing.serving.app import create_app

    app = create_app()
    app.wsgi_app = app.wsgi_app.wsgi_app  # the middleware's inner app
    app.before_request_funcs[None] = [f for f in app.before_request_funcs[None] if f.__name__ != "_read_body"]
    return app


def predictor(folder: Path, uri: str, name: str, bounds: bool):
    """bench/serving.py's predictor, or the same app without the body bounds (the anchor)."""
    tag = "on" if bounds else "off"
    app = "bankmarketing.serving.app:create_app()" if bounds else "oversize:unbounded_app()"
    return predictor_server(folder, uri, name, f"predictor (bounds={tag})", tag, True, app=app)


def timed(send, *args) -> tuple[float, int]:
    """(ms, status); status 0 when the connection was reset (or the pipe broke) instead."""
    started = time.perf_counter()
    try:
        status = send(*args).status
    except (OSError, requests.ConnectionError):
        status = 0
    return (time.perf_counter() - started) * 1e3, status


def measure(base: str, customer: dict, args) -> dict:
    normal = json.dumps({"customer": customer}).encode()
    one = json.dumps(customer)
    oversize = ('{"customers": [' + ", ".join([one] * (5_400_000 // (len(one) + 2))) + "]}").encode()
    for _ in range(20):  # warm-up
        timed(with_requests, f"{base}/predict", normal)
    predict = [timed(with_requests, f"{base}/predict", normal) for _ in range(args.normal)]
    assert all(status == 200 for _, status in predict), "a normal /predict failed"
    result = {"predict": [ms for ms, _ in predict], "oversize_mb": len(oversize) / 1e6, "clients": {}}
    for kind, send in CLIENTS.items():
        answers = [timed(send, f"{base}/predict/batch", oversize) for _ in range(args.oversize)]
        result["clients"][kind] = answers
    return result


def percentiles(values: list[float]) -> str:
    if not values:
        return "p50=- p90=-"
    return f"p50={np.percentile(values, 50):.2f} p90={np.percentile(values, 90):.2f}"


def report(results: dict[str, dict], args) -> None:
    lines = []
    for tag, result in results.items():
        normal = percentiles(result["predict"])
        print(f"\nbounds={tag}: POST /predict (one customer), {args.normal} requests: ms {normal}")
        every, resets = [], 0
        for kind, answers in result["clients"].items():
            answered = [ms for ms, status in answers if status == 413]
            reset = sum(status == 0 for _, status in answers)
            other = len(answers) - len(answered) - reset
            every += answered
            resets += reset
            print(
                f"  {result['oversize_mb']:.1f} MB POST /predict/batch via {kind:8}: "
                f"413 in ms {percentiles(answered)}; reset {reset}/{len(answers)}; other {other}"
            )
        total = sum(len(a) for a in result["clients"].values())
        rejected = np.percentile(every, 50) if every else float("nan")
        lines.append(
            f"oversize bench: bounds={tag} predict_p50_ms={np.percentile(result['predict'], 50):.2f} "
            f"oversize_p50_ms={rejected:.2f} resets={resets}/{total}"
        )
    print()
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kind", default="logistic_regression", help="the model kind served")
    parser.add_argument("--normal", type=int, default=300, help="normal /predict requests per setting")
    parser.add_argument("--oversize", type=int, default=20, help="oversize requests per client and setting")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-oversize-") as folder:
        root = Path(folder)
        server, uri = mlflow_server(root / "mlflow")
        try:
            manifest, customers = prepare_data(root, args.data, uri)
            log(f"training and deploying {args.kind}")
            options = SimpleNamespace(trials=3, train_timeout=30, challenger=False)
            register_model(root, args.data, uri, manifest, args.kind, options)
            results = {}
            for bounds in (True, False):
                with predictor(root, uri, model_name(args.kind), bounds) as live:
                    results["on" if bounds else "off"] = measure(
                        f"http://127.0.0.1:{live.port}", customers[0], args
                    )
        finally:
            server.stop()
    report(results, args)


if __name__ == "__main__":
    main()
