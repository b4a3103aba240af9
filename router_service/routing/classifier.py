"""Task classification when the caller gives no hint: a small learned model, with rules kept beside it.

`TaskClassifier` is the seam: anything with `classify(request) -> TaskType` can replace the default
(a small embedding model, a fine-tuned classifier served elsewhere) without touching the planner;
`ScoredTaskClassifier` adds `assess(request) -> Classification`, the task with the model's
probability for it (for exploration later). `CLASSIFIERS` maps a config name to a factory.

The default, `ModelClassifier`, is multinomial logistic regression over words, word pairs, prefixes,
cue-word counts and structure marks (`classifier_model.py`), trained by bench/train_classifier.py on
hand-written labelled prompts and shipped as `classifier_weights.json`, read once at import. On the
held-out set (bench/data/classifier/heldout.jsonl, bench/classifier.py) it is right where the rules
below miss most: tasks asked for without their keyword ("pull the SKUs out of this order").
Configured keywords still win when they occur: an operator's word is more precise than a guess.

`RuleClassifier`, the previous default, stays for `replace_builtin` configs and as a baseline. It
scores each task and picks the highest; CHAT when nothing scores:
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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Protocol

from router_service.domain import ChatRequest, ResponseFormatType, Role, TaskType, ToolChoiceMode
from router_service.routing.classifier_model import LinearModel, features, prompt_parts, softmax


class TaskClassifier(Protocol):
    def classify(self, request: ChatRequest) -> TaskType: ...


@dataclass(frozen=True, slots=True)
class Classification:
    task: TaskType
    # Probability of `task` under the model, in (0, 1]; None from classifiers that give none (rules).
    confidence: float | None = None


class ScoredTaskClassifier(TaskClassifier, Protocol):
    def assess(self, request: ChatRequest) -> Classification: ...


def assess(classifier: TaskClassifier, request: ChatRequest) -> Classification:
    """The classifier's richer answer when it has one, else its task with no confidence."""
    scored = getattr(classifier, "assess", None)
    if scored is not None:
        result: Classification = scored(request)
        return result
    return Classification(classifier.classify(request))


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
_SEPARATORS = "!\"$%&'()*,./:;<=>?@[\\]^`{|}~\n\t\r"
_WORD_SEPARATORS = str.maketrans(dict.fromkeys(_SEPARATORS, " "))
_ASCII_SEPARATORS = bytes.maketrans(_SEPARATORS.encode(), b" " * len(_SEPARATORS))
# The same, also lower-casing A-Z: for ASCII text, one pass does what lower() then _tokens() do.
_ASCII_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_ASCII_LOWER_SEPARATORS = bytes.maketrans(
    _SEPARATORS.encode() + _ASCII_UPPER, b" " * len(_SEPARATORS) + _ASCII_UPPER.lower()
)


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
class _KeywordIndex:
    """Every task's keywords in one place, so a prompt's tokens are matched against all of them in
    one set intersection (hashing each token once) instead of once per task.

    Positions are indices into `_PRECEDENCE`; a keyword configured for several tasks counts for each.
    """

    triggers: frozenset[str]  # every one-token keyword and every phrase's first token
    words: Mapping[str, tuple[int, ...]]  # one-token keyword -> positions of its tasks
    # first token -> (position, phrase): a phrase is searched only if its first token occurs
    phrases: Mapping[str, tuple[tuple[int, str], ...]]

    def add_scores(self, hits: Iterable[str], head: str, tokens: Sequence[str], scores: list[int]) -> None:
        """+1 per task for each of its keywords among `hits` (the triggers that occur in the text
        whose tokens are those of `head`, already joined by single spaces, then `tokens`)."""
        normalized = ""  # all tokens joined by single spaces, built only if some phrase may occur
        for token in hits:
            for position in self.words.get(token, ()):
                scores[position] += 1
            for position, phrase in self.phrases.get(token, ()):
                normalized = normalized or _joined(head, tokens)
                scores[position] += phrase in normalized


