"""A small linear task model: multinomial logistic regression over sparse text features.

Pure and stdlib-only, so it runs on the request path without numpy: features are strings (word
unigrams, word bigrams, 5-character word prefixes, and a few structure markers), looked up in one
dict of per-class weight rows. Strings, not hashed buckets: Python's `hash` is salted per process,
and a vocabulary pruned at training time is as small as a hashed table and has no collisions.

The same `features()` serves training (bench/train_classifier.py) and inference, so the two cannot
drift apart. Work is bounded by `ScanLimits`: only the head of the system prompt and the head and
tail of the last user message are tokenized; structure checks look at the same slices.

Scores are `bias + sum(weights of present features) / sqrt(feature count)`: each prompt's feature
vector has unit length, so a long prompt does not get more confident just by having more words.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from router_service.domain import ChatRequest, ResponseFormatType, Role, TaskType, ToolChoiceMode

FORMAT_VERSION = 1
# The order of weight columns in a model file: fixed, so files do not depend on enum order.
CLASS_ORDER: tuple[TaskType, ...] = (
    TaskType.CHAT,
    TaskType.RETRIEVAL,
    TaskType.CREATIVE,
    TaskType.REASONING,
    TaskType.EXTRACTION,
    TaskType.CODE,
)

_SEPARATORS = "!\"$%&'()*,./:;<=>?@[\\]^`{|}~\n\t\r"
_WORD_SEPARATORS = str.maketrans(dict.fromkeys(_SEPARATORS, " "))
_ASCII_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_ASCII_TABLE = bytes.maketrans(
    _SEPARATORS.encode() + _ASCII_UPPER, b" " * len(_SEPARATORS) + _ASCII_UPPER.lower()
)
_PREFIX = 5  # words longer than this also count as their first 5 characters: "extracted" ~ "extraction"
# Structure markers start with a character no token can contain (the tokenizer splits on "<").
_MARK = "<"


# Cue words per task, counted as "<cue:task:n>" features. They carry prior knowledge that a few
# hundred training prompts cannot: a prompt about "kotlin" or "Gedicht" is classified by the same
# weight as one about "python" or "poem". Lower-case, single tokens as `tokens()` splits them.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# fmt: off
CUES: dict[TaskType, frozenset[str]] = {
    TaskType.CODE: _words("""
        code function method class classes variable bug debug compile compiler error
        exception traceback stack segfault python py javascript js typescript ts java kotlin swift go
        golang rust c c# csharp ruby perl r sql
        postgres postgresql sqlite query queries regex regexp bash shell powershell script cli
        api endpoint http json yaml toml dockerfile docker kubernetes k8s kubectl helm terraform
        git github ci pipeline npm pip pytest unittest test tests mock fixture mypy
        ruff react vue angular node nodejs flask fastapi spring pandas
        numpy dataframe async await thread threads goroutine goroutines
        refactor implement implementation compile linter lint import module library
        repo commit branch merge rebase deployment nginx redis kafka grpc websocket
        frontend backend struct enum interface generic generics pointer null nullpointerexception
        runtime stdout stderr cron cronjob vim excel formula html css
        sketch ios airflow dag protobuf graphql resolver schema
        migration alembic orm trigger index join indexes optimize unicode utf-8 typeerror
        funktion funktionen skript función código script fonction
    """),
    TaskType.EXTRACTION: _words("""
        extract extraction pull parse fields columns column table csv json structured
        entities entity tag label labels categorize categorise classify category categories
        sort bucket group normalize normalise format list each every row rows record records
        identify capture fill template mark flag detect count deduplicate dedupe separate split
        names dates amounts ids numbers emails addresses phone key value pairs spreadsheet
        extraire extrahieren herausziehen liste tabelle saca extrae
    """),
    TaskType.RETRIEVAL: _words("""
        according per document doc docs documentation policy handbook wiki readme guide
        contract agreement clause terms faq excerpt passage paragraph pasted attached shared uploaded
        report transcript notes says say mention mentioned states source sources cite citation
        citations who when where which year invented discovered population height
        deep tall long official section chapter page article spec specs datasheet sheet
        look find policy's laut según document-ci
    """),
    TaskType.REASONING: _words("""
        probability chance expected expectation average mean variance prove proof derive show
        solve equation calculate compute estimate estimation how many much minimum maximum optimal
        minimize maximise maximize cheaper faster better worth cost costs total percent % rate
        interest compound growth break-even breakeven ratio prime integer sum
        logic logically valid puzzle riddle deduce deduction constraints schedule
        trade-off compare assumptions step steps reason think quantify
        x y n per hour hours day days minutes km kg litres liters percentage
        wie cuánto cuántos
    """),
    TaskType.CREATIVE: _words("""
        write compose draft poem poems story stories fable myth lyrics song songs
        rap verse sonnet haiku limerick jingle lullaby slogan tagline
        taglines name names title titles brainstorm ideas imagine invent create creative fiction
        fictional novel scene monologue dialogue speech toast eulogy captions announcement
        blurb pitch copy headline ad advert script trailer character villain mascot jokes funny
        playful epic bedtime rhymes
        geschichte poème histoire cuento canción eslogan escribe
        schreib rédige
    """),
    TaskType.CHAT: _words("""
        hi hey hello yo thanks thank morning ok okay lol advice tips tip
        recommend suggestion suggest feel feeling nervous bored stressed think opinion thoughts
        explain simple simply plain words eli5 understand difference meaning translate
        translation rephrase reword proofread grammar polite politely friendlier
        tone shorter shorten say chat talk habits healthy better
        bonjour hola kannst erklären recomiendas
    """),
}
# fmt: on


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Characters read: the system prompt's head, the last user message's head and tail."""

    system_chars: int = 300
    head_chars: int = 600
    tail_chars: int = 300

    def __post_init__(self) -> None:
        if min(self.system_chars, self.head_chars, self.tail_chars) < 1:
            raise ValueError("classifier scan limits must be >= 1")


