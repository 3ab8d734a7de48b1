"""Drift check for CI: run `bankmarketing monitor` (the monitor pipeline's two blocks, as the
CLI runs them), keep its JSON result, and say whether the prediction-drift alert fired.

    python .ci/drift_check.py --bankmarketing .venv/mage/bin/bankmarketing \
        --output .run/drift-check.json [--vars '{"source": "log"}']

`--vars` takes the monitor pipeline's variables as JSON (the `make monitor VARS=...` form);
each becomes the CLI flag of the same name. Writes `--output` (the monitor's JSON result),
an issue title and body beside it (`*.title`, `*.md`) when the alert fired, and `fired`,
`period`, `value`, `threshold`, `model_name`, `model_version`, `title` to $GITHUB_OUTPUT
when GitHub Actions sets it. Exit status: the monitor's (0 whether or not drift fired).
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DEFAULT_THRESHOLD = 0.1  # MonitorOptions.prediction_threshold and Grafana's rule


def cli_flags(variables: dict) -> list[str]:
    """Pipeline variables → `bankmarketing monitor` flags (lists comma-separated)."""
    flags = []
    for name, value in variables.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            raise SystemExit(f"variable {name!r}: a mapping is not a monitor variable")
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def last_json_object(text: str) -> dict:
    """The CLI prints its result as indented JSON last; anything a library printed comes before."""
    starts = [i for i, line in enumerate(text.splitlines()) if line == "{"]
    lines = text.splitlines()
    for start in reversed(starts):
        try:
            value = json.loads("\n".join(lines[start:]))
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("no JSON result in the monitor's output")


def summary(result: dict, variables: dict) -> dict:
    """fired, period, value, threshold and the firing period's details, from the result."""
    alert = result.get("alert") or {}
    firing = result.get("firing") or {}
    threshold = firing.get("prediction_drift_threshold") or variables.get("prediction_threshold")
    fired = bool(alert.get("fired"))
    out = {
        "fired": fired,
        "period": alert.get("period") or "",
        "value": alert.get("value") if fired else "",
        "threshold": threshold if threshold is not None else DEFAULT_THRESHOLD,
        "model_name": result.get("model_name", ""),
        "model_version": firing.get("model_version", ""),
        "posted": alert.get("posted", False),
    }
    out["title"] = (
        f"Prediction drift: {out['model_name']} v{out['model_version']}, period {out['period']}"
        if fired
        else ""
    )
    return out


def issue_body(result: dict, facts: dict, run_url: str | None) -> str:
    firing = result.get("firing") or {}
    value = facts["value"]
    lines = [
        f"The scheduled drift check found prediction drift **{value:.4f}** above the threshold "
        f"**{facts['threshold']}** for model `{facts['model_name']}` version `{facts['model_version']}` "
        f"in period `{facts['period']}`.",
        "",
        "| | |",
        "|---|---|",
        f"| period | `{facts['period']}` "
        f"({firing.get('period_start', '?')} – {firing.get('period_end', '?')}) |",
        f"| rows | {firing.get('rows', '?')} |",
        f"| prediction drift (normed Wasserstein) | {value:.4f} |",
        f"| PSI of the score | {firing.get('prediction_psi', '?')} |",
        f"| drifted columns | {firing.get('drifted_columns', '?')} of {firing.get('columns', '?')} |",
        f"| missing values share | {firing.get('missing_values_share', '?')} |",
        f"| posted to the alert receiver | {facts['posted']} |",
        "",
        'What to do: docs/runbook.md, section "An alert fired" — check the Grafana dashboard '
        '"Bank marketing monitoring" at this period, then the retraining '
        '(`make retrain VARS=\'{"period": "' + str(facts["period"]) + "\"}'` or the Retrain workflow).",
    ]
    if run_url:
        lines += ["", f"Workflow run (the monitor's JSON result is attached as an artifact): {run_url}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bankmarketing", default=".venv/mage/bin/bankmarketing", help="the Mage env's CLI")
    parser.add_argument("--output", type=Path, default=Path(".run/drift-check.json"))
    parser.add_argument("--vars", default="", help="monitor pipeline variables as JSON")
    parser.add_argument("--result", type=Path, help="read a saved monitor result instead of running it")
    args = parser.parse_args(argv)
    variables = json.loads(args.vars) if args.vars.strip() else {}
    if not isinstance(variables, dict):
        raise SystemExit("--vars must be a JSON object")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.result:
        result = json.loads(args.result.read_text())
    else:
        command = [args.bankmarketing, "monitor", *cli_flags(variables)]
        print("+", " ".join(command), flush=True)
        run = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(run.stdout)
        if run.returncode != 0:
            print(f"monitor failed with exit status {run.returncode}", file=sys.stderr)
            return run.returncode
        result = last_json_object(run.stdout)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    facts = summary(result, variables)
    title_file, body_file = args.output.with_suffix(".title"), args.output.with_suffix(".md")
    if facts["fired"]:
        run_url = None
        if os.environ.get("GITHUB_RUN_ID"):
            run_url = (
                f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/"
                f"{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
            )
        title_file.write_text(facts["title"] + "\n")
        body_file.write_text(issue_body(result, facts, run_url))
        print(f"DRIFT: {facts['title']}: {facts['value']:.4f} > {facts['threshold']}")
    else:
        title_file.unlink(missing_ok=True)
        body_file.unlink(missing_ok=True)
        print(f"no drift alert: {(result.get('alert') or {}).get('reason', 'the rule did not fire')}")
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with open(github_output, "a") as handle:
            for key in ("fired", "period", "value", "threshold", "model_name", "model_version", "title"):
                value = facts[key]
                handle.write(f"{key}={str(value).lower() if isinstance(value, bool) else value}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
