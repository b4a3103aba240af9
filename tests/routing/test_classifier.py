"""Rule-based task classification (RuleClassifier): keywords, structure, length, config extension."""

from __future__ import annotations

from typing import Any

import pytest

from router_service.domain import (
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    TaskType,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
)
from router_service.routing.classifier import DEFAULT_RULES, ClassifierConfig, RuleClassifier
from tests.routing.factories import request


def ask(text: str, system: str = "", **fields: Any) -> TaskType:
    messages = ([Message(Role.SYSTEM, system)] if system else []) + [Message(Role.USER, text)]
    return DEFAULT_RULES.classify(request(messages=messages, task=None, **fields))


@pytest.mark.parametrize(
    ("text", "task"),
    [
        ("Hi there, how are you today?", TaskType.CHAT),
        ("Write a poem about autumn leaves.", TaskType.CREATIVE),
        ("Brainstorm a tagline for our bakery", TaskType.CREATIVE),
        ("Why does this python function raise a KeyError?", TaskType.CODE),
        ("Fix the bug:\n```\ndef f(d): return d['x']\n```", TaskType.CODE),
        ("Is c++ faster here?", TaskType.CODE),
        ("Extract the names and dates from this email as JSON.", TaskType.EXTRACTION),
        ("Prove that the square root of 2 is irrational, step by step.", TaskType.REASONING),
        ("Solve this equation for x: 3x + 2 = 11", TaskType.REASONING),
        ("According to the document above, when was the contract signed?", TaskType.RETRIEVAL),
    ],
)
def test_keyword_and_structure_rules(text: str, task: TaskType) -> None:
    assert ask(text) is task


def test_punctuation_does_not_hide_keywords() -> None:
    assert ask("(poem), please!") is TaskType.CREATIVE


def test_phrases_need_their_words_in_sequence() -> None:
    assert ask("step one, then by the next step") is TaskType.CHAT
    assert ask("explain it step-by-step") is TaskType.CHAT  # hyphenated is one token, not the phrase
    assert ask("walk me through it step by step") is TaskType.REASONING


@pytest.mark.parametrize(
    "fields",
    [
        {"response_format": ResponseFormat(ResponseFormatType.JSON_OBJECT)},
        {"tools": (ToolSpec("save"),), "tool_choice": ToolChoice(ToolChoiceMode.FUNCTION, "save")},
        {"tools": (ToolSpec("save"),), "tool_choice": ToolChoice(ToolChoiceMode.REQUIRED)},
    ],
)
def test_structured_output_means_extraction(fields: dict[str, Any]) -> None:
    assert ask("Here is the invoice text.", **fields) is TaskType.EXTRACTION


def test_tools_on_auto_do_not_force_extraction() -> None:
    assert ask("What's the weather in Paris?", tools=(ToolSpec("weather"),)) is TaskType.CHAT


def test_long_pasted_context_leans_towards_retrieval() -> None:
    assert ask("lorem ipsum dolor sit amet " * 600 + "What is the refund window?") is TaskType.RETRIEVAL


def test_system_prompt_counts() -> None:
    assert ask("Here you go: ACME Corp, 2024-01-03.", system="You extract entities.") is TaskType.EXTRACTION


def test_more_specific_task_wins_a_tie() -> None:
    assert ask("write a function") is TaskType.CODE  # "write a" (creative) vs "function" (code)


def test_only_the_ends_of_a_long_message_are_read() -> None:
    middle = "filler " * 500 + "poem story lyrics haiku " + "filler " * 500
    assert ask(middle) is TaskType.CHAT


@pytest.mark.parametrize(
    ("text", "task"),
    [
        ("Schreib ein Gedicht (poem) über Bäume", TaskType.CREATIVE),  # non-ASCII: the str path
        ("naïve question: why, step by step?", TaskType.REASONING),
        ("«extract» the fields as json", TaskType.EXTRACTION),
    ],
)
def test_non_ascii_text_is_tokenized_the_same_way(text: str, task: TaskType) -> None:
    assert ask(text) is task


def test_a_repeated_system_prompt_gives_the_same_answers() -> None:
    """The system prompt's head is tokenized once per text and reused: same results as fresh."""
    system = "You are a helpful assistant. Answer step"  # ends with a phrase's first word
    classifier = RuleClassifier()
    for text, task in [
        ("by step, please", TaskType.REASONING),  # the phrase spans the system prompt and the message
        ("hello", TaskType.CHAT),
        ("write a poem", TaskType.CREATIVE),
    ]:
        messages = [Message(Role.SYSTEM, system), Message(Role.USER, text)]
        for _ in range(2):
            assert classifier.classify(request(messages=messages, task=None)) is task
    for k in range(300):  # more distinct system prompts than are kept: still correct
        messages = [Message(Role.SYSTEM, f"prompt {k} about code"), Message(Role.USER, "hi")]
        assert classifier.classify(request(messages=messages, task=None)) is TaskType.CODE


def test_config_adds_keywords() -> None:
    classifier = RuleClassifier(ClassifierConfig(keywords={TaskType.EXTRACTION: ("invoice", "line items")}))
    assert classifier.classify(request("Read this invoice", task=None)) is TaskType.EXTRACTION
    assert classifier.classify(request("list the line items", task=None)) is TaskType.EXTRACTION
    assert DEFAULT_RULES.classify(request("Read this invoice", task=None)) is TaskType.CHAT


def test_config_can_replace_the_builtin_keywords() -> None:
    classifier = RuleClassifier(ClassifierConfig(keywords={TaskType.CODE: ("kotlin",)}, replace_builtin=True))
    assert classifier.classify(request("write a poem in kotlin", task=None)) is TaskType.CODE
    assert classifier.classify(request("write a poem", task=None)) is TaskType.CHAT


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"keywords": {TaskType.CHAT: ("hello",)}}, "chat is what nothing else matches"),
        ({"scan_chars": 0}, "must be >= 1"),
    ],
)
def test_config_is_validated(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(**fields)


@pytest.mark.parametrize(
    ("text", "task"),
    [
        ("WRITE A POEM ABOUT THE SEA", TaskType.CREATIVE),
        ("Walk Me Through It STEP BY STEP", TaskType.REASONING),
        ("Is C++ faster here?", TaskType.CODE),
    ],
)
def test_keywords_match_whatever_the_case(text: str, task: TaskType) -> None:
    assert ask(text) is task
