"""prepare · 2: validate every row with the pandera contract; quarantine the bad ones."""

from bankmarketing.config import Settings
from bankmarketing.data.prepare import PrepareOptions, validate_and_quarantine
from bankmarketing.options import parse_options

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def validate_records(raw, *args, **kwargs):
    options = parse_options(PrepareOptions, kwargs)
    return validate_and_quarantine(Settings.from_env(), options, raw)
