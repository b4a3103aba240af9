"""bench/overhead_baseline.py: a router config cut to what another source tree's schema accepts,
asked of that tree in a real subprocess (a small tree with a strict pydantic schema, written here,
standing in for an older checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.overhead_baseline import accepted_config, events_fields, run_in_tree, serve_argv

SCHEMA = """
from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Strict):
    listen: str = ""
    workers: int = 1


class EventsConfig(_Strict):
    bootstrap_servers: str = ""
    forwarder: bool = True


class FileConfig(_Strict):
    server: ServerConfig = ServerConfig()
    events: EventsConfig = EventsConfig()
    models: list[str] = []
"""

SETTINGS = """
from router_service.config_schema import FileConfig


def parse_config(data):
    return FileConfig.model_validate(data)
"""


@pytest.fixture
def old_tree(tmp_path: Path) -> Path:
    package = tmp_path / "router_service"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "config_schema.py").write_text(SCHEMA)
    (package / "settings.py").write_text(SETTINGS)
    return tmp_path


def test_keys_the_tree_lacks_are_dropped_at_any_depth_and_named(old_tree: Path) -> None:
    config = {
        "server": {"listen": "127.0.0.1:1", "workers": 1, "openai_http": {"listen": "127.0.0.1:2"}},
        "events": {"bootstrap_servers": "b:9092", "durable": True},
        "cache": {"store": "memory"},
        "models": ["m"],
    }
    accepted, dropped = accepted_config(old_tree, config)
    assert accepted == {
        "server": {"listen": "127.0.0.1:1", "workers": 1},
        "events": {"bootstrap_servers": "b:9092"},
        "models": ["m"],
    }
    assert sorted(dropped) == ["cache", "events.durable", "server.openai_http"]


def test_a_bad_value_is_refused_not_dropped(old_tree: Path) -> None:
    with pytest.raises(SystemExit, match="workers"):
        accepted_config(old_tree, {"server": {"workers": "many"}})


def test_the_trees_packages_win_over_this_checkout_run_from_its_root(old_tree: Path) -> None:
    # pytest runs from the repository root, whose router_service a plain `python -c` would import.
    where = run_in_tree(old_tree, "import json, router_service; print(json.dumps(router_service.__file__))")
    assert Path(where).resolve().is_relative_to(old_tree.resolve())
    assert events_fields(old_tree) == {"bootstrap_servers", "forwarder"}


def test_a_tree_without_router_launcher_serves_through_its_own_cli(old_tree: Path) -> None:
    assert serve_argv(old_tree)[-2:] == ["-m", "router_service.cli"]
    (old_tree / "router_launcher").mkdir()
    assert serve_argv(old_tree)[-2:] == ["-m", "router_launcher.cli"]
