"""The local stack: `make up` starts every service healthy, real browsers use the UIs, `make down` cleans up.

Chromium is Debian's (/usr/bin/chromium) driven by Playwright; screenshots go to SCREENSHOT_DIR
(`make screenshots`: images/, from a model trained with `train`'s default search), else to a
temporary folder.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from bankmarketing.data.prepare import PrepareOptions, current_manifest, prepare, read_split
from bankmarketing.data.schema import FEATURES
from bankmarketing.deployment import DeployOptions, deploy
from bankmarketing.services import STACK, STACK_MARKER, health_urls, local_secrets, stack_environment
from bankmarketing.training.train import TrainOptions, train
from tests.conftest import REPO, free_port, settings_for

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PIPELINES = ("prepare", "train", "deploy", "test", "monitor", "retrain", "outcomes")


def test_local_secrets_are_generated_once_and_kept(tmp_path):
    first = local_secrets({}, tmp_path)
    assert sorted(first) == sorted(
        [
            "ALERT_RECEIVER_TOKEN",
            "MAGE_RETRAIN_TRIGGER_TOKEN",
            "PREDICTOR_ADMIN_TOKEN",
            "DEFAULT_OWNER_PASSWORD",
            "MAGE_JWT_SECRET",
        ]
    )
    assert all(len(value) >= 32 for value in first.values())
    assert local_secrets({}, tmp_path) == first  # the same on the next `make up`
    assert (tmp_path / "local-secrets.env").stat().st_mode & 0o077 == 0
    given = local_secrets({"ALERT_RECEIVER_TOKEN": "from-the-environment-0123456789"}, tmp_path)
    assert "ALERT_RECEIVER_TOKEN" not in given  # the environment wins


def test_a_placeholder_secret_stops_the_stack(tmp_path):
    with pytest.raises(SystemExit, match=r"ALERT_RECEIVER_TOKEN is a placeholder \('CHANGE_ME'\)"):
        local_secrets({"ALERT_RECEIVER_TOKEN": "CHANGE_ME"}, tmp_path)
    with pytest.raises(SystemExit, match="DEFAULT_OWNER_PASSWORD is shorter than 16 characters"):
        local_secrets({"DEFAULT_OWNER_PASSWORD": "admin"}, tmp_path)


def test_a_callers_mlflow_run_context_does_not_reach_the_stack():
    """`mlflow.set_experiment` exports MLFLOW_EXPERIMENT_ID, `set_registry_uri` MLFLOW_REGISTRY_URI;
    the stack's new server and its clients must not see them."""
    run = {"MLFLOW_EXPERIMENT_ID": "7", "MLFLOW_RUN_ID": "abc", "MLFLOW_REGISTRY_URI": "http://127.0.0.1:9"}
    env = stack_environment(REPO, {"STACK_RUN_DIR": "/tmp/unused"} | dict(os.environ) | run)
    assert not set(run) & set(env)


def test_every_procfile_process_has_a_health_check():
    names = [
        line.split(":", 1)[0] for line in (REPO / "Procfile").read_text().splitlines() if line[:1].isalpha()
    ]
    env = stack_environment(REPO, {"STACK_RUN_DIR": "/tmp/unused"} | dict(os.environ))
    assert tuple(names) == STACK and set(health_urls(env)) == set(STACK)


