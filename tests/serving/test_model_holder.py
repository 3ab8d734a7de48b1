"""Workers sharing a model cache agree on one switch time for a new version."""

from __future__ import annotations

import json
import time

import pytest

from bankmarketing.registry import client_for
from bankmarketing.serving.model_holder import SWITCH_FILE, ModelHolder

pytestmark = pytest.mark.integration


def _holder(settings, cache, delay_s: float) -> ModelHolder:
    holder = ModelHolder(settings.tracking_uri, settings.model_name, "production", cache, delay_s)
    holder.load_initial()
    return holder


def test_two_workers_switch_at_the_instant_the_first_one_set(served, tmp_path):
    settings, versions, _ = served
    old, new = versions["production"], versions["other"]
    first, second = (_holder(settings, tmp_path / "cache", 2.0) for _ in range(2))
    assert first.current.version == second.current.version == old
    registry = client_for(settings.tracking_uri)
    registry.set_registered_model_alias(settings.model_name, "production", new)
    try:
        seen_at = time.time()
        assert first.refresh() and second.follow_switch()  # the second learns it from the cache
        assert not second.refresh()  # its own poll then finds the switch already agreed
        record = json.loads((tmp_path / "cache" / SWITCH_FILE).read_text())
        assert record["version"] == new and seen_at + 2.0 <= record["switch_at"] <= seen_at + 6.0
        assert first.next_switch == second.next_switch == (new, record["switch_at"])
        assert first.current.version == second.current.version == old  # until the switch time
        time.sleep(max(0.0, record["switch_at"] - time.time()) + 0.01)
        assert first.current.version == second.current.version == new
        assert first.next_switch is None and second.current.threshold == float(
            registry.get_model_version(settings.model_name, new).tags["threshold"]
        )
        assert not second.follow_switch()  # an unchanged file is one stat
    finally:
        registry.set_registered_model_alias(settings.model_name, "production", old)


def test_a_rollback_gets_its_own_switch_time(served, tmp_path):
    settings, versions, _ = served
    old, new = versions["production"], versions["other"]
    holder = _holder(settings, tmp_path / "cache", 0.5)
    registry = client_for(settings.tracking_uri)
    try:
        registry.set_registered_model_alias(settings.model_name, "production", new)
        assert holder.refresh()
        time.sleep(0.6)
        assert holder.current.version == new
        registry.set_registered_model_alias(settings.model_name, "production", old)
        assert holder.refresh()  # back to a version already in the cache: a new agreement
        assert holder.current.version == new and holder.next_switch[0] == old
        time.sleep(0.6)
        assert holder.current.version == old
    finally:
        registry.set_registered_model_alias(settings.model_name, "production", old)


def test_without_a_delay_the_swap_is_immediate(served, tmp_path):
    settings, versions, _ = served
    holder = _holder(settings, tmp_path / "cache", 0.0)
    registry = client_for(settings.tracking_uri)
    registry.set_registered_model_alias(settings.model_name, "production", versions["other"])
    try:
        assert holder.refresh() and holder.current.version == versions["other"]
        assert not (tmp_path / "cache" / SWITCH_FILE).exists()
    finally:
        registry.set_registered_model_alias(settings.model_name, "production", versions["production"])
