"""retrain · on failure of any block: end the receiver's in-flight retraining as failed.

Mage runs callbacks for runs of its scheduler (API triggers, the UI), not for `mage run`.
"""

from bankmarketing.config import Settings
from bankmarketing.retrain import report_status

if "on_failure" not in globals():
    from mage_ai.data_preparation.decorators import on_failure


@on_failure
def retrain_failed(*args, **kwargs):
    error = kwargs.get("__error")
    detail = f"{type(error).__name__}: {error}" if error else "a block failed"
    # read the id alone: the failure may be in the variables themselves
    report_status(Settings.from_env(), kwargs.get("retraining_id"), "failed", detail[:1000])
