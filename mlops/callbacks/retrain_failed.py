"""retrain · on failure of any block: end the receiver's in-flight retraining as failed."""

from bankmarketing.config import Settings
from bankmarketing.retrain import report_status

if "on_failure" not in globals():
    from mage_ai.data_preparation.decorators import on_failure


@on_failure
def retrain_failed(*args, **kwargs):
    # read the id alone: the failure may be the variables themselves
    detail = f"block {kwargs.get('block_uuid')} failed"
    report_status(Settings.from_env(), kwargs.get("retraining_id"), "failed", detail)
