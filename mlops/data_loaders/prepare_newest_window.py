"""retrain · 1: check the variables; prepare the reference months plus the newly labelled ones."""

from bankmarketing.config import Settings
from bankmarketing.data.prepare import prepare
from bankmarketing.options import parse_options
from bankmarketing.retrain import RetrainOptions, prepare_options, report_status

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def prepare_newest_window(*args, **kwargs):
    options = parse_options(RetrainOptions, kwargs)  # bad runtime variables stop here
    settings = Settings.from_env()
    report_status(settings, options.retraining_id, "running")
    if options.fingerprint:
        print(f"started by alert {options.alertname} ({options.fingerprint}, value {options.value})")
    manifest = prepare(settings, prepare_options(settings, options))
    months = manifest["options"]["train_months"]
    print(f"window {', '.join(months)}: {manifest['splits']['train']['rows']} training rows")
    return manifest
