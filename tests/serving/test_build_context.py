"""The generated predictor context installs into a fresh environment and serves the same scores."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys

import mlflow.pyfunc
import numpy as np
import pytest
import requests

from bankmarketing.data.schema import FEATURES
from bankmarketing.serving.build_context import SERVING_DISTRIBUTIONS, PredictorBuildOptions, build_predictor
from tests.conftest import migrated
from tests.serving.gunicorn_process import Gunicorn
from tests.serving.test_app import customer

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1200)
def test_context_installs_fresh_and_serves_the_registry_scores(served, tmp_path):
    settings, versions, test = served
    summary = build_predictor(settings, PredictorBuildOptions(target=str(tmp_path / "ctx")))
    context = tmp_path / "ctx"
    assert summary["version"] == versions["production"]
    assert "docker build -t" in summary["image_build"] or summary["image_build"].startswith("built")

    dockerfile = (context / "Dockerfile").read_text()
    for line in [
        "FROM python:3.11-slim",
        "USER predictor",
        "HEALTHCHECK",
        "bankmarketing.serving.gunicorn_conf",
    ]:
        assert line in dockerfile
    requirements = (context / "requirements.txt").read_text().split()
    assert requirements and all("==" in r for r in requirements)
    assert not any(r.startswith("bankmarketing") for r in requirements)
    wheels = list((context / "wheels").glob("bankmarketing-*.whl"))
    assert len(wheels) == 1

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "-r", str(context / "requirements.txt")], check=True, timeout=900)
    subprocess.run([*pip, "--no-deps", str(wheels[0])], check=True, timeout=300)

    cache = tmp_path / "model-cache"
    shutil.copytree(context / "model-cache", cache)
    server = Gunicorn(
        venv / "bin",
        context,
        {
            "MODEL_NAME": settings.model_name,
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
            "PREDICTOR_CACHE_DIR": str(cache),
            "DATABASE_URL": migrated(f"sqlite:///{tmp_path}/platform.db"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            "PYTHONPATH": "",
        },
        tmp_path / "gunicorn.log",
    )
    try:
        ready = server.wait_ready()
        assert ready["source"] == "disk cache" and ready["model_version"] == versions["production"]
        records = [customer(test, i) for i in range(300)]
        scored = requests.post(f"{server.url}/predict/batch", json={"customers": records}, timeout=120)
        assert scored.status_code == 200, scored.text
        got = [p["probability"] for p in scored.json()["predictions"]]
        reference = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@production")
        expected = np.asarray(reference.predict(test[list(FEATURES)].head(300)))[:, 1]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
        metrics = requests.get(f"{server.url}/metrics", timeout=5).text
        assert 'predictor_requests_total{endpoint="/predict/batch",status="200"}' in metrics
    finally:
        server.stop()


def test_the_predictor_imports_only_what_its_image_installs():
    """Every third-party module the predictor's app and scorer import (a soft-voting model's
    classes included) comes from a distribution the generated requirements pin."""
    code = (
        "import sys, json, bankmarketing.serving.app, bankmarketing.scoring, bankmarketing.training.ensemble;"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    modules = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    owners = importlib.metadata.packages_distributions()
    installed = {_normal(name) for name in SERVING_DISTRIBUTIONS} | {"xgboost"}  # xgboost-cpu's module
    foreign = {
        module: owners[module]
        for module in modules
        if module in owners
        and module not in IMPORTED_WHEN_PRESENT | {"bankmarketing"}
        and not {_normal(name) for name in owners[module]} & installed
        and not _required_by(installed, owners[module])
    }
    assert not foreign, f"the predictor imports modules its image does not install: {foreign}"


#: Imported by a library only when installed (pandera: pyspark; joblib: psutil; setuptools' hook).
IMPORTED_WHEN_PRESENT = {"pyspark", "py4j", "psutil", "_distutils_hack"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _required_by(installed: set[str], distributions: list[str]) -> bool:
    """Whether one of `distributions` is a dependency (at any depth) of an installed one."""
    seen, todo = set(), list(installed)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [
            _normal(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r
        ]
    return any(_normal(d) in seen for d in distributions)
