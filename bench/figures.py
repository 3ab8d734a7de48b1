"""`make figures`: README's rows that `make demo` measures, regenerated from what it stored.

After `make demo` (the stack up, its registry and platform database filled), this reads the
registry and the platform tables and rewrites the README rows marked `<!-- figures:NAME -->`:

- `candidates`: the newest run's candidates as `deploy` ranks them (cross-validated PR-AUC on
  the training split's selection folds, each against the leader fold by fold), the version in
  production and its figures on the test split (`test on test`);
- `drift`: the production version's prediction drift per season period (`monitor`).

    .venv/app/bin/python bench/figures.py            # prints the rows and rewrites README.md
    .venv/app/bin/python bench/figures.py --check    # exit 1 if README.md differs from them

Rows from other commands (benches, manual runs) name their command beside them in README.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from bankmarketing.config import Settings
from bankmarketing.demo import latest_candidates, latest_evaluation, stored_drift
from bankmarketing.training.evaluation import paired_difference
from bankmarketing.training.train import CV_FOLDS_TAG

README = Path(__file__).resolve().parents[1] / "README.md"
KIND_NAMES = {
    "hist_gradient_boosting": "hist. gradient boosting",
    "xgboost": "XGBoost",
    "random_forest": "random forest",
    "logistic_regression": "logistic regression",
    "mlp": "MLP",
    "svc": "SVC",
}


def _kind(version) -> str:
    return KIND_NAMES.get(version.tags.get("candidate", "?"), version.tags.get("candidate", "?"))


def _marker(name: str) -> str:
    return f"<!-- figures:{name} -->"


def candidates_row(settings: Settings) -> str:
    _, ranked, production = latest_candidates(settings)
    if not ranked:
        raise SystemExit("no registered candidates: run `make demo` first")
    leader, folds = (
        ranked[0],
        {v.version: json.loads(v.tags[CV_FOLDS_TAG]) for v in ranked if CV_FOLDS_TAG in v.tags},
    )
    others = []
    for version in ranked[1:]:
        text = f"{_kind(version)} {float(version.tags['val_cv_pr_auc']):.4f}"
        if {version.version, leader.version} <= set(folds):
            mean, sd, close = paired_difference(folds[version.version], folds[leader.version])
            text += f" ({mean:+.4f} ± {sd:.4f}, {'within' if close else 'beyond'} noise)"
        others.append(text)
    served = next((v for v in ranked if v.version == production), None)
    names = ("val_cv_pr_auc", "val_cv_pr_auc_std", "val_pr_auc", "val_roc_auc")
    tag = {name: float(leader.tags.get(name, "nan")) for name in names}
    head = (
        f"**{_kind(leader)}** v{leader.version}: CV PR-AUC {tag['val_cv_pr_auc']:.4f} ± "
        f"{tag['val_cv_pr_auc_std']:.4f} (validation {tag['val_pr_auc']:.4f}, "
        f"ROC-AUC {tag['val_roc_auc']:.4f}); " + ", ".join(others)
    )
    if served is None:
        gate = f". The gate kept production v{production} (not of this run)"
    else:
        test = latest_evaluation(settings, "test", served.version)
        on_test = (
            f" ({test['rows']:,} rows: PR-AUC {test['pr_auc']:.4f}, ROC-AUC {test['roc_auc']:.4f})"
            if test
            else ""
        )
        gate = f". In production: {_kind(served)} v{served.version}; on the test split{on_test}"
    return (
        "| the candidate `make demo` promotes (Dec–May window), as `deploy` ranks them: PR-AUC on the "
        "selection folds of the training split, per-fold difference to the leader | "
        f"{head}{gate} | `make demo`, then `make figures` {_marker('candidates')} |"
    )


def drift_row(settings: Settings) -> str:
    _, ranked, production = latest_candidates(settings)
    kind = next((_kind(v) for v in ranked if v.version == production), "an earlier run's version")
    rows = stored_drift(settings, production, source="batch")
    if not rows:
        raise SystemExit(f"no monitored periods for production v{production}: run `make demo` first")
    periods = " · ".join(
        f"{r['period']} {r['prediction_drift_score']:.3f} ({r['drifted_columns']})" for r in rows
    )
    fired = [row["period"] for row in rows if row["prediction_drift_detected"]]
    columns = rows[0]["columns"]
    return (
        f"| prediction drift per period, season scenario, production = {kind} v{production} (normed "
        f"Wasserstein distance of the score; drifted columns of {columns}) | {periods}; the rule (> 0.1) "
        f"fires on {', '.join(fired) or 'no period'} | `make demo` (its `monitor` step), then `make figures` "
        f"{_marker('drift')} |"
    )


def rewrite(text: str, rows: dict[str, str]) -> str:
    """`text` with each marked row replaced; every marker must be there exactly once."""
    for name, row in rows.items():
        pattern = re.compile(rf"^.*{re.escape(_marker(name))}.*$", re.M)
        if len(pattern.findall(text)) != 1:
            raise SystemExit(f"README.md must hold the marker {_marker(name)} on exactly one row")
        text = pattern.sub(lambda _, row=row: row, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md differs, change nothing")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    rows = {"candidates": candidates_row(settings), "drift": drift_row(settings)}
    print("\n".join(rows.values()))
    before = README.read_text()
    after = rewrite(before, rows)
    if args.check:
        return int(after != before)
    README.write_text(after)
    print(f"README.md: {'rewrote' if after != before else 'already had'} {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
