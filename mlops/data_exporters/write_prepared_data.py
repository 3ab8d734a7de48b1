"""prepare · 3: version, split (train/validation/test + season periods), write Parquet."""

from bankmarketing.config import Settings
from bankmarketing.data.prepare import PrepareOptions, split_and_write
from bankmarketing.options import parse_options

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def write_prepared_data(raw, clean, *args, **kwargs):
    options = parse_options(PrepareOptions, kwargs)
    manifest = split_and_write(Settings.from_env(), options, raw, clean)
    print(f"data version {manifest['data_version']} written to {manifest['path']}")
    return manifest
