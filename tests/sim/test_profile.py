"""decide() distributions with fixed seeds, profile validation, presets and YAML loading."""

from __future__ import annotations

import dataclasses
import random
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from router_service.sim.config import SimConfigError, apply_profile_update, load_sim_config
from router_service.sim.presets import CHEAP, FAST, INSTANT, PREMIUM, PRESETS, preset_config
from router_service.sim.profile import Outcome, ProfileTable, SimConfig, SimProfile, decide

DRAWS = 10_000


def _outcome_shares(profile: SimProfile, seed: int = 1) -> dict[Outcome, float]:
    rng = random.Random(seed)
    counts = dict.fromkeys(Outcome, 0)
    for _ in range(DRAWS):
        counts[decide(profile, rng).outcome] += 1
    return {o: n / DRAWS for o, n in counts.items()}


@pytest.mark.parametrize(
    ("field", "outcome"),
    [
        ("error_rate", Outcome.ERROR),
        ("rate_limit_rate", Outcome.RATE_LIMITED),
        ("hang_rate", Outcome.HANG),
        ("cut_stream_rate", Outcome.CUT_STREAM),
        ("malformed_rate", Outcome.MALFORMED),
    ],
)
def test_each_fault_rate_is_honoured(field: str, outcome: Outcome) -> None:
    changes: dict[str, Any] = {field: 0.1}
    shares = _outcome_shares(SimProfile(**changes))
    # 3 standard deviations of a binomial share at n=10,000, p=0.1 is 0.009.
    assert shares[outcome] == pytest.approx(0.1, abs=0.01)
    assert shares[Outcome.OK] == pytest.approx(0.9, abs=0.01)


def test_mixed_rates_split_the_draws() -> None:
    profile = SimProfile(error_rate=0.2, rate_limit_rate=0.3, malformed_rate=0.1)
    shares = _outcome_shares(profile, seed=42)
    assert shares[Outcome.ERROR] == pytest.approx(0.2, abs=0.015)
    assert shares[Outcome.RATE_LIMITED] == pytest.approx(0.3, abs=0.015)
    assert shares[Outcome.MALFORMED] == pytest.approx(0.1, abs=0.015)
    assert shares[Outcome.OK] == pytest.approx(0.4, abs=0.015)
    assert shares[Outcome.HANG] == 0


def test_same_seed_gives_the_same_draws() -> None:
    profile = SimProfile(error_rate=0.3, latency_ms_p50=10, latency_ms_p99=50)
    a, b = random.Random(9), random.Random(9)
    assert [decide(profile, a) for _ in range(100)] == [decide(profile, b) for _ in range(100)]


def test_instant_profile_consumes_no_randomness() -> None:
    rng = random.Random(3)
    before = rng.getstate()
    behaviour = decide(INSTANT, rng)
    assert behaviour.outcome is Outcome.OK
    assert behaviour.latency_s == 0.0
    assert rng.getstate() == before


def test_lognormal_latency_honours_p50_and_p99() -> None:
    profile = SimProfile(latency_ms_p50=40, latency_ms_p99=120)
    rng = random.Random(5)
    samples = sorted(decide(profile, rng).latency_s * 1000 for _ in range(20_000))
    assert statistics.median(samples) == pytest.approx(40, rel=0.05)
    assert samples[int(len(samples) * 0.99)] == pytest.approx(120, rel=0.15)
    assert min(samples) > 0


@pytest.mark.parametrize("p99", [0.0, 25.0])
def test_p99_unset_or_equal_means_constant_latency(p99: float) -> None:
    profile = SimProfile(latency_ms_p50=25, latency_ms_p99=p99)
    rng = random.Random(1)
    assert {decide(profile, rng).latency_s for _ in range(50)} == {0.025}


def test_hang_has_no_latency() -> None:
    behaviour = decide(SimProfile(hang_rate=1.0, latency_ms_p50=100), random.Random(1))
    assert behaviour.outcome is Outcome.HANG
    assert behaviour.latency_s == 0.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"error_rate": 1.5}, "error_rate must be in [0, 1]"),
        ({"error_rate": 0.6, "hang_rate": 0.6}, "fault rates sum to 1.2"),
        ({"latency_ms_p50": 100, "latency_ms_p99": 50}, "latency_ms_p99 (50) is below latency_ms_p50"),
        ({"answer_tokens": 0}, "answer_tokens must be >= 1"),
        ({"quality": {"code": 2.0}}, "quality.code must be in [0, 1]"),
        ({"token_interval_ms": -1}, "token_interval_ms must be >= 0"),
    ],
)
def test_invalid_profiles_are_rejected_naming_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SimProfile(**fields)  # type: ignore[arg-type]


