"""retrain · 4: record the outcome for the alert receiver (its in-flight retraining ends here)."""

from bankmarketing.config import Settings
from bankmarketing.options import parse_options
from bankmarketing.retrain import RetrainOptions, report_status

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def finish_retraining(decision, *args, **kwargs):
    options = parse_options(RetrainOptions, kwargs)
    detail = f"{decision['action']}: {decision['reason']}"
    report_status(Settings.from_env(), options.retraining_id, "succeeded", detail)
    return decision
