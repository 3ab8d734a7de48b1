"""outcomes · 1: load call outcomes of past predictions; report how many predictions they label."""

from bankmarketing.config import Settings
from bankmarketing.options import parse_options
from bankmarketing.predictions.outcomes import OutcomesOptions, load_outcomes

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def load_call_outcomes(*args, **kwargs):
    options = parse_options(OutcomesOptions, kwargs)  # bad runtime variables stop here
    result = load_outcomes(Settings.from_env(), options)
    print(
        f"{result['loaded']} outcomes loaded from {options.path}; {result['matched_predictions']} "
        "of them label a logged prediction"
    )
    return result
