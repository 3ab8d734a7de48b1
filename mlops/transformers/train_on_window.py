"""retrain · 2: train every candidate on the new window (tracked in MLflow)."""

from bankmarketing.config import Settings
from bankmarketing.options import parse_options
from bankmarketing.retrain import RetrainOptions
from bankmarketing.training.train import train

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def train_on_window(manifest, *args, **kwargs):
    options = parse_options(RetrainOptions, kwargs)
    result = train(Settings.from_env(), options.train, manifest)
    for c in result["candidates"]:
        print(f"{c['candidate']:>22} -> version {c['version']}: val PR-AUC {c['metrics']['pr_auc']:.4f}")
    return result
