"""The model being served: loaded from the registry alias, cached on disk, hot-swapped."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow.artifacts
import mlflow.sklearn
from mlflow.exceptions import MlflowException

from bankmarketing.explanations import EXPLANATION_ARTIFACT
from bankmarketing.registry import alias_not_found, client_for, download_version, require_tracking_server
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
    tags: dict[str, str] = field(default_factory=dict)
    explanation: dict | None = None  # the version's global explanation, when it was logged
    loaded_at: float = field(default_factory=time.time)


#: Where the workers sharing a cache agree on the next model and the instant they switch.
SWITCH_FILE = "switch.json"
#: How often a worker looks at that file (a stat) between registry polls.
SWITCH_CHECK_S = 0.25


class ModelHolder:
    """Follows `models:/<name>@<alias>`; the swap is one reference assignment.

    With `switch_delay_s` > 0, workers sharing `cache_dir` switch together: the first to see a
    new version writes it to `switch.json` with a switch time `switch_delay_s` ahead; the others
    load it from the shared cache meanwhile, and every request that starts after that instant,
    in any worker, gets the new model. Without a delay (one process) the swap is immediate.
    An `optional` alias (the challenger) may have no version: then nothing is held, and a
    version is dropped when its alias is removed.
    """

    def __init__(
        self,
        tracking_uri: str,
        name: str,
        alias: str,
        cache_dir: Path,
        switch_delay_s: float = 0.0,
        optional: bool = False,
    ):
        self.tracking_uri, self.name, self.alias = tracking_uri, name, alias
        self.cache_dir, self.switch_delay_s, self.optional = cache_dir, switch_delay_s, optional
        self.registry_error: str | None = None
        self._current: LoadedModel | None = None
        self._pending: tuple[float, LoadedModel] | None = None  # (switch time, model)
        self._switch_seen: int | None = None  # mtime of the switch file last read
        self._lock = threading.Lock()  # one load at a time
        self._swap_lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        """The model for a request starting now (the pending one once its switch time has come)."""
        pending = self._pending
        if pending is not None and time.time() >= pending[0]:
            with self._swap_lock:
                if self._pending is pending:
                    self._current, self._pending = pending[1], None
        return self._current

    @property
    def next_switch(self) -> tuple[str, float] | None:
        """The version waiting for its switch time, and that time (epoch seconds)."""
        pending = self._pending
        return (pending[1].version, pending[0]) if pending else None

    def load_initial(self) -> None:
        """The registry's version if reachable, else the last version cached on disk."""
        try:
            self.refresh()
        except Exception as exc:  # registry down or alias missing: fall back to the cache
            self.registry_error = f"{type(exc).__name__}: {exc}"
            log.warning("registry unavailable (%s); loading the cached model", self.registry_error)
            self._current = self._load_cached()

    def _target(self) -> LoadedModel | None:
        pending = self._pending
        return pending[1] if pending else self._current

    def refresh(self) -> bool:
        """Load the alias's version beside the current one; schedule the swap if it changed."""
        with self._lock:
            require_tracking_server(self.tracking_uri, timeout_s=3)  # fail fast, no long retries
            client = client_for(self.tracking_uri)
            try:
                version = client.get_model_version_by_alias(self.name, self.alias)
            except MlflowException as exc:
                if not (self.optional and alias_not_found(exc)):
                    raise
                return self._drop()
            self.registry_error = None
            target = self._target()
            if target is not None and target.version == version.version and target.source == "registry":
                return False
            folder = self._download(version.version)
            self._download_explanation(version.version, version.run_id)
            loaded = self._load(folder, version.version, version.tags, version.description or "")
            if self._current is None or self.switch_delay_s <= 0:
                self._current, self._pending = loaded, None  # atomic: requests hold their own reference
                log.info("serving %s version %s", self.name, version.version)
            else:
                self._schedule(loaded, self._agree_switch(loaded))
            return True

    def _drop(self) -> bool:
        """The optional alias has no version: hold nothing (and cache nothing to fall back to)."""
        self.registry_error = None
        changed = self._current is not None or self._pending is not None
        self._current = self._pending = None
        (self.cache_dir / "current.json").unlink(missing_ok=True)
        if changed:
            log.info("%s has no %r version any more: not scoring with it", self.name, self.alias)
        return changed

    def follow_switch(self) -> bool:
        """Take up a switch another worker agreed on (cheap when the file has not changed)."""
        path = self.cache_dir / SWITCH_FILE
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if stamp == self._switch_seen:
            return False
        with self._lock:
            self._switch_seen = stamp
            record = json.loads(path.read_text())
            target = self._target()
            if target is not None and target.version == record["version"]:
                return False
            folder = self._download(record["version"])  # the announcing worker cached it
            loaded = self._load(folder, record["version"], record["tags"], record["card"])
            self._schedule(loaded, record["switch_at"])
            return True

    def _agree_switch(self, loaded: LoadedModel) -> float:
        """The switch time for `loaded`: the one already agreed for it, else now + the delay."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / SWITCH_FILE
        with open(self.cache_dir / ".switch.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                record = json.loads(path.read_text())
            except (FileNotFoundError, ValueError):
                record = {}
            if record.get("version") != loaded.version:
                record = {
                    "version": loaded.version,
                    "switch_at": time.time() + self.switch_delay_s,
                    "tags": loaded.tags,
                    "card": loaded.card,
                }
                partial = path.with_name(f".{SWITCH_FILE}.{os.getpid()}")
                partial.write_text(json.dumps(record))
                partial.replace(path)
            self._switch_seen = path.stat().st_mtime_ns
        return float(record["switch_at"])

    def _schedule(self, loaded: LoadedModel, switch_at: float) -> None:
        late = time.time() - switch_at
        if late > 0:
            log.warning(
                "version %s was ready %.2f s after the agreed switch time: raise the switch delay",
                loaded.version,
                late,
            )
        self._pending = (switch_at, loaded)
        log.info("serving %s version %s from %s", self.name, loaded.version, time.ctime(switch_at))

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

    def _explanation_path(self, version: str) -> Path:
        return self.cache_dir / f"{version}.{EXPLANATION_ARTIFACT}"

    def _download_explanation(self, version: str, run_id: str | None) -> None:
        """The version's global explanation beside its files, when its run has one."""
        target = self._explanation_path(version)
        if target.is_file() or not run_id:
            return
        client = client_for(self.tracking_uri)
        if EXPLANATION_ARTIFACT not in {a.path for a in client.list_artifacts(run_id)}:
            return  # a model kind without contributions, or promoted before explanations existed
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as folder:
            Path(client.download_artifacts(run_id, EXPLANATION_ARTIFACT, folder)).replace(target)

    def _load(self, folder: Path, version: str, tags: dict, card: str, source: str = "registry"):
        pipeline = mlflow.sklearn.load_model(str(folder))
        explanation_path = self._explanation_path(version)
        explanation = json.loads(explanation_path.read_text()) if explanation_path.is_file() else None
        metrics = {k: float(v) for k, v in tags.items() if k.startswith(("val_", "test_"))}
        loaded = LoadedModel(
            name=self.name,
            version=version,
            threshold=float(tags["threshold"]),
            scorer=Scorer.from_pipeline(pipeline),
            source=source,
            metrics=metrics,
            card=card,
            tags=dict(tags),
            explanation=explanation,
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
        """Poll the alias every `interval_s` seconds (and the switch file) in a daemon thread."""

        def loop() -> None:
            next_poll = time.monotonic() + interval_s
            check_s = min(SWITCH_CHECK_S, interval_s) if self.switch_delay_s > 0 else interval_s
            while not stop.wait(check_s):
                try:
                    if self.switch_delay_s > 0:
                        self.follow_switch()
                    if time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + interval_s
                        self.refresh()
                except Exception as exc:
                    self.registry_error = f"{type(exc).__name__}: {exc}"
                    log.warning("alias poll failed: %s", self.registry_error)

        thread = threading.Thread(target=loop, name="model-poller", daemon=True)
        thread.start()
        return thread
