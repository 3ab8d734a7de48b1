"""Promotion by registry aliases behind a gate, rollback, and the audit trail."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import Field

from bankmarketing.challenger import CHALLENGER, plot_comparisons, stored_comparisons
from bankmarketing.config import Settings
from bankmarketing.data import DataError
from bankmarketing.data.prepare import read_prepared_split, xy
from bankmarketing.database import deployment_audit, engine_for
from bankmarketing.evaluation_set import EvaluationSet, evaluation_set
from bankmarketing.explanations import EXPLANATION_ARTIFACT, global_explanation
from bankmarketing.fairness import GAP_MEASURES, fairness_gaps, fairness_rows, largest_gap
from bankmarketing.model_card import model_card
from bankmarketing.options import StageOptions
from bankmarketing.registry import COMPLETE_TAG, client_for, load_pipeline, version_behind
from bankmarketing.scoring import ExplanationUnavailable, Scorer
from bankmarketing.training.evaluation import (
    bootstrap_difference_sd,
    classification_metrics,
    paired_difference,
)
from bankmarketing.training.train import CV_FOLDS_TAG

log = logging.getLogger(__name__)
PRODUCTION, PREVIOUS = "production", "previous"
#: The gate's winner while it waits for a person (Settings.require_approval); see `approve`.
PENDING = "approved-pending"
STAGING_PREFIX = "staging-"
Metric = Literal["pr_auc", "roc_auc", "f1", "lift_top_decile"]
FairnessMeasure = Literal["selection_rate", "true_positive_rate", "calibration"]


class DeployOptions(StageOptions):
    """Parameters of `deploy` (Mage variables / CLI flags of the same names)."""

    metric: Metric = Field("pr_auc", description="the metric that ranks candidates and gates")
    rank_by: Literal["cv", "validation"] = Field(
        "cv",
        description="rank candidates by their cross-validated PR-AUC on the training split (mean "
        "over train's selection_folds), or by the validation split's metric",
    )
    margin: float = Field(
        0.0, ge=0, description="how much better than production on the evaluation set the candidate must be"
    )
    margin_sds: float = Field(
        0.0,
        ge=0,
        description="... plus this many bootstrap standard deviations of the difference (0: better is "
        "enough; 2: better beyond the noise of the evaluation rows)",
    )
    staging_count: int = Field(3, ge=1, le=10)
    triggered_by: str | None = Field(None, description="who or what started the deploy")
    predictor_dir: str = Field("build/predictor", description="where the predictor build context goes")
    build_image: bool = Field(True, description="run docker build when an engine is present")
    fairness_measure: FairnessMeasure = Field(
        "true_positive_rate", description="the measure whose gap between groups the gate can bound"
    )
    max_fairness_gap: float | None = Field(
        None,
        gt=0,
        le=1,
        description="refuse a candidate whose largest gap of that measure (age band, marital status or "
        "job group, on the test split) exceeds this; unset = report the gaps only",
    )
    max_serving_ms: float | None = Field(
        None,
        gt=0,
        description="refuse a candidate whose measured time to score one customer (its serving_ms tag, "
        "from train) exceeds this many milliseconds; unset = no latency budget",
    )
    min_evaluation_rows: int = Field(
        1000,
        ge=1,
        description="the gate decides only on at least this many rows trained on by neither version",
    )
    min_evaluation_subscribers: int = Field(
        100, ge=1, description="... holding at least this many subscribers; else no promotion"
    )
    role: Literal["production", "challenger"] = Field(
        "production",
        description="production: promote through the gate; challenger: give the best staged version "
        "the alias challenger, scored beside production (PREDICTOR_CHALLENGER_MODE) until promoted",
    )


class ChallengerOptions(DeployOptions):
    """Parameters of `challenger`: the gate's options apply to `promote`."""

    action: Literal["show", "promote", "withdraw"] = Field(
        "show", description="show it; promote it through the gate; or withdraw it (remove the alias)"
    )
    chart: str | None = Field(
        None, description="show: write a PNG chart of its stored comparisons with production here"
    )


class ApproveOptions(StageOptions):
    """Parameters of `approve`."""

    version: int = Field(ge=1, description="the version waiting for approval (alias approved-pending)")
    approver: str | None = Field(None, description="who approves; default: the user running it")


