"""gunicorn settings of the alert receiver: `gunicorn -c python:bankmarketing.alerts.gunicorn_conf
'bankmarketing.alerts.app:create_app()'`. Address from ALERT_RECEIVER_HOST/PORT, workers from
ALERT_RECEIVER_WORKERS. A worker may wait on Mage's retries, hence the longer timeout.
"""

import os

bind = f"{os.environ.get('ALERT_RECEIVER_HOST', '127.0.0.1')}:{os.environ.get('ALERT_RECEIVER_PORT', '6790')}"
workers = int(os.environ.get("ALERT_RECEIVER_WORKERS", "2"))
worker_class = "sync"
timeout = 90
graceful_timeout = 30
keepalive = 5
accesslog = None