def _joined(head: str, tokens: Sequence[str]) -> str:
    """The head's tokens then `tokens`, joined by single spaces (`head` is joined already)."""
    text = " ".join(tokens)
    if head and text:
        return f"{head} {text}"
    return head or text


# The scanned head of a system prompt, tokenized: (its tokens joined by single spaces, triggers
# among them, has a code fence).
_Scanned = tuple[str, frozenset[str], bool]
_SYSTEM_CACHE_SIZE = 128


class RuleClassifier:
    __slots__ = ("_config", "_index", "_system_heads")

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        self._config = config or ClassifierConfig()
        self._index = _index_keywords([self._keywords(task) for task in _PRECEDENCE])
        # An application sends the same system prompt with every request: its head is tokenized
        # once, not per request. Keyed by the head's text; cleared when full, so it stays small.
        self._system_heads: dict[str, _Scanned] = {}

    def classify(self, request: ChatRequest) -> TaskType:
        system_head, user_text = _scanned_parts(request, self._config.scan_chars)
        # The text read is system head + "\n" + user text: a separator, so its tokens (and code
        # fences) are those of each part, in order.
        tokens = _lower_tokens(user_text)
        hits = self._index.triggers.intersection(tokens)  # usually empty or a few words
        code_fence = "```" in user_text  # lower-casing never makes nor breaks a fence
        system_text = ""
        if system_head is not None:
            system_text, system_hits, system_fence = self._scan_system(system_head)
            hits |= system_hits
            code_fence = code_fence or system_fence
        scores = self._structure_bonuses(request, code_fence)
        if hits:
            self._index.add_scores(hits, system_text, tokens, scores)
        best = max(scores)
        # index() finds the first of equal scores: earlier (more specific) tasks win ties.
        return _PRECEDENCE[scores.index(best)] if best > 0 else TaskType.CHAT

    def _scan_system(self, head: str) -> _Scanned:
        found = self._system_heads.get(head)
        if found is None:
            if len(self._system_heads) >= _SYSTEM_CACHE_SIZE:
                self._system_heads.clear()
            tokens = _lower_tokens(head)
            found = (" ".join(tokens), self._index.triggers.intersection(tokens), "```" in head)
            self._system_heads[head] = found
        return found

    def _keywords(self, task: TaskType) -> tuple[str, ...]:
        extra = self._config.keywords.get(task, ())
        builtin = () if self._config.replace_builtin else BUILTIN_KEYWORDS.get(task, ())
        return (*builtin, *extra)

    def _structure_bonuses(self, request: ChatRequest, code_fence: bool) -> list[int]:
        """Per task, in _PRECEDENCE order: code, extraction, retrieval, reasoning, creative."""
        code = _STRUCTURE_BONUS if code_fence else 0
        extraction = _STRUCTURE_BONUS if _asks_for_structure(request) else 0
        total_chars = 0
        for message in request.messages:  # a plain loop: a generator costs more for a few messages
            total_chars += len(message.content)
        retrieval = _LONG_CONTEXT_BONUS if total_chars >= self._config.long_context_chars else 0
        return [code, extraction, retrieval, 0, 0]


def _lower_tokens(text: str) -> list[str]:
    """_tokens(text.lower()), in one pass for ASCII text (the user message is read as sent, so
    lower-casing it first would be a second pass over it)."""
    if text.isascii():  # lower() of ASCII text only maps A-Z: the byte table does that too
        return text.encode().translate(_ASCII_LOWER_SEPARATORS).decode().split()
    return _tokens(text.lower())


def _tokens(text: str) -> list[str]:
    """Lower-case text split on whitespace and punctuation (but not on + # - _: "c++", "#include")."""
    if text.isascii():  # the usual case: a byte table translates several times faster than a dict
        return text.encode().translate(_ASCII_SEPARATORS).decode().split()
    return text.translate(_WORD_SEPARATORS).split()


