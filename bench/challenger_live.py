"""The live challenger run of docs/challenger.md: every Jul–Nov customer through the predictor.

With the predictor serving production and a challenger in split mode (`make serve` with
PREDICTOR_CHALLENGER_MODE=split, PREDICTOR_CHALLENGER_SHARE=0.5), this sends each later month's
customers of the current prepared data in batches, each batch with its own X-Request-ID, and
writes their call outcomes keyed by the logged request ids (`<batch id>:<i>`). Then:

    make outcomes FILE=outcomes-live.csv
    make monitor VARS='{"source": "log", "alert": false}'
    make challenger

    .venv/app/bin/python bench/challenger_live.py   # --url http://127.0.0.1:9696 --batch 1000
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import requests

from bankmarketing.config import Settings
from bankmarketing.data.prepare import current_manifest, read_split
from bankmarketing.data.schema import FEATURES
from bankmarketing.data.split import LATER_MONTHS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("PREDICTOR_URL", "http://127.0.0.1:9696"))
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--outcomes", type=Path, default=Path("outcomes-live.csv"))
    parser.add_argument("--months", nargs="+", default=[m for m in LATER_MONTHS if m != "jun"])
    args = parser.parse_args(argv)
    session = requests.Session()
    if os.environ.get("PREDICTOR_API_KEY"):
        session.headers["X-API-Key"] = os.environ["PREDICTOR_API_KEY"]
    manifest = current_manifest(Settings.from_env())
    total = 0
    started = time.perf_counter()
    with open(args.outcomes, "w", newline="") as handle:
        outcomes = csv.writer(handle)
        outcomes.writerow(["request_id", "subscribed"])
        for month in args.months:
            frame = read_split(manifest, month).reset_index(drop=True)
            for start in range(0, len(frame), args.batch):
                part = frame.iloc[start : start + args.batch]
                request_id = f"live-{month}-{start // args.batch}"
                body = {"customers": part[list(FEATURES)].to_dict("records")}
                reply = session.post(
                    f"{args.url}/predict/batch", json=body, headers={"X-Request-ID": request_id}, timeout=60
                )
                if reply.status_code != 200:
                    raise SystemExit(
                        f"{request_id}: the predictor answered {reply.status_code}: {reply.text[:500]}"
                    )
                total += len(part)
                outcomes.writerows((f"{request_id}:{i}", y) for i, y in enumerate(part["y"]))
    seconds = time.perf_counter() - started
    print(f"challenger live: {total:,} customers ({', '.join(args.months)}) in {seconds:.1f} s")
    print(f"outcomes: {args.outcomes} (then: make outcomes FILE={args.outcomes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
