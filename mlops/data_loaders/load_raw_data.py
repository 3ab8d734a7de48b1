"""prepare · 1: check the pipeline variables, then load the raw customer records.

Source order: the `data_path` variable or BANK_DATA_PATH, the cache under data/raw,
a download from UCI.
"""

from bankmarketing.config import Settings
from bankmarketing.data.prepare import PrepareOptions, load
from bankmarketing.options import parse_options

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def load_raw_data(*args, **kwargs):
    options = parse_options(PrepareOptions, kwargs)  # bad runtime variables stop here
    return load(Settings.from_env(), options)
