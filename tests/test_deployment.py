"""Promotion through the gate, refusal of a worse model, rollback, audit rows, model card."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace

import mlflow
import mlflow.artifacts
import mlflow.sklearn
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from bankmarketing.data import DataError
from bankmarketing.data.identity import ROW_ID, with_row_ids
from bankmarketing.data.prepare import PrepareOptions, prepare, read_prepared_split, read_split
from bankmarketing.data.split import REFERENCE_MONTHS
from bankmarketing.deployment import (
    ApproveOptions,
    ChallengerOptions,
    DeployOptions,
    RollbackOptions,
    approve,
    audit_trail,
    deploy,
    manage_challenger,
    rollback,
    stage_candidates,
)
from bankmarketing.evaluation_set import evaluation_set
from bankmarketing.features import build_features
from bankmarketing.registry import client_for, register_candidate, training_identities
from bankmarketing.training.train import TrainOptions, train, xy
from tests.conftest import migrated, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(tmp_path_factory, data_csv, mlflow_server):
    root = tmp_path_factory.mktemp("deploy")
    settings = settings_for(root, data_csv, mlflow_server.uri, f"deploy-{uuid.uuid4().hex[:6]}")
    manifest = prepare(settings, PrepareOptions())
    return settings, manifest


def register_uninformative_run(settings, manifest, scores: list[dict] | None = None) -> str:
    """A training run whose candidates predict the base rate for everyone; returns the last.

    One candidate by default, whose validation tag claims an excellent PR-AUC, so only the gate
    can stop it; `scores`: one candidate per entry, with those score tags instead.
    """
    X, y = xy(read_split(manifest, "train"))
    model = Pipeline([("features", build_features(False)), ("model", DummyClassifier(strategy="prior"))]).fit(
        X, y
    )
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(settings.experiment)
    versions = []
    with mlflow.start_run(run_name="uninformative") as parent:
        for tags in scores or [{"val_pr_auc": 0.99}]:
            with mlflow.start_run(run_name="dummy", nested=True) as run:
                info = mlflow.sklearn.log_model(model, name="model", pyfunc_predict_fn="predict_proba")
            common = {
                "candidate": "dummy",
                "run_id": run.info.run_id,
                "training_run_id": parent.info.run_id,
                "data_version": manifest["data_version"],
                "prepared_id": manifest["prepared_id"],
                "threshold": 0.5,
                "git_commit": "test",
                "synthetic": "false",
            }
            versions.append(register_candidate(info.model_uri, settings.model_name, common | tags))
    return versions[-1]


def aliases(settings) -> dict[str, str]:
    return client_for(settings.tracking_uri).get_registered_model(settings.model_name).aliases


def test_gate_promotes_better_refuses_worse_and_rollback_restores(platform):
    settings, manifest = platform
    client = client_for(settings.tracking_uri)

    dummy = register_uninformative_run(settings, manifest)
    first = deploy(settings, DeployOptions(triggered_by="test:first"))
    assert first["action"] == "promote" and first["production"] == dummy
    assert "no production version yet" in first["reason"]

    trained = train(
        settings,
        TrainOptions(
            candidates=["logistic_regression", "xgboost"],
            trials=1,
            timeout_s=10,
            cv_folds=2,
            importance_rows=300,
            ensemble_members=2,
        ),
    )
    ensemble = trained["candidates"][-1]
    assert ensemble["candidate"] == "soft_voting" and len(trained["candidates"]) == 3
    tags = client.get_model_version(settings.model_name, ensemble["version"]).tags
    assert tags["fast_path"] == "true" and tags["explanation_method"].startswith("permutation Shapley")
    assert len(json.loads(tags["cv_pr_auc_folds"])) == TrainOptions().selection_folds
    best = max(trained["candidates"], key=lambda c: c["metrics"]["cv_pr_auc"])["version"]
    second = deploy(settings, DeployOptions(triggered_by="test:second"))
    assert second["action"] == "promote" and second["production"] == best
    assert aliases(settings)["previous"] == dummy
    assert aliases(settings)["staging-1"] == best and "staging-2" in aliases(settings)

    worse = register_uninformative_run(settings, manifest)
    third = deploy(settings, DeployOptions(triggered_by="test:third"))
    assert third["action"] == "refuse" and third["candidate"] == worse
    assert third["production"] == best  # production kept
    assert client.get_model_version(settings.model_name, worse).tags["deploy_decision"] == "refuse"

    same = deploy(settings, DeployOptions(triggered_by="test:again"))
    assert same["action"] == "refuse"  # the newest run is still the worse one

    back = rollback(settings, RollbackOptions(triggered_by="test:rollback"))
    assert back["production"] == dummy and aliases(settings)["production"] == dummy
    assert "previous" not in aliases(settings)  # dummy replaced nothing
    with pytest.raises(Exception, match="nothing to roll back to"):
        rollback(settings, RollbackOptions())

    trail = audit_trail(settings, settings.model_name)
    assert trail["action"].tolist() == ["promote", "promote", "refuse", "refuse", "rollback"]
    assert trail["triggered_by"].tolist()[:3] == ["test:first", "test:second", "test:third"]
    assert trail.loc[1, "from_version"] == int(dummy) and trail.loc[1, "to_version"] == int(best)
    assert trail.loc[2, "candidate_value"] < trail.loc[2, "production_value"]
    assert all(isinstance(r, str) and r for r in trail["reason"])


def test_candidates_are_ranked_by_their_cross_validated_score_compared_fold_by_fold(platform, caplog):
    settings, manifest = platform
    settings = replace(settings, model_name=f"ranked-{uuid.uuid4().hex[:6]}")
    scores = [  # the validation split prefers the first, cross-validation the second
        {"val_pr_auc": 0.50, "val_cv_pr_auc": 0.40, "cv_pr_auc_folds": "[0.39, 0.40, 0.41]"},
        {"val_pr_auc": 0.45, "val_cv_pr_auc": 0.44, "cv_pr_auc_folds": "[0.45, 0.43, 0.44]"},
        {"val_pr_auc": 0.40, "val_cv_pr_auc": 0.43, "cv_pr_auc_folds": "[0.43, 0.44, 0.42]"},
    ]
    last = register_uninformative_run(settings, manifest, scores)
    first, second = str(int(last) - 2), str(int(last) - 1)
    with caplog.at_level("INFO", logger="bankmarketing.deployment"):
        assert stage_candidates(settings, DeployOptions()) == [second, last, first]  # the default: cv
    tags = client_for(settings.tracking_uri).get_model_version(settings.model_name, second).tags
    assert tags["staging_ranked_by"] == "val_cv_pr_auc" and tags["staging_rank"] == "1"
    lines = {line.split()[0]: line for line in caplog.text.splitlines() if line.strip().startswith("v")}
    assert "-0.0100 +- 0.0173 per fold vs the leader: within noise" in lines[f"v{last}"]
    assert "-0.0400 +- 0.0173 per fold vs the leader: beyond noise" in lines[f"v{first}"]
    assert stage_candidates(settings, DeployOptions(rank_by="validation"))[0] == first


def test_with_approval_required_the_winner_waits_for_a_person(platform):
    settings, manifest = platform
    settings = replace(settings, model_name=f"approval-{uuid.uuid4().hex[:6]}", require_approval=True)
    first = register_uninformative_run(settings, manifest)
    waiting = deploy(settings, DeployOptions(triggered_by="test:gate"))
    assert waiting["action"] == "pending" and waiting["production"] is None
    assert f"approve --version {first}" in waiting["reason"]
    assert aliases(settings) == {"approved-pending": first, "staging-1": first}
    with pytest.raises(
        DataError, match=f"version {int(first) + 1} .* is not waiting for approval \\(v{first} is\\)"
    ):
        approve(settings, ApproveOptions(version=int(first) + 1))
    approved = approve(settings, ApproveOptions(version=int(first), approver="alice"))
    assert approved["production"] == first and aliases(settings) == {"production": first, "staging-1": first}
    row = audit_trail(settings, settings.model_name).iloc[-1]
    assert (row["action"], row["triggered_by"], row["to_version"]) == ("promote", "alice", int(first))
    assert row["reason"].startswith("approved by alice; the gate: no production version yet")
    with pytest.raises(DataError, match="no version is"):
        approve(settings, ApproveOptions(version=int(first)))

    second = register_uninformative_run(settings, manifest, [{"val_pr_auc": 0.99}])
    client = client_for(settings.tracking_uri)
    client.set_registered_model_alias(settings.model_name, "approved-pending", second)  # as a gate would
    client.set_model_version_tag(settings.model_name, second, "pending_against", "999")
    with pytest.raises(DataError, match="not v999 the gate judged version .* against: run deploy again"):
        approve(settings, ApproveOptions(version=int(second)))
    assert aliases(settings)["production"] == first  # nothing moved


def test_margin_refuses_a_model_that_is_better_but_not_by_enough(platform):
    settings, manifest = platform
    settings = replace(settings, model_name=f"margin-{uuid.uuid4().hex[:6]}")
    register_uninformative_run(settings, manifest)
    deploy(settings, DeployOptions())
    train(
        settings,
        TrainOptions(
            candidates=["logistic_regression"], trials=1, timeout_s=5, cv_folds=2, importance_rows=300
        ),
    )
    refused = deploy(settings, DeployOptions(margin=0.9))
    assert refused["action"] == "refuse" and "not better by the margin" in refused["reason"]
    spread = float(re.search(r"bootstrap sd (\d\.\d+)", refused["reason"])[1])
    difference = float(re.search(r"difference ([+-]\d\.\d+)", refused["reason"])[1])
    assert 0 < spread < difference  # far better than the base rate, beyond the noise
    beyond = 1.5 * difference / spread  # sds: more than the difference
    refused = deploy(settings, DeployOptions(margin_sds=beyond))
    assert refused["action"] == "refuse" and f"+ {beyond:g} sd" in refused["reason"]
    assert deploy(settings, DeployOptions(margin_sds=0.5 * difference / spread))["action"] == "promote"


def test_the_gate_judges_on_rows_neither_version_trained_on(platform, tmp_path):
    settings, _ = platform
    settings = replace(settings, data_dir=tmp_path / "data", model_name=f"judged-{uuid.uuid4().hex[:6]}")
    migrated(settings.platform_database_url)
    options = TrainOptions(
        candidates=["logistic_regression"], trials=1, timeout_s=5, cv_folds=2, importance_rows=300
    )
    train(settings, options, prepare(settings, PrepareOptions()))
    first = deploy(settings, DeployOptions())
    assert first["action"] == "promote" and "test split" in first["reason"]
    later = PrepareOptions(train_months=[*REFERENCE_MONTHS, "jun", "jul"], holdout_months=["aug"])
    retrained = train(settings, options, prepare(settings, later))["candidates"][0]
    client = client_for(settings.tracking_uri)
    candidate = client.get_model_version(settings.model_name, retrained["version"])
    production = client.get_model_version(settings.model_name, first["production"])

    judged = evaluation_set(settings, candidate, production)
    seen = {v.version: training_identities(settings.tracking_uri, v) for v in (candidate, production)}
    assert len(judged.rows) >= 1000 and not set(judged.rows[ROW_ID]) & (
        seen[candidate.version] | seen[production.version]
    )
    assert set(judged.rows["month"]) >= {"aug", "jun", "jul"}  # the held-out month and the new test split
    test = with_row_ids(read_prepared_split(settings, candidate.tags["prepared_id"], "test"))
    assert (
        test[ROW_ID].isin(seen[production.version]).sum() > 100
    )  # the new test split holds production's rows
    assert "held-out aug" in judged.description and "trained on by neither" in judged.description

    small = deploy(settings, DeployOptions(min_evaluation_rows=len(judged.rows) + 1))
    assert small["action"] == "refuse" and small["production"] == production.version
    assert f"has {len(judged.rows):,} rows" in small["reason"] and "no promotion" in small["reason"]

    decided = deploy(settings, DeployOptions(triggered_by="test:judged"))
    row = audit_trail(settings, settings.model_name).iloc[-1]
    assert row["evaluation_set"] == judged.description and judged.description in decided["reason"]
    assert (row["evaluation_rows"], row["evaluation_subscribers"]) == (len(judged.rows), judged.positives)
    tags = client.get_model_version(settings.model_name, candidate.version).tags
    assert tags["gate_evaluation_rows"] == str(len(judged.rows))


def test_training_identities_are_recorded_and_match_the_splits(platform, tmp_path):
    settings, _ = platform
    settings = replace(settings, data_dir=tmp_path / "data", model_name=f"ids-{uuid.uuid4().hex[:6]}")
    migrated(settings.platform_database_url)
    manifest = prepare(settings, PrepareOptions())
    options = TrainOptions(
        candidates=["logistic_regression"], trials=1, timeout_s=5, cv_folds=2, importance_rows=300
    )
    version = train(settings, options, manifest)["candidates"][0]["version"]
    recorded = training_identities(
        settings.tracking_uri,
        client_for(settings.tracking_uri).get_model_version(settings.model_name, version),
    )
    parts = {name: set(read_split(manifest, name)[ROW_ID]) for name in ("train", "validation", "test")}
    assert recorded == parts["train"] | parts["validation"]
    assert not recorded & parts["test"]


def test_a_fairness_bound_refuses_a_better_model_whose_gap_is_too_large(platform):
    settings, manifest = platform
    settings = replace(settings, model_name=f"fair-{uuid.uuid4().hex[:6]}")
    dummy = register_uninformative_run(settings, manifest)  # calls nobody: every gap is 0
    bounded = DeployOptions(max_fairness_gap=0.01)
    first = deploy(settings, bounded)
    assert first["action"] == "promote" and "true_positive_rate gap 0.0000" in first["reason"]
    train(
        settings,
        TrainOptions(
            candidates=["logistic_regression"], trials=1, timeout_s=5, cv_folds=2, importance_rows=300
        ),
    )
    refused = deploy(settings, bounded)
    assert refused["action"] == "refuse" and refused["production"] == dummy
    assert "better" in refused["reason"] and "above the bound 0.0100" in refused["reason"]
    version = client_for(settings.tracking_uri).get_model_version(settings.model_name, refused["candidate"])
    gap, dimension = version.tags["fairness_true_positive_rate_gap"].split(" ", 1)
    assert float(gap) > 0.01 and f"by {dimension.strip('()')} is {float(gap):.4f}" in refused["reason"]
    loose = deploy(settings, DeployOptions(max_fairness_gap=1.0))
    assert loose["action"] == "promote" and loose["production"] == refused["candidate"]
    assert audit_trail(settings, settings.model_name)["action"].tolist() == ["promote", "refuse", "promote"]


def test_a_latency_budget_refuses_a_better_model_that_serves_too_slowly(platform):
    settings, manifest = platform
    settings = replace(settings, model_name=f"latency-{uuid.uuid4().hex[:6]}")
    dummy = register_uninformative_run(settings, manifest)
    unmeasured = deploy(settings, DeployOptions(max_serving_ms=50.0))
    assert unmeasured["action"] == "refuse" and "has no measured serving time" in unmeasured["reason"]
    deploy(settings, DeployOptions())  # no budget: the dummy is promoted
    train(
        settings,
        TrainOptions(
            candidates=["logistic_regression"], trials=1, timeout_s=5, cv_folds=2, importance_rows=300
        ),
    )
    client = client_for(settings.tracking_uri)
    newest = max(int(v.version) for v in client.search_model_versions(f"name='{settings.model_name}'"))
    tags = client.get_model_version(settings.model_name, str(newest)).tags
    measured = float(tags["serving_ms"])  # recorded by train: the compiled scorer, one customer
    assert 0 < measured < 50 and tags["fast_path"] == "true" and tags["explanation_method"] == "linear terms"
    refused = deploy(settings, DeployOptions(max_serving_ms=measured / 2))
    assert refused["action"] == "refuse" and refused["production"] == dummy
    assert f"serves one customer in {measured:.3f} ms, above the budget" in refused["reason"]
    within = deploy(settings, DeployOptions(max_serving_ms=measured * 2))
    assert within["action"] == "promote" and f"within {measured * 2:g} ms" in within["reason"]
    card = client.get_model_version(settings.model_name, within["candidate"]).description
    assert f"One customer scored in **{measured:.3f} ms**" in card and "linear terms" in card


def test_a_challenger_is_set_beside_production_then_withdrawn_or_promoted_through_the_gate(platform):
    settings, manifest = platform
    settings = replace(settings, model_name=f"challenge-{uuid.uuid4().hex[:6]}")
    dummy = register_uninformative_run(settings, manifest)
    as_challenger = DeployOptions(role="challenger", triggered_by="test:challenge")
    alone = deploy(settings, as_challenger)
    assert alone["action"] == "refuse" and "no production version to challenge" in alone["reason"]
    assert alone["challenger"] is None and "production" not in aliases(settings)
    deploy(settings, DeployOptions())
    assert deploy(settings, as_challenger)["action"] == "keep"  # production itself is no challenger
    train(
        settings,
        TrainOptions(
            candidates=["logistic_regression"], trials=1, timeout_s=5, cv_folds=2, importance_rows=300
        ),
    )
    bounded = deploy(settings, DeployOptions(role="challenger", max_fairness_gap=0.01))
    assert bounded["action"] == "refuse" and "refused, no challenger set" in bounded["reason"]
    challenged = deploy(settings, as_challenger)
    candidate = challenged["candidate"]
    assert challenged["action"] == "challenge" and "set as challenger" in challenged["reason"]
    assert aliases(settings)["challenger"] == candidate and aliases(settings)["production"] == dummy
    card = client_for(settings.tracking_uri).get_model_version(settings.model_name, candidate).description
    assert "## Fairness by segment" in card  # the challenger's card, before it serves anyone
    shown = manage_challenger(settings, ChallengerOptions(action="show"))
    assert shown == {"challenger": candidate, "production": dummy, "comparisons": [], "chart": None}
    with pytest.raises(DataError, match=f"no comparison of production v{dummy} and challenger v{candidate}"):
        manage_challenger(settings, ChallengerOptions(action="show", chart="unused.png"))

    withdrawn = manage_challenger(settings, ChallengerOptions(action="withdraw", triggered_by="test:w"))
    assert withdrawn["action"] == "withdraw" and "challenger" not in aliases(settings)
    with pytest.raises(DataError, match="has no challenger: deploy with role challenger first"):
        manage_challenger(settings, ChallengerOptions(action="promote"))

    deploy(settings, as_challenger)
    kept = manage_challenger(settings, ChallengerOptions(action="promote", margin=0.9))
    assert kept["action"] == "refuse" and aliases(settings)["challenger"] == candidate  # the gate holds
    promoted = manage_challenger(settings, ChallengerOptions(action="promote", triggered_by="test:p"))
    assert promoted["action"] == "promote" and promoted["production"] == candidate
    assert "challenger" not in aliases(settings) and aliases(settings)["previous"] == dummy
    trail = audit_trail(settings, settings.model_name)
    assert trail["action"].tolist() == [
        "refuse",
        "promote",
        "keep",
        "refuse",
        "challenge",
        "withdraw",
        "challenge",
        "refuse",
        "promote",
    ]
    assert trail["triggered_by"].tolist()[-4:-2] == ["test:w", "test:challenge"]


def test_model_card_of_the_promoted_version(platform):
    settings, _ = platform
    client = client_for(settings.tracking_uri)
    production = client.get_model_version_by_alias(settings.model_name, "production")
    promoted = [
        v
        for v in client.search_model_versions(f"name='{settings.model_name}'")
        if v.tags.get("candidate") != "dummy" and v.tags.get("deploy_decision") == "promote"
    ]
    assert promoted, production
    card = client.get_model_version(settings.model_name, promoted[0].version).description
    for expected in [
        "# Model card",
        "## Data",
        promoted[0].tags["data_version"],
        "## Intended use",
        "`duration`",
        "only known after the call",
        "## Metrics on the test split",
        "baseline",
        "## Calibration",
        "### age band",
        "### job",
        "### contact",
        "## Fairness by segment",
        "| age band | true_positive_rate |",
        "| job group | selection_rate |",
        "| marital | calibration |",
        "## Limits",
    ]:
        assert expected in card, expected
    path = mlflow.artifacts.download_artifacts(
        run_id=promoted[0].run_id, artifact_path="model_card.md", tracking_uri=settings.tracking_uri
    )
    assert open(path).read() == card