def _make(target: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _alive_with_marker(marker: str) -> list[int]:
    """Live (not zombie) processes carrying the stack's marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{STACK_MARKER}={marker}".encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory, data_csv):
    """`make up` on free ports and temporary state, a promoted model in its registry; `make down` after."""
    root = tmp_path_factory.mktemp("stack")
    ports = {
        name: str(free_port()) for name in ("MLFLOW", "MAGE", "PREDICTOR", "ALERT_RECEIVER", "STREAMLIT")
    }
    model = f"stack-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        **{f"{name}_PORT": port for name, port in ports.items()},
        "STACK_RUN_DIR": str(root / "run"),
        "MLFLOW_DIR": str(root / "mlruns"),
        "MAGE_DATA_DIR": str(root / "mage"),
        "BANK_DATA_DIR": str(root / "data"),
        "BANK_DATA_PATH": str(data_csv),
        "MODEL_NAME": model,
        "MLFLOW_EXPERIMENT": model,
        "PREDICTOR_POLL_SECONDS": "2",
        "PREDICTOR_CACHE_DIR": str(root / "predictor-cache"),
    }
    for name in (
        "MLFLOW_TRACKING_URI",
        "PREDICTOR_URL",
        "ALERT_RECEIVER_URL",
        "MAGE_API_URL",
        "DATABASE_URL",
    ):
        env.pop(name, None)
    started = time.monotonic()
    result = _make("up", env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    up_seconds = time.monotonic() - started
    marker = (root / "run/stack.pid").read_text().split()[1]
    stack_env = (root / "run/stack.env").read_text()  # what `make monitor` & co. read while it runs
    assert "ALERT_RECEIVER_URL=" in stack_env and "ALERT_RECEIVER_TOKEN=" in stack_env
    service_env = stack_environment(REPO, env)
    try:
        settings = settings_for(root, data_csv, service_env["MLFLOW_TRACKING_URI"], model)
        prepare(settings, PrepareOptions())
        train(settings, STACK_TRAINING)
        deploy(settings, DeployOptions(predictor_dir=str(root / "predictor")))
        _wait_ready(service_env["PREDICTOR_URL"])
        yield {"env": env, "service_env": service_env, "settings": settings, "up_seconds": up_seconds}
    finally:
        down = _make("down", env, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "the stack is down" in down.stdout
        assert not (root / "run/stack.env").exists()
        assert _alive_with_marker(marker) == [], "make down left processes behind"


#: The stack's model: hist. gradient boosting (the kind `make demo` promotes) with a small
#: search; with SCREENSHOT_DIR set (`make screenshots`), `train`'s defaults, as `make demo` runs.
STACK_TRAINING = (
    TrainOptions()
    if os.environ.get("SCREENSHOT_DIR")
    else TrainOptions(candidates=["hist_gradient_boosting"], trials=2, cv_folds=2, importance_rows=300)
)


def _screenshot(page, name: str, tmp_path: Path) -> None:
    """Into SCREENSHOT_DIR (`make screenshots` writes images/), else beside the test's files."""
    folder = Path(os.environ["SCREENSHOT_DIR"]) if os.environ.get("SCREENSHOT_DIR") else tmp_path
    page.screenshot(path=str(folder / name), full_page=True)


def _wait_ready(predictor_url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{predictor_url}/ready", timeout=2) as reply:
                if json.loads(reply.read())["ready"]:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError("the predictor never loaded the production model")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    yield context.new_page()
    context.close()


@pytest.mark.integration
def test_make_up_starts_every_service_healthy(stack):
    for name, url in health_urls(stack["service_env"]).items():
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert reply.status == 200, name


@pytest.mark.integration
def test_the_mage_ui_lists_every_pipeline(stack, page, tmp_path):
    env = stack["service_env"]
    page.set_viewport_size({"width": 1400, "height": 2600})  # the list shows each description in full
    page.goto(f"{env['MAGE_API_URL']}/sign-in", wait_until="networkidle")
    page.get_by_placeholder("Email").fill(env["DEFAULT_OWNER_EMAIL"])
    page.get_by_placeholder("Password").fill(env["DEFAULT_OWNER_PASSWORD"])
    page.get_by_role("button", name="Sign into Mage").click()
    page.wait_for_url("**/overview**", timeout=60_000)
    page.goto(f"{env['MAGE_API_URL']}/pipelines", wait_until="networkidle")
    for name in PIPELINES:
        page.get_by_text(name, exact=True).wait_for(state="attached", timeout=60_000)
    _screenshot(page, "mage-pipelines.png", tmp_path)


@pytest.mark.integration
def test_the_mlflow_ui_shows_the_production_alias(stack, page, tmp_path):
    env, settings = stack["service_env"], stack["settings"]
    page.goto(f"{env['MLFLOW_TRACKING_URI']}/#/models/{settings.model_name}", wait_until="networkidle")
    page.get_by_text("@ production").first.wait_for(timeout=60_000)
    _screenshot(page, "mlflow-registered-model.png", tmp_path)


def _streamlit(page, env) -> None:
    page.goto(f"http://{env['STREAMLIT_HOST']}:{env['STREAMLIT_PORT']}", wait_until="networkidle")
    page.get_by_text("Term-deposit predictor").first.wait_for(timeout=60_000)


@pytest.mark.integration
def test_the_streamlit_form_scores_and_explains_with_the_served_version(stack, page, tmp_path):
    served = json.loads(urllib.request.urlopen(f"{stack['service_env']['PREDICTOR_URL']}/model").read())
    assert served["fast_path"] and served["explainable"]
    if not os.environ.get("SCREENSHOT_DIR"):
        assert (served["kind"], served["explanation_method"]) == ("hist_gradient_boosting", "exact TreeSHAP")
    _streamlit(page, stack["service_env"])
    assert page.get_by_role("checkbox", name="Explain the score").is_checked()  # the default explains
    page.get_by_role("button", name="Score").click()
    metric = page.get_by_test_id("stMetric").filter(has_text="Probability of subscribing")
    metric.wait_for(timeout=60_000)
    value = metric.get_by_test_id("stMetricValue").inner_text()
    assert value.endswith("%") and 0 < float(value.rstrip(" %")) < 100
    page.get_by_text(f"{stack['settings'].model_name} v").first.wait_for()
    page.get_by_role("heading", name="Why").wait_for(timeout=30_000)  # the contributions chart
    output, method = served["explained_output"], served["explanation_method"]
    caption = f"Contributions to the {output} before calibration ({method})"  # unit and method, shown
    page.get_by_text(caption).wait_for()
    assert page.get_by_text("rejected").count() == 0
    page.locator("[data-testid='stVegaLiteChart'], .vega-embed").first.wait_for(timeout=30_000)
    page.set_viewport_size({"width": 1400, "height": 1700})  # Streamlit scrolls inside: show the chart
    page.get_by_role("heading", name="Why").scroll_into_view_if_needed()
    _screenshot(page, "streamlit-score-customer.png", tmp_path)


@pytest.mark.integration
def test_the_streamlit_csv_page_returns_a_scored_file(stack, page, tmp_path):
    customers = read_split(current_manifest(stack["settings"]), "test").head(25)
    upload = tmp_path / "customers.csv"
    customers.to_csv(upload, index=False)
    _streamlit(page, stack["service_env"])
    page.get_by_text("Score a file", exact=True).click()
    page.locator("input[type=file]").set_input_files(str(upload))
    page.get_by_text("Scored 25 customers").wait_for(timeout=60_000)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the scored CSV").click()
    scored = tmp_path / "scored.csv"
    download.value.save_as(scored)
    with open(scored) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 25 and {"probability", "decision", "rank", "model_version", *FEATURES} <= set(rows[0])
    assert all(0 <= float(r["probability"]) <= 1 for r in rows)
    _screenshot(page, "streamlit-score-file.png", tmp_path)
