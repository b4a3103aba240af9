"""Token and cost estimates: the documented rule, the task defaults, cached-input pricing."""

from __future__ import annotations

import pytest

from router_service.catalog import Price
from router_service.domain import GenerationParams, Message, Role, TaskType, ToolCall, ToolSpec, Usage
from router_service.routing.candidate import CandidateTable
from router_service.routing.cost import DEFAULT_OUTPUT_TOKENS, CostModel, CostModelConfig, TokenEstimate
from tests.routing.factories import deployment, request

MODEL = CostModel()


@pytest.mark.parametrize(
    ("messages", "tokens"),
    [
        ((Message(Role.USER, ""),), 4),  # overhead only
        ((Message(Role.USER, "abcd"),), 5),
        ((Message(Role.USER, "abcde"),), 6),  # rounded up
        ((Message(Role.SYSTEM, "x" * 400), Message(Role.USER, "y" * 400)), 208),
        ((Message(Role.ASSISTANT, "", tool_calls=(ToolCall("1", "get", '{"id": 1}'),)),), 7),
    ],
)
def test_prompt_tokens_are_chars_over_four_plus_overheads(messages: tuple[Message, ...], tokens: int) -> None:
    assert MODEL.prompt_tokens(request(messages=messages)) == tokens


def test_tools_add_a_fixed_overhead_and_their_text() -> None:
    tool = ToolSpec("get", "Get it", {"type": "object"})
    # 4 per message + 16 per tool + ceil(chars / 4) over "hi", "get", "Get it", "{'type': 'object'}"
    assert MODEL.prompt_tokens(request("hi", tools=(tool,))) == 4 + 16 + 8


@pytest.mark.parametrize("task", list(TaskType))
def test_expected_output_defaults_per_task(task: TaskType) -> None:
    assert MODEL.estimate(request(), task).output_tokens == DEFAULT_OUTPUT_TOKENS[task]


def test_callers_max_output_tokens_is_the_expected_output() -> None:
    estimate = MODEL.estimate(request(params=GenerationParams(max_output_tokens=42)), TaskType.CREATIVE)
    assert (estimate.output_tokens, estimate.requested_max_output) == (42, 42)


@pytest.mark.parametrize(
    ("prompt_tokens", "fraction", "cached"),
    [
        (1_023, 0.5, 0),  # below the provider's caching threshold
        (1_024, 0.5, 512),
        (10_000, 0.0, 0),
        (10_000, 0.25, 2_500),
    ],
)
def test_cost_prices_the_expected_cached_share_at_the_cached_rate(
    prompt_tokens: int, fraction: float, cached: int
) -> None:
    price = Price(3_000_000_000, 15_000_000_000, 300_000_000)
    target = deployment("p/m", expected_cached_fraction=fraction, price=price)
    estimate = TokenEstimate(prompt_tokens, 500, None)
    usage = Usage(input_tokens=prompt_tokens, output_tokens=500, cached_input_tokens=cached)
    assert MODEL.cost_nanos(target, estimate) == price.cost_nanos(usage)
    assert MODEL.costs(CandidateTable([target], [None]), estimate) == [price.cost_nanos(usage)]


@pytest.mark.parametrize(
    "prices",
    [
        [(123_456_789, 987_654_321, 3), (1, 3, 0), (0, 0, 0)],  # odd prices: rounding up per request
        [
            (150_000_000, 600_000_000, 75_000_000),
            (2_500_000_000, 10_000_000_000, 1_250_000_000),
        ],  # whole nanos/token
        [(37_500_000, 150_000_000, 3_750_000)],  # fractions of a nano per token
    ],
)
def test_column_costs_match_single_costs(prices: list[tuple[int, int, int]]) -> None:
    targets = [
        deployment(f"p{i}/m", price=Price(i_, o, c), expected_cached_fraction=0.3)
        for i, (i_, o, c) in enumerate(prices)
    ]
    table = CandidateTable(targets, [None] * len(targets))
    for estimate in (TokenEstimate(7, 11, None), TokenEstimate(50_000, 2_000, 2_000)):
        assert MODEL.costs(table, estimate) == [MODEL.cost_nanos(d, estimate) for d in targets]


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="chars_per_token"):
        CostModelConfig(chars_per_token=0)
    with pytest.raises(ValueError, match="no entry for"):
        CostModelConfig(output_tokens_by_task={TaskType.CHAT: 1})


def test_candidates_sharing_a_price_are_priced_once_each_with_its_own_cached_share() -> None:
    cheap, dear = (
        Price(150_000_000, 600_000_000, 15_000_000),
        Price(3_000_000_000, 15_000_000_000, 300_000_000),
    )
    targets = [
        deployment("a/m", price=cheap),
        deployment("b/m", price=dear, expected_cached_fraction=0.5),
        deployment("c/m", price=cheap),
        deployment("d/m", price=cheap, expected_cached_fraction=0.5),
        deployment("e/m", price=dear, expected_cached_fraction=0.5),
    ]
    table = CandidateTable(targets, [None] * len(targets))
    assert len(table.price_tiers) == 3  # cheap, dear with a cached share, cheap with a cached share
    for estimate in (TokenEstimate(7, 11, None), TokenEstimate(50_000, 2_000, 2_000)):
        assert MODEL.costs(table, estimate) == [MODEL.cost_nanos(d, estimate) for d in targets]