def _index_keywords(keywords_by_position: Sequence[Iterable[str]]) -> _KeywordIndex:
    words: dict[str, list[int]] = {}
    phrases: dict[str, list[tuple[int, str]]] = {}
    for position, keywords in enumerate(keywords_by_position):
        task_phrases: set[tuple[str, str]] = set()  # a task counts each keyword once
        for keyword in keywords:
            tokens = _tokens(keyword.lower())
            if len(tokens) == 1:
                positions = words.setdefault(tokens[0], [])
                if position not in positions:
                    positions.append(position)
            elif tokens:
                task_phrases.add((tokens[0], " ".join(tokens)))
        for first, phrase in sorted(task_phrases):
            phrases.setdefault(first, []).append((position, phrase))
    return _KeywordIndex(
        triggers=frozenset(words) | frozenset(phrases),
        words={word: tuple(positions) for word, positions in words.items()},
        phrases={first: tuple(entries) for first, entries in phrases.items()},
    )


def _asks_for_structure(request: ChatRequest) -> bool:
    response_format = request.response_format
    if response_format is not None and response_format.type is not ResponseFormatType.TEXT:
        return True
    choice = request.tool_choice
    return choice is not None and choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.FUNCTION)


def _scanned_parts(request: ChatRequest, scan_chars: int) -> tuple[str | None, str]:
    """The head of the system prompt (None without one) and the head and tail of the last user
    message ("" without one), as sent."""
    system_head = None
    for message in request.messages:
        if message.role is Role.SYSTEM:
            system_head = message.content[:scan_chars]
            break
    for message in reversed(request.messages):
        if message.role is Role.USER:
            return system_head, _head_and_tail(message.content, scan_chars)
    return system_head, ""


def _head_and_tail(text: str, scan_chars: int) -> str:
    if len(text) <= 2 * scan_chars:
        return text
    return f"{text[:scan_chars]}\n{text[-scan_chars:]}"


WEIGHTS_FILE = "classifier_weights.json"


def load_shipped_model() -> LinearModel:
    """The weights shipped beside this module (package data; written by bench/train_classifier.py)."""
    text = resources.files(__package__ or "router_service.routing").joinpath(WEIGHTS_FILE).read_text("utf-8")
    return LinearModel.from_json(text)


class ModelClassifier:
    """The learned model; configured keywords (if any) override it when they occur in the prompt.

    Work is bounded by the model's scan limits (the system prompt's head, the last user message's
    head and tail): a 2 MB prompt costs what a 1 KB one does.
    """

    __slots__ = ("_keywords", "_model")

    def __init__(self, config: ClassifierConfig | None = None, model: LinearModel | None = None) -> None:
        self._model = model or SHIPPED_MODEL
        keywords = config.keywords if config else {}
        # Only the operator's keywords, scored by the rules' matcher; None when there are none.
        self._keywords = (
            RuleClassifier(ClassifierConfig(keywords=keywords, replace_builtin=True)) if keywords else None
        )

    def classify(self, request: ChatRequest) -> TaskType:
        return self.assess(request).task

    def assess(self, request: ChatRequest) -> Classification:
        model = self._model
        probabilities = softmax(model.scores(features(prompt_parts(request, model.limits))))
        if self._keywords is not None:
            forced = self._keywords.classify(request)
            if forced is not TaskType.CHAT:  # a configured keyword occurs (chat takes none)
                return Classification(forced, probabilities[model.classes.index(forced)])
        best = max(probabilities)
        return Classification(model.classes[probabilities.index(best)], best)


SHIPPED_MODEL = load_shipped_model()

# Config name -> factory: the one place a classifier kind is chosen (a heavier one is one more entry).
CLASSIFIERS: Mapping[str, Callable[[ClassifierConfig], TaskClassifier]] = MappingProxyType(
    {"model": ModelClassifier, "rules": RuleClassifier}
)

DEFAULT_CLASSIFIER = ModelClassifier()
DEFAULT_RULES = RuleClassifier()


def classify(request: ChatRequest) -> TaskType:
    """Classify with the shipped model."""
    return DEFAULT_CLASSIFIER.classify(request)
