"""deploy · 2: give the best staged version `production` only if it beats production on test."""

from bankmarketing.config import Settings
from bankmarketing.deployment import DeployOptions, promote_best
from bankmarketing.options import parse_options

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def promote_through_gate(staged, *args, **kwargs):
    options = parse_options(DeployOptions, kwargs)
    if options.triggered_by is None:
        run = kwargs.get("pipeline_run_id") or kwargs.get("execution_date") or "cli"
        options = options.model_copy(update={"triggered_by": f"mage:deploy:{run}"})
    result = promote_best(Settings.from_env(), options, staged)
    print(f"{result['action']}: {result['reason']}")
    return result
