"""train · 1: check the pipeline variables and find the current prepared data."""

from bankmarketing.config import Settings
from bankmarketing.data.prepare import current_manifest
from bankmarketing.options import parse_options
from bankmarketing.training.train import TrainOptions

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def load_training_data(*args, **kwargs):
    parse_options(TrainOptions, kwargs)  # bad runtime variables stop here
    manifest = current_manifest(Settings.from_env())
    print(f"training on data version {manifest['data_version']} ({manifest['path']})")
    return manifest
