"""train · 2: tune, calibrate, evaluate, log and register every candidate in MLflow."""

from bankmarketing.config import Settings
from bankmarketing.options import parse_options
from bankmarketing.training.train import TrainOptions, train

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def train_candidates(manifest, *args, **kwargs):
    options = parse_options(TrainOptions, kwargs)
    return train(Settings.from_env(), options, manifest)
