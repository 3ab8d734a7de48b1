"""The `retrain` stage: prepare the newest window, train, and promote only through the gate.

Started by the alert receiver (with the alert as variables), by hand, or on a schedule. The
newest window is the reference months plus the later months whose outcomes are known, plus
the logged predictions whose call outcomes were loaded since (`outcomes`).
"""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import Field, field_validator

from bankmarketing.config import Settings
from bankmarketing.data.prepare import PrepareOptions, prepare
from bankmarketing.data.schema import MONTHS
from bankmarketing.data.split import CALENDAR, LATER_MONTHS, REFERENCE_MONTHS
from bankmarketing.database import engine_for, monitoring_performance
from bankmarketing.deployment import DeployOptions, deploy
from bankmarketing.options import StageOptions, only_known
from bankmarketing.predictions.outcomes import labelled_predictions
from bankmarketing.training.train import TrainOptions, train


class RetrainOptions(StageOptions):
    """Parameters of `retrain`; the alert fields are filled by the alert receiver."""

    add_months: list[str] = Field(
        [], description="later months to add to the window; default: through the alert's period"
    )
    train: TrainOptions = Field(default_factory=TrainOptions, description="variables of train")
    deploy: DeployOptions = Field(default_factory=DeployOptions, description="variables of deploy")
    use_feedback: bool = Field(
        True, description="train also on logged predictions whose call outcomes are known, and their months"
    )
    hold_out_newest: bool = Field(
        True,
        description="hold the window's newest later month out of training: deploy's gate judges "
        "candidate and production on it (docs/deployment.md)",
    )
    # the alert that started the run
    alertname: str | None = None
    fingerprint: str | None = None
    starts_at: str | None = None
    value: float | None = None
    period: str | None = Field(None, description="the period the alert fired on")
    retraining_id: int | None = Field(None, description="the receiver's retraining row")
    triggered_by: str | None = None

    @field_validator("add_months")
    @classmethod
    def _later_months(cls, months: list[str]) -> list[str]:
        return only_known(months, LATER_MONTHS, "later month")


def labelled_months(settings: Settings) -> list[str]:
    """Later months whose outcomes `monitor` has seen (labelled batches of this model)."""
    query = sa.select(sa.distinct(monitoring_performance.c.period)).where(
        (monitoring_performance.c.model_name == settings.model_name)
        & monitoring_performance.c.period.in_(LATER_MONTHS)
    )
    with engine_for(settings.platform_database_url).connect() as connection:
        return list(connection.execute(query).scalars())


def window_months(settings: Settings, options: RetrainOptions) -> list[str]:
    """The months to train on: the reference window plus the chosen later months, in order."""
    if options.add_months:
        later = set(options.add_months)
    elif options.period in LATER_MONTHS:
        later = set(LATER_MONTHS[: LATER_MONTHS.index(options.period) + 1])
    else:
        later = set(labelled_months(settings))
    return [*REFERENCE_MONTHS, *(m for m in LATER_MONTHS if m in later)]


def prepare_options(settings: Settings, options: RetrainOptions) -> PrepareOptions:
    """The window's months, extended by the months of the labelled predictions when they are used;
    the newest month after the reference window held out for the gate (`hold_out_newest`)."""
    months = window_months(settings, options)
    if options.use_feedback:
        logged = set(labelled_predictions(settings)["month"])
        months = [*months, *(m for m in MONTHS if m in logged and m not in months)]
    later = [m for m in months if m not in REFERENCE_MONTHS]
    newest = [max(later, key=CALENDAR.index)] if later and options.hold_out_newest else []
    return PrepareOptions(
        train_months=[m for m in months if m not in newest],
        holdout_months=newest,
        feedback=options.use_feedback,
    )


def deploy_options(options: RetrainOptions, run_label: str) -> DeployOptions:
    """The gate's options, with who triggered it: the alert when there is one."""
    who = options.triggered_by or run_label
    if options.fingerprint:
        who = f"{who} (alert {options.alertname} {options.fingerprint}, period {options.period})"
    return options.deploy.model_copy(update={"triggered_by": who})


def report_status(settings: Settings, retraining_id: int | str | None, status: str, detail: str = "") -> None:
    """Tell the alert receiver's bookkeeping how the retraining it started is going."""
    if retraining_id in (None, ""):
        return
    from bankmarketing.alerts import mark_retraining

    mark_retraining(settings, int(retraining_id), status, detail)


def retrain(settings: Settings, options: RetrainOptions) -> dict:
    """Prepare the newest window, train on it and deploy through the gate (the CLI's path)."""
    report_status(settings, options.retraining_id, "running")
    try:
        manifest = prepare(settings, prepare_options(settings, options))
        trained = train(settings, options.train, manifest)
        decision = deploy(settings, deploy_options(options, "cli:retrain"))
    except Exception as exc:
        report_status(settings, options.retraining_id, "failed", str(exc)[:500])
        raise
    report_status(settings, options.retraining_id, "succeeded", f"{decision['action']}: {decision['reason']}")
    return {
        "window": manifest["options"]["train_months"],
        "training_run_id": trained["training_run_id"],
    } | decision
