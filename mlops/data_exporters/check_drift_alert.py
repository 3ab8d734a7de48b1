"""monitor · 2: the prediction-drift rule; without Grafana, post its alert to the receiver."""

from bankmarketing.config import Settings
from bankmarketing.monitoring.alerting import post_drift_alert
from bankmarketing.monitoring.monitor import MonitorOptions
from bankmarketing.options import parse_options

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def check_drift_alert(result, *args, **kwargs):
    options = parse_options(MonitorOptions, kwargs)
    outcome = post_drift_alert(Settings.from_env(), options, result)
    print(outcome)
    return outcome