class RollbackOptions(StageOptions):
    """Parameters of `rollback`."""

    triggered_by: str | None = Field(None, description="who or what asked for the rollback")


@dataclass(frozen=True)
class Decision:
    action: Literal["promote", "refuse", "keep", "challenge", "pending"]
    candidate: str
    production: str | None
    candidate_value: float | None  # the metric on the evaluation set (None: too small to measure)
    production_value: float | None
    reason: str


def training_run_finished(client: MlflowClient, run_id: str | None) -> bool:
    """Whether a training (parent) run ended normally, i.e. after registering every candidate.

    `train` ends its parent run only after the last candidate is registered (and tags it
    `training_complete` just before). A run killed mid-way stays RUNNING, one that raised
    is FAILED: the versions it did register are never candidates.
    """
    if not run_id:
        return False
    try:
        return client.get_run(run_id).info.status == "FINISHED"
    except MlflowException:
        return False


def newest_candidates(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Complete versions registered by the newest training run that finished.

    A version is eligible only if it carries COMPLETE_TAG and its training run finished
    (status FINISHED): versions of a run that was killed, failed or is still training are
    skipped, and the newest finished run before it is used instead.
    """
    versions = [
        v for v in client.search_model_versions(f"name='{name}'") if v.tags.get(COMPLETE_TAG) == "true"
    ]
    if not versions:
        raise DataError(f"model {name!r} has no complete candidate versions: run the train pipeline")
    newest_first: dict[str, int] = {}
    for version in versions:
        run_id = version.tags.get("training_run_id", "")
        newest_first[run_id] = max(newest_first.get(run_id, 0), version.creation_timestamp)
    skipped = []
    for run_id in sorted(newest_first, key=newest_first.get, reverse=True):
        if training_run_finished(client, run_id):
            if skipped:
                log.warning("skipping versions of unfinished training run(s) %s", ", ".join(skipped))
            return [v for v in versions if v.tags.get("training_run_id") == run_id]
        skipped.append(run_id or "(none)")
    raise DataError(
        f"model {name!r} has no version from a finished training run (unfinished: {', '.join(skipped)}): "
        "run the train pipeline to the end"
    )


def mark_staging(client: MlflowClient, name: str, ranked: list[ModelVersion], count: int, key: str) -> None:
    """Aliases staging-1..count on the best `count` candidates, best first (ranked by tag `key`)."""
    for position, version in enumerate(ranked[:count], start=1):
        client.set_registered_model_alias(name, f"{STAGING_PREFIX}{position}", version.version)
        client.set_model_version_tag(name, version.version, "staging_rank", str(position))
        client.set_model_version_tag(name, version.version, "staging_ranked_by", key)


def evaluate(version: ModelVersion, pipeline, rows: pd.DataFrame) -> tuple[dict, np.ndarray]:
    """Metrics of a registered version (its fitted `pipeline`) on labelled rows at its own
    threshold, and its scores."""
    X, y = xy(rows)
    scores = pipeline.predict_proba(X)[:, 1]
    return classification_metrics(y, scores, float(version.tags["threshold"])), scores


def _record(settings: Settings, **row) -> None:
    """One audit row; the gate's columns (metric, values, margin) stay empty when not given."""
    with engine_for(settings.platform_database_url).begin() as connection:
        connection.execute(sa.insert(deployment_audit).values(at=dt.datetime.now(dt.UTC), **row))


def audit_trail(settings: Settings, model_name: str) -> pd.DataFrame:
    """Every promotion, refusal and rollback of a model, oldest first."""
    query = sa.select(deployment_audit).where(deployment_audit.c.model_name == model_name)
    with engine_for(settings.platform_database_url).connect() as connection:
        return pd.DataFrame(connection.execute(query.order_by(deployment_audit.c.id)).mappings().all())


def ranking_tag(versions: list[ModelVersion], options: DeployOptions) -> str:
    """The version tag candidates are ranked by: the cross-validated score where `train` recorded
    it for every candidate (PR-AUC only), else the validation split's."""
    cv = f"val_cv_{options.metric}"
    if options.rank_by == "cv" and versions and all(cv in v.tags for v in versions):
        return cv
    return f"val_{options.metric}"


def stage_candidates(settings: Settings, options: DeployOptions) -> list[str]:
    """Rank the newest run's versions (`ranking_tag`); alias the best staging-1..n."""
    client = client_for(settings.tracking_uri)
    candidates = newest_candidates(client, settings.model_name)
    key = ranking_tag(candidates, options)
    ranked = sorted(candidates, key=lambda v: -float(v.tags[key]))
    log.info("ranked by %s:\n%s", key, "\n".join(f"  {line}" for line in ranking_lines(ranked, key)))
    mark_staging(client, settings.model_name, ranked, options.staging_count, key)
    return [v.version for v in ranked[: options.staging_count]]


def ranking_lines(ranked: list[ModelVersion], key: str) -> list[str]:
    """One line per ranked version: its score, and against the leader fold by fold where `train`
    recorded the folds (the same for every candidate of a run)."""
    folds = {v.version: json.loads(v.tags[CV_FOLDS_TAG]) for v in ranked if CV_FOLDS_TAG in v.tags}
    leader = ranked[0] if ranked else None
    lines = []
    for version in ranked:
        line = f"v{version.version} {version.tags.get('candidate')} {float(version.tags[key]):.4f}"
        if (
            key.startswith("val_cv_")
            and version is not leader
            and {version.version, leader.version} <= set(folds)
        ):
            mean, sd, close = paired_difference(folds[version.version], folds[leader.version])
            line += (
                f" ({mean:+.4f} +- {sd:.4f} per fold vs the leader: {'within' if close else 'beyond'} noise)"
            )
        lines.append(line)
    return lines


def deploy(settings: Settings, options: DeployOptions) -> dict:
    """Stage the newest run's best candidates and promote the best through the gate."""
    return promote_best(settings, options, stage_candidates(settings, options))


def promote_best(settings: Settings, options: DeployOptions, staged: list[str]) -> dict:
    """Give the best staged version `production` if it beats production on the test split."""
    client = client_for(settings.tracking_uri)
    name = settings.model_name
    best = client.get_model_version(name, staged[0])
    test = read_prepared_split(settings, best.tags["prepared_id"], "test")
    candidate = load_pipeline(settings.tracking_uri, name, best.version)  # for scores and explanation
    X, y = xy(test)
    candidate_scores = candidate.predict_proba(X)[:, 1]
    candidate_metrics = classification_metrics(y, candidate_scores, float(best.tags["threshold"]))
    current = version_behind(client, name, PRODUCTION)
    gaps = fairness_gaps(fairness_rows(test, y, candidate_scores, float(best.tags["threshold"])))
    judged = evaluation_set(settings, best, current if current and current.version != best.version else None)
    decided = _decide(best, candidate, current, judged, options, settings.tracking_uri)
    if options.role == CHALLENGER:
        decided = _as_challenger(decided, options.metric)
    decision = _gate_latency(_gate_fairness(decided, gaps, options), best, options)
    if settings.require_approval:
        decision = _awaiting_approval(decision)
    triggered_by = options.triggered_by or f"user:{getpass.getuser()}"
    _record(
        settings,
        action=decision.action,
        model_name=name,
        from_version=int(current.version) if current else None,
        to_version=int(best.version),
        triggered_by=triggered_by,
        metric=options.metric,
        candidate_value=decision.candidate_value,
        production_value=decision.production_value,
        margin=options.margin,
        reason=decision.reason,
        evaluation_set=judged.description,
        evaluation_rows=len(judged.rows),
        evaluation_subscribers=judged.positives,
    )
    tags = {
        "deploy_decision": decision.action,
        "deploy_reason": decision.reason,
        "gate_evaluation_set": judged.description,
        "gate_evaluation_rows": len(judged.rows),
        **{f"test_{k}": round(v, 6) for k, v in candidate_metrics.items()},
        **{
            f"fairness_{measure}_gap": f"{gap:.6f} ({dimension})"
            for measure in GAP_MEASURES
            for gap, dimension in [largest_gap(gaps, measure)]
        },
    }
    for tag, value in tags.items():
        client.set_model_version_tag(name, best.version, tag, str(value))
    if decision.action == "promote":
        if current:
            client.set_registered_model_alias(name, PREVIOUS, current.version)
        client.set_registered_model_alias(name, PRODUCTION, best.version)
    elif decision.action == "challenge":
        client.set_registered_model_alias(name, CHALLENGER, best.version)
    elif decision.action == "pending":  # judged against this production; `approve` checks it still is
        client.set_registered_model_alias(name, PENDING, best.version)
        client.set_model_version_tag(
            name, best.version, "pending_against", current.version if current else "none"
        )
    if decision.action in ("promote", "challenge", "pending"):  # what it will serve: card, explanation
        explanation = explain_version(client, best, Scorer.from_pipeline(candidate), test)
        card = model_card(best, test, candidate_scores, explanation)
        client.log_text(best.run_id, card, "model_card.md")
        client.update_model_version(name, best.version, description=card)
    log.info("deploy %s: %s", decision.action, decision.reason)
    production, challenger = (version_behind(client, name, alias) for alias in (PRODUCTION, CHALLENGER))
    return {
        "action": decision.action,
        "reason": decision.reason,
        "candidate": best.version,
        "production": production.version if production else None,
        "challenger": challenger.version if challenger else None,
        "staging": staged,
        "test_metrics": candidate_metrics,
    }


def explain_version(
    client: MlflowClient, version: ModelVersion, scorer: Scorer, test: pd.DataFrame
) -> dict | None:
    """The version's global explanation on its test split, logged on its run (None: not explainable)."""
    try:
        explanation = global_explanation(scorer, test)
    except ExplanationUnavailable as exc:
        log.warning("version %s has no global explanation: %s", version.version, exc)
        return None
    client.log_text(version.run_id, json.dumps(explanation, indent=1), EXPLANATION_ARTIFACT)
    return explanation


def _as_challenger(decision: Decision, metric: str) -> Decision:
    """The gate's comparison, recorded; the candidate becomes the challenger, not production."""
    if decision.action == "keep" or decision.candidate_value is None:  # kept, or too few rows to judge
        return decision
    if decision.production is None:
        return replace(
            decision,
            action="refuse",
            reason="no production version to challenge: deploy with role production first",
        )
    return replace(
        decision,
        action="challenge",
        reason=f"candidate v{decision.candidate} {metric} {decision.candidate_value:.4f} vs "
        f"production v{decision.production} {decision.production_value:.4f}: set as challenger "
        "(the gate applies when it is promoted)",
    )


def _gate_fairness(decision: Decision, gaps: pd.DataFrame, options: DeployOptions) -> Decision:
    """A promotion (or a challenger) becomes a refusal when the candidate's largest gap exceeds the bound."""
    if decision.action not in ("promote", "challenge") or options.max_fairness_gap is None:
        return decision
    gap, dimension = largest_gap(gaps, options.fairness_measure)
    if gap <= options.max_fairness_gap:
        return replace(
            decision,
            reason=f"{decision.reason}; {options.fairness_measure} gap {gap:.4f} ({dimension}) within "
            f"{options.max_fairness_gap:.4f}",
        )
    row = gaps[(gaps["measure"] == options.fairness_measure) & (gaps["dimension"] == dimension)].iloc[0]
    between = f"{row['lowest']} vs {row['highest']}" if row["lowest"] else f"group {row['highest']}"
    return _refused(
        decision,
        f"its {options.fairness_measure} gap by {dimension} is {gap:.4f} ({between}), above the bound "
        f"{options.max_fairness_gap:.4f}",
    )


def _refused(decision: Decision, why: str) -> Decision:
    """The gate's promotion (or challenger) turned into a refusal that says why."""
    return replace(
        decision,
        action="refuse",
        reason=f"{decision.reason.removesuffix(', promoted')}; but {why}: "
        + ("refused, production kept" if decision.action == "promote" else "refused, no challenger set"),
    )


def _awaiting_approval(decision: Decision) -> Decision:
    """A promotion becomes `pending`: the version waits for a person (`approve`)."""
    if decision.action != "promote":
        return decision
    return replace(
        decision,
        action="pending",
        reason=f"{decision.reason.removesuffix(', promoted')}: waits for approval "
        f"(bankmarketing approve --version {decision.candidate})",
    )


def _gate_latency(decision: Decision, best: ModelVersion, options: DeployOptions) -> Decision:
    """A promotion (or a challenger) becomes a refusal when the candidate serves slower than the budget."""
    if decision.action not in ("promote", "challenge") or options.max_serving_ms is None:
        return decision
    measured = best.tags.get("serving_ms")
    if measured is not None and float(measured) <= options.max_serving_ms:
        return replace(
            decision,
            reason=f"{decision.reason}; serves one customer in {float(measured):.3f} ms, within "
            f"{options.max_serving_ms:g} ms",
        )
    why = (
        "has no measured serving time"
        if measured is None
        else f"serves one customer in {float(measured):.3f} ms"
    )
    return _refused(decision, f"it {why}, above the budget {options.max_serving_ms:g} ms")


def _decide(
    best, candidate, current, judged: EvaluationSet, options: DeployOptions, tracking_uri: str
) -> Decision:
    """Promote, keep or refuse, judged on rows trained on by neither version (`evaluation_set`)."""
    metric, was = options.metric, current.version if current is not None else None
    if current is not None and current.version == best.version:
        return Decision(
            "keep", best.version, was, None, None, f"version {best.version} is already in production"
        )
    too_small = judged.shortfall(options.min_evaluation_rows, options.min_evaluation_subscribers)
    if too_small:
        return Decision(
            "refuse", best.version, was, None, None, f"{too_small}: no promotion, production kept"
        )
    measured, candidate_scores = evaluate(best, candidate, judged.rows)
    value = measured[metric]
    on = f"on {judged.description}"
    if current is None:
        return Decision(
            "promote",
            best.version,
            None,
            value,
            None,
            f"no production version yet; candidate {metric} {value:.4f} {on}",
        )
    production = load_pipeline(tracking_uri, current.name, current.version)
    measured, production_scores = evaluate(current, production, judged.rows)
    production_value = measured[metric]
    spread = bootstrap_difference_sd(
        xy(judged.rows)[1],
        candidate_scores,
        production_scores,
        metric,
        (float(best.tags["threshold"]), float(current.tags["threshold"])),
    )
    required = production_value + options.margin + options.margin_sds * spread
    verdict = (
        f"candidate v{best.version} {metric} {value:.4f} vs production v{current.version} "
        f"{production_value:.4f} {on}: difference {value - production_value:+.4f}, bootstrap sd "
        f"{spread:.4f} (+ margin {options.margin:.4f}"
        + (f" + {options.margin_sds:g} sd" if options.margin_sds else "")
        + ")"
    )
    if value > required:
        return Decision("promote", best.version, was, value, production_value, f"{verdict}: better, promoted")
    return Decision(
        "refuse",
        best.version,
        was,
        value,
        production_value,
        f"{verdict}: not better by the margin, production kept",
    )


def approve(settings: Settings, options: ApproveOptions) -> dict:
    """Give the version waiting for approval `production`, as the gate decided, with the approver
    in the audit row. Refused when it is not the waiting version, or when production changed
    since the gate compared them (deploy again)."""
    client = client_for(settings.tracking_uri)
    name, version = settings.model_name, str(options.version)
    pending, current = version_behind(client, name, PENDING), version_behind(client, name, PRODUCTION)
    if pending is None or pending.version != version:
        waiting = f"v{pending.version} is" if pending else "no version is"
        raise DataError(f"version {version} of {name!r} is not waiting for approval ({waiting})")
    judged_against = pending.tags.get("pending_against", "none")
    if judged_against != (current.version if current else "none"):
        raise DataError(
            f"production is v{current.version if current else 'none'}, not v{judged_against} the gate "
            f"judged version {version} against: run deploy again"
        )
    approver = options.approver or f"user:{getpass.getuser()}"
    if current:
        client.set_registered_model_alias(name, PREVIOUS, current.version)
    client.set_registered_model_alias(name, PRODUCTION, version)
    client.delete_registered_model_alias(name, PENDING)
    client.set_model_version_tag(name, version, "deploy_decision", "promote")
    client.set_model_version_tag(name, version, "approved_by", approver)
    reason = f"approved by {approver}; the gate: {pending.tags.get('deploy_reason', '')}"
    _record(
        settings,
        action="promote",
        model_name=name,
        from_version=int(current.version) if current else None,
        to_version=int(version),
        triggered_by=approver,
        reason=reason,
    )
    return {"action": "promote", "reason": reason, "production": version}


def rollback(settings: Settings, options: RollbackOptions) -> dict:
    """Move `production` back to `previous`; `previous` moves to the one before it."""
    triggered_by = options.triggered_by
    client = client_for(settings.tracking_uri)
    name = settings.model_name
    current = version_behind(client, name, PRODUCTION)
    target = version_behind(client, name, PREVIOUS)
    if current is None or target is None:
        raise DataError(
            f"nothing to roll back to: model {name!r} has no "
            f"{'production' if current is None else 'previous'} alias"
        )
    trail = audit_trail(settings, name)
    promoted_target = trail[(trail["action"] == "promote") & (trail["to_version"] == int(target.version))]
    before = promoted_target["from_version"].dropna().tolist()
    client.set_registered_model_alias(name, PRODUCTION, target.version)
    if before:
        client.set_registered_model_alias(name, PREVIOUS, str(int(before[-1])))
    else:
        client.delete_registered_model_alias(name, PREVIOUS)
    reason = f"rolled back from v{current.version} to v{target.version}"
    _record(
        settings,
        action="rollback",
        model_name=name,
        from_version=int(current.version),
        to_version=int(target.version),
        triggered_by=triggered_by or f"user:{getpass.getuser()}",
        reason=reason,
    )
    client.set_model_version_tag(name, current.version, "rolled_back", dt.datetime.now(dt.UTC).isoformat())
    return {
        "action": "rollback",
        "reason": reason,
        "production": target.version,
        "previous": str(int(before[-1])) if before else None,
    }


def manage_challenger(settings: Settings, options: ChallengerOptions) -> dict:
    """Show the challenger, promote it through the same gate as `deploy`, or withdraw it."""
    client = client_for(settings.tracking_uri)
    name = settings.model_name
    challenger = version_behind(client, name, CHALLENGER)
    production = version_behind(client, name, PRODUCTION)
    summary = {
        "challenger": challenger.version if challenger else None,
        "production": production.version if production else None,
    }
    if options.action == "show":
        return summary | _comparisons(settings, summary, options.chart)
    if challenger is None:
        raise DataError(f"model {name!r} has no challenger: deploy with role challenger first")
    triggered_by = options.triggered_by or f"user:{getpass.getuser()}"
    if options.action == "promote":
        gate = options.model_dump(exclude={"action", "chart"}) | {
            "role": "production",
            "triggered_by": triggered_by,
        }
        result = promote_best(settings, DeployOptions(**gate), [challenger.version])
        if result["action"] == "promote":
            client.delete_registered_model_alias(name, CHALLENGER)
            result["challenger"] = None
        return result
    client.delete_registered_model_alias(name, CHALLENGER)
    reason = f"challenger v{challenger.version} withdrawn"
    _record(
        settings,
        action="withdraw",
        model_name=name,
        from_version=int(challenger.version),
        to_version=None,
        triggered_by=triggered_by,
        reason=reason,
    )
    return summary | {"action": "withdraw", "reason": reason, "challenger": None}


def _comparisons(settings: Settings, summary: dict, chart: str | None) -> dict:
    """The stored comparisons of the current production and challenger; a chart if asked for."""
    pair = (summary["production"], summary["challenger"])
    found = [
        c
        for c in stored_comparisons(settings.platform_database_url, settings.model_name)
        if (str(c["production_version"]), str(c["challenger_version"])) == pair
    ]
    if chart:
        if not any(c.get("roc_auc_difference") is not None for c in found):
            raise DataError(
                f"no comparison of production v{pair[0]} and challenger v{pair[1]} is stored: run monitor "
                "(batch periods, or the prediction log once outcomes are loaded) first"
            )
        title = f"{settings.model_name}: challenger v{pair[1]} vs production v{pair[0]}"
        plot_comparisons(found, Path(chart), title)
    return {"comparisons": found, "chart": chart}
