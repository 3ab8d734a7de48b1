"""deploy · 1: check the variables; alias the newest run's best versions staging-1..n."""

from bankmarketing.config import Settings
from bankmarketing.deployment import DeployOptions, stage_candidates
from bankmarketing.options import parse_options

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def stage_candidates_block(*args, **kwargs):
    options = parse_options(DeployOptions, kwargs)  # bad runtime variables stop here
    staged = stage_candidates(Settings.from_env(), options)
    print(f"staging candidates (best first): versions {', '.join(staged)}")
    return staged
