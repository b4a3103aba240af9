"""The `learning:` config section: documented defaults, a learner only for `learned` policies,
values reaching the learner, and bad values refused by path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from router_service.quality_learning.schema import LearningConfig
from router_service.routing.learning import LearnerConfig
from router_service.settings import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, learning: dict[str, Any] | None, strategy: str) -> Path:
    base = yaml.safe_load((REPO / "config" / "example.yaml").read_text())
    if learning is not None:
        base["learning"] = learning
    base["policies"]["default"]["strategy"] = strategy
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_the_documented_section_is_the_defaults_and_the_learners_own() -> None:
    text = (REPO / "config" / "example.yaml").read_text()
    section = text[text.index("\nlearning:") : text.index("\nevents:")]
    documented = LearningConfig.model_validate(yaml.safe_load(section)["learning"])
    assert documented == LearningConfig()
    assert documented.to_learner_config() == LearnerConfig()  # one set of defaults, not two


def test_no_learner_unless_a_policy_uses_learned(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path, None, "quality>cost"), env={}).learning is None
    learned = load_config(_config(tmp_path, None, "learned"), env={})
    assert learned.learning == LearnerConfig()
    composed = load_config(_config(tmp_path, None, "quality > learned"), env={})
    assert composed.learning == LearnerConfig()


def test_the_values_reach_the_learner(tmp_path: Path) -> None:
    section = {
        "half_life_s": 600,
        "floor_z": 1.0,
        "exploration": {"traffic_share": 0.3, "spend_share": 0.05, "window_half_life_s": 60},
        "drift": {"enabled": False, "threshold_sd": 4.0},
    }
    config = load_config(_config(tmp_path, section, "learned"), env={}).learning
    assert config is not None
    assert config.posterior.half_life_s == 600 and config.floor_z == 1.0
    exploration = config.exploration
    assert (exploration.traffic_share, exploration.spend_share, exploration.half_life_s) == (0.3, 0.05, 60)
    assert not config.drift.enabled and config.drift.threshold_sd == 4.0


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"exploration": {"traffic_share": 1.5}}, "learning.exploration.traffic_share"),
        ({"half_life_s": 0}, "learning.half_life_s"),
        ({"drift": {"threshold": 3}}, "learning.drift.threshold"),
        ({"floor_z": -1}, "learning.floor_z"),
    ],
)
def test_a_bad_value_is_refused_by_its_path(tmp_path: Path, section: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        load_config(_config(tmp_path, section, "learned"), env={})
