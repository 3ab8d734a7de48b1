"""deploy · 2: give the best staged version `production` only if it beats production on test."""

from bankmarketing.config import Settings
from bankmarketing.deployment import DeployOptions, promote_best
from bankmarketing.options import mage_run_label, parse_options

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def promote_through_gate(staged, *args, **kwargs):
    who = kwargs.get("triggered_by") or mage_run_label("deploy", kwargs)
    options = parse_options(DeployOptions, kwargs | {"triggered_by": who})
    result = promote_best(Settings.from_env(), options, staged)
    print(f"{result['action']}: {result['reason']}")
    return result
