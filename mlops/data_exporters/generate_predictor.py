"""deploy · 3: write the predictor's build context for production; build it if Docker runs."""

from bankmarketing.config import Settings
from bankmarketing.deployment import DeployOptions
from bankmarketing.options import parse_options
from bankmarketing.serving.build_context import PredictorBuildOptions, build_predictor

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def generate_predictor(result, *args, **kwargs):
    options = parse_options(DeployOptions, kwargs)
    build = PredictorBuildOptions(target=options.predictor_dir, build_image=options.build_image)
    summary = build_predictor(Settings.from_env(), build)
    print(f"predictor build context for version {summary['version']}: {summary['context']}")
    print(summary.get("image_build", "image build skipped"))
    return result | {"predictor": summary}
