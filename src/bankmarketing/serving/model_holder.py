"""The model being served: loaded from the registry alias, cached on disk, hot-swapped."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow.sklearn
from mlflow import MlflowClient

from bankmarketing.registry import download_version, require_tracking_server
from bankmarketing.scoring import Scorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """Everything a request needs, swapped as one object."""

    name: str
    version: str
    threshold: float
    scorer: Scorer
    source: str  # "registry" or "disk cache"
    metrics: dict[str, float] = field(default_factory=dict)
    card: str = ""
    loaded_at: float = field(default_factory=time.time)


class ModelHolder:
    """Follows `models:/<name>@<alias>`; the swap is one reference assignment."""

    def __init__(self, tracking_uri: str, name: str, alias: str, cache_dir: Path):
        self.tracking_uri, self.name, self.alias = tracking_uri, name, alias
        self.cache_dir = cache_dir
        self.current: LoadedModel | None = None
        self.registry_error: str | None = None
        self._lock = threading.Lock()

    def load_initial(self) -> None:
        """The registry's version if reachable, else the last version cached on disk."""
        try:
            self.refresh()
        except Exception as exc:  # registry down or alias missing: fall back to the cache
            self.registry_error = f"{type(exc).__name__}: {exc}"
            log.warning("registry unavailable (%s); loading the cached model", self.registry_error)
            self.current = self._load_cached()

    def refresh(self) -> bool:
        """Load the alias's version beside the current one and swap if it changed."""
        with self._lock:
            require_tracking_server(self.tracking_uri, timeout_s=3)  # fail fast, no long retries
            client = MlflowClient(self.tracking_uri)
            version = client.get_model_version_by_alias(self.name, self.alias)
            self.registry_error = None
            if (
                self.current is not None
                and self.current.version == version.version
                and (self.current.source == "registry")
            ):
                return False
            folder = self._download(version.version)
            loaded = self._load(folder, version.version, version.tags, version.description or "")
            self.current = loaded  # atomic: requests hold their own reference
            log.info("serving %s version %s", self.name, version.version)
            return True

    def _download(self, version: str) -> Path:
        """The version's files in the cache; workers sharing the cache never see a partial copy."""
        target = self.cache_dir / version
        if not (target / "MLmodel").is_file():
            staging = self.cache_dir / f".{version}.partial-{os.getpid()}-{threading.get_ident()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            local = download_version(self.tracking_uri, self.name, version, staging)
            try:
                local.rename(target)
            except OSError:  # another worker got there first: keep its complete copy
                pass
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return target

    def _load(self, folder: Path, version: str, tags: dict, card: str, source: str = "registry"):
        pipeline = mlflow.sklearn.load_model(str(folder))
        metrics = {k: float(v) for k, v in tags.items() if k.startswith(("val_", "test_"))}
        loaded = LoadedModel(
            name=self.name,
            version=version,
            threshold=float(tags["threshold"]),
            scorer=Scorer.from_pipeline(pipeline),
            source=source,
            metrics=metrics,
            card=card,
        )
        if source == "registry":
            record = {"version": version, "tags": tags, "card": card}
            partial = self.cache_dir / f".current.json.{os.getpid()}"
            partial.write_text(json.dumps(record))
            partial.replace(self.cache_dir / "current.json")
        return loaded

    def _load_cached(self) -> LoadedModel | None:
        record_path = self.cache_dir / "current.json"
        if not record_path.is_file():
            log.error("no cached model in %s: nothing to serve until the registry answers", self.cache_dir)
            return None
        record = json.loads(record_path.read_text())
        return self._load(
            self.cache_dir / record["version"],
            record["version"],
            record["tags"],
            record["card"],
            source="disk cache",
        )

    def follow(self, interval_s: float, stop: threading.Event) -> threading.Thread:
        """Poll the alias every `interval_s` seconds in a daemon thread."""

        def loop() -> None:
            while not stop.wait(interval_s):
                try:
                    self.refresh()
                except Exception as exc:
                    self.registry_error = f"{type(exc).__name__}: {exc}"
                    log.warning("alias poll failed: %s", self.registry_error)

        thread = threading.Thread(target=loop, name="model-poller", daemon=True)
        thread.start()
        return thread