def test_quality_defaults_per_task() -> None:
    profile = SimProfile(quality={"code": 0.9})
    assert profile.quality_for("code") == 0.9
    assert profile.quality_for("chat") == 0.7


def test_presets_match_the_embedded_stack_spec() -> None:
    assert set(PRESETS) == {"instant", "fast", "cheap", "premium"}
    assert (FAST.latency_ms_p50, FAST.latency_ms_p99, FAST.error_rate) == (40, 120, 0.005)
    assert (CHEAP.latency_ms_p50, CHEAP.latency_ms_p99) == (120, 400)
    assert (CHEAP.error_rate, CHEAP.rate_limit_rate) == (0.02, 0.02)
    assert (PREMIUM.latency_ms_p50, PREMIUM.latency_ms_p99, PREMIUM.error_rate) == (250, 900, 0.005)
    assert PREMIUM.default_quality > FAST.default_quality > CHEAP.default_quality
    assert INSTANT.latency_ms_p50 == 0 and not INSTANT._thresholds


def test_preset_config_rejects_unknown_names() -> None:
    assert preset_config("fast", seed=3) == SimConfig(default=FAST, seed=3)
    with pytest.raises(KeyError, match="unknown sim preset 'turbo'"):
        preset_config("turbo")


def test_profile_table_updates_and_resets() -> None:
    table = ProfileTable(SimConfig(models={"a": FAST}))
    table.set_model("a", INSTANT)
    table.set_model("b", CHEAP)
    table.set_default(PREMIUM)
    assert (table.get("a"), table.get("b"), table.get("zzz")) == (INSTANT, CHEAP, PREMIUM)
    table.reset("b")
    assert table.get("b") == PREMIUM
    table.reset()
    assert (table.get("a"), table.get("zzz")) == (FAST, INSTANT)


# YAML loading


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sim.yaml"
    path.write_text(text)
    return path


def test_yaml_presets_overrides_and_inheritance(tmp_path: Path) -> None:
    config = load_sim_config(
        _write(
            tmp_path,
            """
seed: 42
default:
  preset: fast
  error_rate: 0.01
models:
  big:
    preset: premium
  tweaked:
    latency_ms_p50: 30
    quality: {code: 0.5}
""",
        )
    )
    assert config.seed == 42
    assert config.default == dataclasses.replace(FAST, error_rate=0.01)
    assert config.models["big"] == PREMIUM
    tweaked = config.models["tweaked"]
    assert tweaked.latency_ms_p50 == 30
    assert tweaked.error_rate == 0.01  # inherited from the resolved default
    assert tweaked.quality["code"] == 0.5
    assert tweaked.quality["chat"] == FAST.quality["chat"]  # quality merges over the base


def test_empty_yaml_is_the_default_config(tmp_path: Path) -> None:
    assert load_sim_config(_write(tmp_path, "")) == SimConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "models:\n  gpt:\n    error_rate: 2\n",
            "models.gpt.error_rate: Input should be less than or equal to 1",
        ),
        ("models:\n  gpt:\n    eror_rate: 0.1\n", "models.gpt.eror_rate: Extra inputs are not permitted"),
        ("default:\n  preset: turbo\n", "default.preset: Value error, unknown preset 'turbo'"),
        ("default:\n  quality: {poetry: 0.5}\n", "default.quality: Value error, unknown task 'poetry'"),
        ("models:\n  x:\n    error_rate: 0.7\n    hang_rate: 0.7\n", "models.x: fault rates sum to 1.4"),
        ("bogus: 1\n", "bogus: Extra inputs are not permitted"),
        ("default: [1, 2]\n", "default: Input should be a valid dictionary"),
        ("default: {error_rate: [\n", "invalid YAML"),
    ],
)
def test_yaml_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SimConfigError) as info:
        load_sim_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_yaml_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SimConfigError, match="cannot read"):
        load_sim_config(tmp_path / "nope.yaml")


def test_profile_update_applies_over_the_base() -> None:
    updated = apply_profile_update({"error_rate": 1.0, "quality": {"code": 0.1}}, FAST)
    assert updated.error_rate == 1.0
    assert updated.latency_ms_p50 == FAST.latency_ms_p50
    assert updated.quality["code"] == 0.1 and updated.quality["chat"] == FAST.quality["chat"]
    assert apply_profile_update({"preset": "instant"}, FAST) == INSTANT
    with pytest.raises(SimConfigError, match="profile: hang_rate: Input should be"):
        apply_profile_update({"hang_rate": -1}, FAST)
