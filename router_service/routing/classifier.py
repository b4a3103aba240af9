"""Task classification when the caller gives no hint: transparent rules now, a learned model later.

`TaskClassifier` is the seam: anything with `classify(request) -> TaskType` can replace the rules
(a small embedding model, a fine-tuned classifier served elsewhere) without touching the planner.

The rules score each task and pick the highest; CHAT when nothing scores:
- keywords: +1 per distinct built-in or configured keyword found, matched on whole tokens after
  lower-casing and splitting on whitespace and punctuation ("poem," matches "poem"; "c++" and
  "#include" are tokens; "step by step" must appear as those three tokens in a row);
- structure: a code fence is +3 for CODE; JSON output or a forced tool call is +3 for EXTRACTION
  (structured output is what extraction asks for); a prompt of at least `long_context_chars`
  characters is +2 for RETRIEVAL (long pasted context with a question about it).
Ties go to the more specific task: code, extraction, retrieval, reasoning, creative.

Only the head of the system prompt and the head and tail of the last user message are read
(`scan_chars` each: the instruction is usually at the start, the question at the end), so
classification costs the same few microseconds for a 2 KB and a 2 MB prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from router_service.domain import ChatRequest, ResponseFormatType, Role, TaskType, ToolChoiceMode


class TaskClassifier(Protocol):
    def classify(self, request: ChatRequest) -> TaskType: ...


# fmt: off
BUILTIN_KEYWORDS: Mapping[TaskType, tuple[str, ...]] = MappingProxyType({
    TaskType.CODE: (
        "code", "function", "python", "javascript", "typescript", "java", "golang", "rust", "sql",
        "regex", "compile", "compiler", "debug", "bug", "traceback", "exception", "refactor",
        "implement", "c++", "unit test", "stack trace", "def ", "import ", "#include",
    ),
    TaskType.EXTRACTION: (
        "extract", "parse", "fields", "json", "csv", "entities", "classify", "categorize",
        "label", "structured", "schema", "list all", "fill in",
    ),
    TaskType.RETRIEVAL: (
        "document", "documents", "passage", "context", "sources", "cite", "citation", "search",
        "lookup", "according to", "based on the", "given the following", "knowledge base",
    ),
    TaskType.REASONING: (
        "prove", "proof", "derive", "calculate", "solve", "equation", "probability", "logic",
        "puzzle", "math", "analyze", "analyse", "why", "step by step", "trade-off", "tradeoffs",
    ),
    TaskType.CREATIVE: (
        "poem", "story", "lyrics", "song", "slogan", "tagline", "brainstorm", "imagine",
        "fiction", "haiku", "novel", "creative", "joke", "write a",
    ),
})
# fmt: on

# Tie-break order: the more specific task first.
_PRECEDENCE = (
    TaskType.CODE,
    TaskType.EXTRACTION,
    TaskType.RETRIEVAL,
    TaskType.REASONING,
    TaskType.CREATIVE,
)
_STRUCTURE_BONUS = 3
_LONG_CONTEXT_BONUS = 2
# Punctuation becomes a space so "poem," and "(json)" still match whole words.
_WORD_SEPARATORS = str.maketrans(dict.fromkeys("!\"$%&'()*,./:;<=>?@[\\]^`{|}~\n\t\r", " "))


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    # Extra keywords per task, added to (or with replace_builtin, instead of) the built-in ones.
    keywords: Mapping[TaskType, tuple[str, ...]] = field(default_factory=dict)
    replace_builtin: bool = False
    long_context_chars: int = 12_000
    # Characters read from the system prompt's head and from each end of the last user message.
    scan_chars: int = 400

    def __post_init__(self) -> None:
        if TaskType.CHAT in self.keywords:
            raise ValueError(
                "classifier.keywords.chat: chat is what nothing else matches; it takes no keywords"
            )
        if self.scan_chars < 1 or self.long_context_chars < 1:
            raise ValueError("classifier: scan_chars and long_context_chars must be >= 1")


@dataclass(frozen=True, slots=True)
class _TaskRules:
    task: TaskType
    words: frozenset[str]  # one-token keywords, matched as whole tokens
    phrases: tuple[
        tuple[str, str], ...
    ]  # (first token, phrase): phrase searched only if its first token occurs


class RuleClassifier:
    __slots__ = ("_config", "_rules")

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        self._config = config or ClassifierConfig()
        self._rules = tuple(_compile_rules(task, self._keywords(task)) for task in _PRECEDENCE)

    def classify(self, request: ChatRequest) -> TaskType:
        text = _scanned_text(request, self._config.scan_chars)
        tokens_in_order = _tokens(text)
        tokens = frozenset(tokens_in_order)
        normalized = ""  # built only if some phrase's first token occurs
        best_task, best_score = TaskType.CHAT, 0
        for rules, bonus in zip(self._rules, self._structure_bonuses(request, text), strict=True):
            score = len(rules.words & tokens) + bonus
            for first, phrase in rules.phrases:
                if first in tokens:
                    normalized = normalized or " ".join(tokens_in_order)
                    score += phrase in normalized
            if score > best_score:  # strict: earlier (more specific) tasks win ties
                best_task, best_score = rules.task, score
        return best_task

    def _keywords(self, task: TaskType) -> tuple[str, ...]:
        extra = self._config.keywords.get(task, ())
        builtin = () if self._config.replace_builtin else BUILTIN_KEYWORDS.get(task, ())
        return (*builtin, *extra)

    def _structure_bonuses(self, request: ChatRequest, text: str) -> tuple[int, ...]:
        """Per task, in _PRECEDENCE order: code, extraction, retrieval, reasoning, creative."""
        code = _STRUCTURE_BONUS if "```" in text else 0
        extraction = _STRUCTURE_BONUS if _asks_for_structure(request) else 0
        total_chars = sum(len(m.content) for m in request.messages)
        retrieval = _LONG_CONTEXT_BONUS if total_chars >= self._config.long_context_chars else 0
        return (code, extraction, retrieval, 0, 0)


def _tokens(text: str) -> list[str]:
    """Lower-case text split on whitespace and punctuation (but not on + # - _: "c++", "#include")."""
    return text.translate(_WORD_SEPARATORS).split()


def _compile_rules(task: TaskType, keywords: Iterable[str]) -> _TaskRules:
    words: set[str] = set()
    phrases: set[tuple[str, str]] = set()
    for keyword in keywords:
        tokens = _tokens(keyword.lower())
        if len(tokens) == 1:
            words.add(tokens[0])
        elif tokens:
            phrases.add((tokens[0], " ".join(tokens)))
    return _TaskRules(task, frozenset(words), tuple(sorted(phrases)))


def _asks_for_structure(request: ChatRequest) -> bool:
    response_format = request.response_format
    if response_format is not None and response_format.type is not ResponseFormatType.TEXT:
        return True
    choice = request.tool_choice
    return choice is not None and choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.FUNCTION)


def _scanned_text(request: ChatRequest, scan_chars: int) -> str:
    """Lower-cased: the head of the system prompt, the head and tail of the last user message."""
    parts: list[str] = []
    for message in request.messages:
        if message.role is Role.SYSTEM:
            parts.append(message.content[:scan_chars])
            break
    for message in reversed(request.messages):
        if message.role is Role.USER:
            parts.append(_head_and_tail(message.content, scan_chars))
            break
    return "\n".join(parts).lower()


def _head_and_tail(text: str, scan_chars: int) -> str:
    if len(text) <= 2 * scan_chars:
        return text
    return f"{text[:scan_chars]}\n{text[-scan_chars:]}"


DEFAULT_CLASSIFIER = RuleClassifier()


def classify(request: ChatRequest) -> TaskType:
    """Classify with the built-in rules."""
    return DEFAULT_CLASSIFIER.classify(request)
