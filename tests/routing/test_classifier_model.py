"""The shipped task model: held-out accuracy, reproducible weights, bounded work on any input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.train_classifier import HELDOUT_PATH, TRAIN_PATH, WEIGHTS_PATH, load_examples, train
from router_service.domain import ChatRequest, Message, ResponseFormat, ResponseFormatType, Role, TaskType
from router_service.routing.classifier import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    DEFAULT_RULES,
    SHIPPED_MODEL,
    Classification,
    ClassifierConfig,
    ModelClassifier,
    RuleClassifier,
    assess,
    classify,
)
from router_service.routing.classifier_model import CUES, LinearModel, features, prompt_parts, tokens
from router_service.settings import parse_config
from tests.routing.factories import request

LIMITS = SHIPPED_MODEL.limits


def user(text: str, system: str = "") -> ChatRequest:
    messages = ([Message(Role.SYSTEM, system)] if system else []) + [Message(Role.USER, text)]
    return ChatRequest(messages=tuple(messages))


def test_heldout_accuracy_and_every_class_recall() -> None:
    examples = load_examples(HELDOUT_PATH)
    assert len(examples) >= 300
    hits: dict[TaskType, list[bool]] = {task: [] for task in TaskType}
    for example in examples:
        hits[example.label].append(classify(example.request()) is example.label)
    recall = {task.value: sum(h) / len(h) for task, h in hits.items()}
    accuracy = sum(sum(h) for h in hits.values()) / len(examples)
    assert accuracy >= 0.85, f"accuracy {accuracy:.3f}, recall {recall}"
    assert min(recall.values()) >= 0.7, f"recall per class {recall}"


def test_heldout_set_is_not_in_the_training_set() -> None:
    train_prompts = {e.prompt.strip().lower() for e in load_examples(TRAIN_PATH)}
    assert not [e.prompt for e in load_examples(HELDOUT_PATH) if e.prompt.strip().lower() in train_prompts]


def test_cue_words_come_from_the_training_set_or_neither_set() -> None:
    """No cue word was picked from the held-out prompts: it would leak them into the model."""

    def vocabulary(path: Path) -> set[str]:
        return {w for e in load_examples(path) for w in tokens(e.prompt) + tokens(e.system)}

    leaked = {w for words in CUES.values() for w in words} & (
        vocabulary(HELDOUT_PATH) - vocabulary(TRAIN_PATH)
    )
    assert not leaked


def test_the_training_script_reproduces_the_shipped_weights() -> None:
    fresh = train(load_examples(TRAIN_PATH)).to_json()
    assert fresh == WEIGHTS_PATH.read_text(encoding="utf-8")


def test_the_model_file_round_trips_and_rejects_other_formats() -> None:
    text = SHIPPED_MODEL.to_json()
    assert LinearModel.from_json(text) == SHIPPED_MODEL
    with pytest.raises(ValueError, match="format"):
        LinearModel.from_json(text.replace('"format":1', '"format":99', 1))


@pytest.mark.parametrize(
    ("text", "task"),
    [
        ("Could you pull the invoice number, due date and total out of the text below?", TaskType.EXTRACTION),
        ("If 3 pumps fill a pool in 10 hours, how long do 5 pumps take?", TaskType.REASONING),
        ("per the handbook excerpt below, how many days of parental leave do we get?", TaskType.RETRIEVAL),
        ("my pytest fixture can't see the env var, why?", TaskType.CODE),
        ("come up with a name for our team's newsletter", TaskType.CREATIVE),
        ("thanks, have a nice weekend!", TaskType.CHAT),
    ],
)
def test_tasks_without_their_obvious_keyword(text: str, task: TaskType) -> None:
    assert classify(user(text)) is task


@pytest.mark.parametrize(
    ("text", "task"),
    [  # the rules' own table (test_classifier.py): plain prompts the model gets right too
        ("Hi there, how are you today?", TaskType.CHAT),
        ("Write a poem about autumn leaves.", TaskType.CREATIVE),
        ("Brainstorm a tagline for our bakery", TaskType.CREATIVE),
        ("Why does this python function raise a KeyError?", TaskType.CODE),
        ("Fix the bug:\n```\ndef f(d): return d['x']\n```", TaskType.CODE),
        ("Extract the names and dates from this email as JSON.", TaskType.EXTRACTION),
        ("Prove that the square root of 2 is irrational, step by step.", TaskType.REASONING),
        ("Solve this equation for x: 3x + 2 = 11", TaskType.REASONING),
        ("According to the document above, when was the contract signed?", TaskType.RETRIEVAL),
    ],
)
def test_the_rules_table_still_holds(text: str, task: TaskType) -> None:
    assert classify(user(text)) is task


def test_confidence_is_the_top_class_probability() -> None:
    result = DEFAULT_CLASSIFIER.assess(user("Write a haiku about the sea"))
    probabilities = SHIPPED_MODEL.probabilities(
        features(prompt_parts(user("Write a haiku about the sea"), LIMITS))
    )
    assert result == Classification(TaskType.CREATIVE, max(probabilities))
    assert abs(sum(probabilities) - 1.0) < 1e-9


def test_assess_works_for_classifiers_with_and_without_a_confidence() -> None:
    assert assess(DEFAULT_RULES, user("write a poem")) == Classification(TaskType.CREATIVE, None)
    scored = assess(DEFAULT_CLASSIFIER, user("write a poem"))
    assert scored.task is TaskType.CREATIVE and scored.confidence is not None and 0 < scored.confidence <= 1


def test_configured_keywords_win_over_the_model_when_they_occur() -> None:
    classifier = ModelClassifier(ClassifierConfig(keywords={TaskType.CODE: ("kotlin",)}))
    result = classifier.assess(user("write a poem about kotlin"))
    assert result.task is TaskType.CODE
    assert result.confidence is not None and result.confidence < 0.5  # the model's view of CODE
    assert classifier.classify(user("write a poem about the sea")) is TaskType.CREATIVE


def test_the_registry_builds_each_kind() -> None:
    config = ClassifierConfig(keywords={TaskType.CODE: ("kotlin",)})
    assert isinstance(CLASSIFIERS["model"](config), ModelClassifier)
    assert isinstance(CLASSIFIERS["rules"](config), RuleClassifier)


def _env_classifier(classifier: dict[str, object]) -> object:
    providers = {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1/", "api_key": "k"}}
    models = [{"name": "m", "provider": "p", "price_per_mtok": {"input": "0.15", "output": "0.6"}}]
    return parse_config(
        {"providers": providers, "models": models, "classifier": classifier}
    ).routing_env.classifier


def test_config_picks_the_model_unless_keywords_replace_it() -> None:
    assert _env_classifier({}) is DEFAULT_CLASSIFIER
    with_keywords = _env_classifier({"keywords": {"code": ["kotlin"]}})
    assert isinstance(with_keywords, ModelClassifier)
    assert with_keywords.classify(user("a poem about kotlin")) is TaskType.CODE
    only_keywords = _env_classifier({"keywords": {"code": ["kotlin"]}, "replace_builtin": True})
    assert isinstance(only_keywords, RuleClassifier)
    assert only_keywords.classify(user("write a poem")) is TaskType.CHAT


@pytest.mark.parametrize(
    "messages",
    [
        (),
        (Message(Role.SYSTEM, "You are helpful."),),
        (Message(Role.USER, ""),),
        (Message(Role.USER, "   \n\t "),),
        (Message(Role.ASSISTANT, "hello"),),
        (Message(Role.USER, "\ud800\udfff\x00\uffff" * 50),),  # lone surrogates, NUL, non-characters
        (Message(Role.USER, "🙂" * 100_000),),
    ],
)
def test_degenerate_requests_get_a_task(messages: tuple[Message, ...]) -> None:
    result = DEFAULT_CLASSIFIER.assess(ChatRequest(messages=messages))
    assert isinstance(result.task, TaskType) and result.confidence is not None and 0 < result.confidence <= 1


def test_a_huge_prompt_is_read_only_at_its_ends() -> None:
    head = "Please list every supplier name and invoice total from this export:\n"
    tail = "\nReturn them as CSV."
    huge = head + "row;" * 500_000 + tail  # 2 MB
    parts = prompt_parts(user(huge), LIMITS)
    assert len(parts.user) <= LIMITS.head_chars + LIMITS.tail_chars + 1
    assert parts.user.startswith(head) and parts.user.endswith(tail)
    assert classify(user(huge)) is TaskType.EXTRACTION


@settings(max_examples=150, deadline=None)
@given(
    st.text(min_size=0, max_size=2_000),
    st.text(min_size=0, max_size=300),
    st.booleans(),
)
def test_any_text_gets_a_task_and_a_probability(text: str, system: str, json_mode: bool) -> None:
    messages = ([Message(Role.SYSTEM, system)] if system else []) + [Message(Role.USER, text)]
    response_format = ResponseFormat(ResponseFormatType.JSON_OBJECT) if json_mode else None
    result = DEFAULT_CLASSIFIER.assess(ChatRequest(messages=tuple(messages), response_format=response_format))
    assert isinstance(result.task, TaskType)
    assert result.confidence is not None and 0 < result.confidence <= 1


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=5_000))
def test_the_middle_of_a_long_message_is_never_read(middle: str) -> None:
    head = "x" * LIMITS.head_chars
    tail = "y" * LIMITS.tail_chars
    baseline = prompt_parts(user(head + "z" * len(middle) + tail), LIMITS)
    changed = prompt_parts(user(head + middle + tail), LIMITS)
    assert sorted(features(changed)) == sorted(features(baseline))


def test_the_default_request_path_uses_the_model() -> None:
    assert classify(request("Pull the SKU and quantity from each order line below", task=None)) is (
        TaskType.EXTRACTION
    )
