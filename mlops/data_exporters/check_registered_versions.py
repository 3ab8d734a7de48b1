"""train · 3: confirm every candidate is a complete registered version; print where to look."""

from bankmarketing.config import Settings
from bankmarketing.registry import describe_versions

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def check_registered_versions(summary, *args, **kwargs):
    settings = Settings.from_env()
    report = describe_versions(settings, [c["version"] for c in summary["candidates"]])
    print(report)
    return summary
