"""retrain · 3: stage the new versions; promote the best only if it beats production (the gate)."""

from bankmarketing.config import Settings
from bankmarketing.deployment import deploy
from bankmarketing.options import mage_run_label, parse_options
from bankmarketing.retrain import RetrainOptions, deploy_options

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def promote_if_better(trained, *args, **kwargs):
    options = parse_options(RetrainOptions, kwargs)
    settings = Settings.from_env()
    gate = deploy_options(options, mage_run_label("retrain", kwargs))
    result = deploy(settings, gate)
    print(f"{result['action']}: {result['reason']}")
    return result
