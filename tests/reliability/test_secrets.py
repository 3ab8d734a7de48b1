"""Secrets and access: the history scan, no default credential, admin tokens, no leaks.

Covered elsewhere, not repeated here:
- the receiver refuses CHANGE_ME, placeholders, short and missing credentials at start and
  under gunicorn: tests/test_alerts.py (test_the_receiver_refuses_to_start_without_a_real_credential,
  test_gunicorn_refuses_to_start_without_credentials); 401 on missing/wrong webhook tokens and
  on GET /alerts without the admin token: test_missing_or_wrong_token_is_401...,
  test_health_ready_listing_and_metrics;
- docker/check-secrets.sh refuses .env.example's values, CHANGE_ME, "admin", "" and short
  secrets: tests/compose/test_compose.py (test_the_secrets_check_*); every compose service
  runs as non-root: test_every_service_runs_as_a_non_root_user;
- the predictor's POST /admin/reload is 401 without or with a wrong token:
  tests/serving/test_app.py::test_reload_requires_the_admin_token.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bankmarketing.alerts import ConfigurationError
from bankmarketing.alerts.app import create_app as create_receiver
from bankmarketing.services import local_secrets
from tests.conftest import ADMIN_TOKEN, REPO
from tests.serving.test_app import customer
from tests.test_alerts import ADMIN, receiver_config

SCAN = REPO / ".ci/secrets-scan.py"
#: Built at run time, so this file itself holds no key for the scanner to find.
FAKE_AWS_KEY = "AKIA" + "QYLPMN5HFIQR7XYZ"
FAKE_PRIVATE_KEY = (
    "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEow" + "IBAAKCAQEA" * 6 + "\n-----END RSA PRIVATE KEY-----\n"
)


def scan(repo) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCAN), "--repo", str(repo)], capture_output=True, text=True, timeout=300
    )


def test_the_whole_history_of_this_repository_has_no_secret():
    result = scan(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no secrets found" in result.stderr
    print(result.stderr.strip())


def test_a_key_planted_in_an_old_commit_and_deleted_since_is_found(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.invalid")
    git("config", "user.name", "t")
    (tmp_path / "README.md").write_text("hello\n")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    (tmp_path / "deploy.cfg").write_text(f"aws_access_key_id = {FAKE_AWS_KEY}\n")
    (tmp_path / "id_rsa").write_text(FAKE_PRIVATE_KEY)
    git("add", ".")
    git("commit", "-q", "-m", "oops")
    git("rm", "-q", "deploy.cfg", "id_rsa")
    git("commit", "-q", "-m", "remove them")
    (tmp_path / "README.md").write_text("hello again\n")
    git("commit", "-q", "-am", "later")
    assert not (tmp_path / "deploy.cfg").exists()
    result = scan(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"path": "deploy.cfg"' in result.stdout and "AWS Access Key" in result.stdout
    assert '"path": "id_rsa"' in result.stdout and "Private Key" in result.stdout
    assert "2 secret(s) found" in result.stderr


@pytest.mark.parametrize("value", ["admin", "", "CHANGE_ME", "token"])
@pytest.mark.parametrize("credential", ["token", "admin_token", "mage_token"])
def test_the_receiver_refuses_default_credentials(settings, credential, value):
    overrides = {credential: value}
    with pytest.raises(ConfigurationError):
        create_receiver(settings, receiver_config("http://127.0.0.1:9", **overrides))


def test_the_local_stacks_mage_owner_password_is_generated_never_admin(tmp_path):
    generated = local_secrets({}, tmp_path)["DEFAULT_OWNER_PASSWORD"]
    assert generated.lower() not in {"admin", "password", "changeme", "change_me"}
    assert len(generated) >= 32


LEAK = "/srv/secret/path/model.pkl: ValueError boom"


@pytest.mark.integration
def test_the_predictor_never_echoes_paths_traces_or_exception_text(app_factory, served):
    app = app_factory()
    client = app.test_client()
    scorer = app.extensions["bankmarketing"]["holder"].current.scorer

    def explode(records):
        raise ValueError(LEAK)

    original, scorer.score_records = scorer.score_records, explode
    try:
        response = client.post("/predict", json={"customer": customer(served[2])})
    finally:
        scorer.score_records = original
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert response.get_json() == {"error": "internal error", "detail": []}
    for leak in ("Traceback", "/srv/", "ValueError", "boom", str(REPO), ".py"):
        assert leak not in text
    assert (
        client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"}).status_code == 401
    )


def test_the_receiver_never_echoes_paths_traces_or_exception_text(settings):
    app = create_receiver(settings, receiver_config("http://127.0.0.1:9"))

    def explode():
        raise ValueError(LEAK)

    app.view_functions["ready"] = explode
    response = app.test_client().get("/ready")
    text = response.get_data(as_text=True)
    assert response.status_code >= 500 and "error" in response.get_json()
    for leak in ("Traceback", "/srv/", "ValueError", "boom", str(REPO), ".py"):
        assert leak not in text
    client = app.test_client()
    assert client.get("/alerts").status_code == 401
    assert client.get("/alerts", headers={"Authorization": f"Bearer {ADMIN}x"}).status_code == 401
    assert client.get("/alerts", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
