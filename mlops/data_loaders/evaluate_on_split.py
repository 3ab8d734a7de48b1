"""test · 1: score a held-out split with the production model; metrics to MLflow and the database."""

from bankmarketing.config import Settings
from bankmarketing.holdout import TestOptions, evaluate_split
from bankmarketing.options import parse_options

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def evaluate_on_split(*args, **kwargs):
    options = parse_options(TestOptions, kwargs)  # bad runtime variables stop here
    return evaluate_split(Settings.from_env(), options)
