"""monitor · 1: Evidently metrics of each period against the reference, upserted into the tables."""

from bankmarketing.config import Settings
from bankmarketing.monitoring.monitor import MonitorOptions, monitor
from bankmarketing.options import mage_run_label, parse_options

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def measure_periods(*args, **kwargs):
    options = parse_options(MonitorOptions, kwargs)  # bad runtime variables stop here
    result = monitor(Settings.from_env(), options, options.triggered_by or mage_run_label("monitor", kwargs))
    if not result["periods"]:
        print(f"nothing to measure: no {options.source} periods for {result['model_name']}")
    for p in result["periods"]:
        marked = "" if p["enough_rows"] else f"  (fewer than {p['min_rows']} rows: not tested)"
        score = "-" if p["prediction_drift_score"] is None else f"{p['prediction_drift_score']:.3f}"
        print(
            f"v{p['model_version']} {p['period']:>12}: {p['rows']:6d} rows, prediction drift {score}, "
            f"drifted columns {p['drifted_columns']}{marked}"
        )
    return result