@dataclass(frozen=True, slots=True)
class PromptParts:
    """What the model reads of a request (already cut to `ScanLimits`)."""

    system: str  # head of the system prompt, "" without one
    user: str  # head and tail of the last user message, "\n"-joined when cut
    user_chars: int  # length of the whole last user message
    total_chars: int  # all messages
    structured_output: bool  # JSON output or a forced tool call was asked for


def cut(text: str, head: int, tail: int) -> str:
    if len(text) <= head + tail:
        return text
    return f"{text[:head]}\n{text[-tail:]}"


def prompt_parts(request: ChatRequest, limits: ScanLimits) -> PromptParts:
    system = ""
    for message in request.messages:
        if message.role is Role.SYSTEM:
            system = message.content[: limits.system_chars]
            break
    user = ""
    user_chars = 0
    for message in reversed(request.messages):
        if message.role is Role.USER:
            user = cut(message.content, limits.head_chars, limits.tail_chars)
            user_chars = len(message.content)
            break
    total = 0
    for message in request.messages:  # a plain loop: a generator costs more for a few messages
        total += len(message.content)
    return PromptParts(system, user, user_chars, total, _asks_for_structure(request))


def _asks_for_structure(request: ChatRequest) -> bool:
    response_format = request.response_format
    if response_format is not None and response_format.type is not ResponseFormatType.TEXT:
        return True
    choice = request.tool_choice
    return choice is not None and choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.FUNCTION)


def tokens(text: str) -> list[str]:
    """Lower-case words, split on whitespace and punctuation (not on + # - _: "c++", "#include")."""
    if text.isascii():  # the usual case: one byte-table pass lower-cases and splits
        return text.encode().translate(_ASCII_TABLE).decode().split()
    return text.lower().translate(_WORD_SEPARATORS).split()


def _bucket(n: int) -> int:
    """0, 1, 2-3, 4-7, ...: log2 buckets, capped, so lengths and counts are a few coarse features."""
    return min(n.bit_length(), 14)


def structure_marks(parts: PromptParts) -> list[str]:
    """Coarse, cheap signals a bag of words misses: pasted code, data, tables, questions, size."""
    user = parts.user
    marks = [f"{_MARK}len{_bucket(parts.user_chars // 64)}", f"{_MARK}lines{_bucket(user.count(chr(10)))}"]
    if "```" in user or "```" in parts.system:
        marks.append(_MARK + "fence")
    if '":' in user or "': " in user:
        marks.append(_MARK + "jsonish")
    if user.count("|") >= 4 or user.count("\t") >= 3:
        marks.append(_MARK + "table")
    if user.count(";") + user.count("{") + user.count("=") >= 4:
        marks.append(_MARK + "codeish")
    digits = sum(map(user.count, "0123456789"))
    marks.append(f"{_MARK}digits{_bucket(digits // 4)}")
    if user.rstrip().endswith("?"):
        marks.append(_MARK + "endq")
    if parts.system:
        marks.append(_MARK + "system")
    if parts.structured_output:
        marks.append(_MARK + "structured")
    if parts.total_chars > parts.user_chars + 4_000:
        marks.append(_MARK + "history")
    return marks


_CUE_MARKS = tuple(
    (words, tuple(f"{_MARK}cue:{task.value}:{n}" for n in range(4))) for task, words in CUES.items()
)


def cue_marks(words: set[str]) -> list[str]:
    """Per task, how many distinct cue words occur: none, 1, 2, 3 or more (one feature each level)."""
    marks = []
    for cues, names in _CUE_MARKS:
        found = len(cues.intersection(words))
        if found:
            marks.append(names[min(found, 3) - 1])
            if found >= 2:
                marks.append(names[3])  # "at least two": shared by 2 and 3+, so the weights generalize
    return marks


def features(parts: PromptParts) -> list[str]:
    """The prompt's distinct features (order is irrelevant to the score)."""
    words = tokens(parts.user)
    # System words are their own features: "you extract entities" there means something else than
    # in a user's pasted text.
    system_words = ["s:" + word for word in tokens(parts.system)] if parts.system else []
    out = set(words)
    out.update([f"{a} {b}" for a, b in pairwise(words)])
    out.update([word[:_PREFIX] + "~" for word in words if len(word) > _PREFIX])
    out.update(system_words)
    out.update(structure_marks(parts))
    out.update(cue_marks(out))
    return list(out)


@dataclass(frozen=True, slots=True)
class LinearModel:
    classes: tuple[TaskType, ...]
    bias: tuple[float, ...]
    weights: Mapping[str, tuple[float, ...]]  # feature -> one weight per class
    limits: ScanLimits = ScanLimits()

    def scores(self, feats: Sequence[str]) -> list[float]:
        rows = list(filter(None, map(self.weights.get, feats)))
        if not rows:
            return list(self.bias)
        scale = 1.0 / math.sqrt(len(feats))
        return [b + scale * sum(column) for b, column in zip(self.bias, zip(*rows, strict=True), strict=True)]

    def probabilities(self, feats: Sequence[str]) -> list[float]:
        return softmax(self.scores(feats))

    def to_json(self) -> str:
        """A stable text form: sorted features, weights as written (already rounded by the trainer)."""
        body = {
            "format": FORMAT_VERSION,
            "classes": [task.value for task in self.classes],
            "limits": {
                "system_chars": self.limits.system_chars,
                "head_chars": self.limits.head_chars,
                "tail_chars": self.limits.tail_chars,
            },
            "bias": list(self.bias),
            "weights": {feature: list(self.weights[feature]) for feature in sorted(self.weights)},
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LinearModel:
        body = json.loads(text)
        if body.get("format") != FORMAT_VERSION:
            raise ValueError(f"classifier model: format {body.get('format')!r}, expected {FORMAT_VERSION}")
        classes = tuple(TaskType(value) for value in body["classes"])
        width = len(classes)
        bias = tuple(float(b) for b in body["bias"])
        weights = {f: tuple(float(w) for w in row) for f, row in body["weights"].items()}
        if len(bias) != width or any(len(row) != width for row in weights.values()):
            raise ValueError("classifier model: every weight row needs one value per class")
        return cls(classes=classes, bias=bias, weights=weights, limits=ScanLimits(**body["limits"]))


def softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]
