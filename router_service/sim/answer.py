"""The simulated answer: deterministic text or tool call, token usage and quality.

Pure and deterministic from the request and profile, so the same prompt always yields the same
answer and tests can assert exact content and usage.

Token rules (documented because routers and tests compute costs from them):
- prompt_tokens = ceil(total characters of all message text / 4), where a message's text is its
  string content or the concatenated `text` of its content parts;
- completion_tokens = number of answer words (words are joined with single spaces), or for a
  tool call ceil((len(tool name) + len(arguments JSON)) / 4);
- prompt_tokens_details.cached_tokens = floor(prompt_tokens * cached_prompt_fraction).
"""

from __future__ import annotations

import itertools
import json
import math
import zlib
from dataclasses import dataclass
from typing import Any, Mapping

from router_service.sim.profile import SimProfile
from router_service.sim.request import SimRequest, ToolDef

_PROMPT_PREFIX_CHARS = 40
_FILLER = (
    "the", "router", "picked", "this", "model", "because", "it", "was", "healthy", "cheap", "and",
    "fast", "enough", "for", "the", "task", "so", "here", "is", "a", "plausible", "but", "entirely",
    "synthetic", "continuation", "of", "words",
)  # fmt: skip
# Argument values per JSON Schema type; strings echo the prompt.
_TYPE_SAMPLES: dict[str, Any] = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}


@dataclass(frozen=True, slots=True)
class SimUsage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ToolCallAnswer:
    id: str
    name: str
    arguments: str  # JSON object text

    def argument_fragments(self) -> list[str]:
        """The arguments cut into at least two pieces, as providers stream them."""
        n = len(self.arguments)
        cuts = sorted({0, n // 3, (2 * n) // 3, n} | {1})
        return [self.arguments[a:b] for a, b in itertools.pairwise(cuts) if a < b]


@dataclass(frozen=True, slots=True)
class Answer:
    words: tuple[str, ...]  # empty for a tool call
    tool_call: ToolCallAnswer | None
    finish_reason: str
    usage: SimUsage
    quality: float

    @property
    def content(self) -> str:
        return " ".join(self.words)

    def content_deltas(self) -> list[str]:
        """One delta per word; their concatenation equals `content`."""
        return [w if i == 0 else " " + w for i, w in enumerate(self.words)]


def estimate_prompt_tokens(texts: tuple[str, ...]) -> int:
    return math.ceil(sum(len(t) for t in texts) / 4)


def compose_answer(req: SimRequest, profile: SimProfile) -> Answer:
    prompt = estimate_prompt_tokens(req.texts)
    cached = math.floor(prompt * profile.cached_prompt_fraction)
    quality = profile.quality_for(req.task)
    tool = req.requested_tool()
    if tool is not None:
        call = _tool_call(tool, req.last_user_text)
        completion = math.ceil((len(call.name) + len(call.arguments)) / 4)
        return Answer((), call, "tool_calls", SimUsage(prompt, completion, cached), quality)
    limit = profile.answer_tokens if req.max_tokens is None else min(req.max_tokens, profile.answer_tokens)
    words = answer_words(req.model, req.last_user_text, profile.answer_tokens)[:limit]
    finish = "length" if limit < profile.answer_tokens else "stop"
    return Answer(words, None, finish, SimUsage(prompt, len(words), cached), quality)


def answer_words(model: str, prompt: str, count: int) -> tuple[str, ...]:
    """ "Simulated answer from <model> to: <first 40 chars>" padded with filler to `count` words."""
    head = f"Simulated answer from {model} to: {prompt[:_PROMPT_PREFIX_CHARS]}".split()
    filler = itertools.islice(itertools.cycle(_FILLER), max(0, count - len(head)))
    return tuple(itertools.chain(head[:count], filler))


def _tool_call(tool: ToolDef, prompt: str) -> ToolCallAnswer:
    args = json.dumps(_arguments_for(tool.parameters, prompt), separators=(",", ":"))
    digest = zlib.crc32(f"{tool.name}\0{prompt}".encode()) & 0xFFFFFFFF
    return ToolCallAnswer(id=f"call_sim{digest:08x}", name=tool.name, arguments=args)


def _arguments_for(schema: Mapping[str, Any], prompt: str) -> dict[str, Any]:
    """A value of the declared JSON type for each declared property; {"input": ...} without any."""
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return {"input": prompt[:_PROMPT_PREFIX_CHARS]}
    return {name: _sample_value(spec, prompt) for name, spec in props.items()}


def _sample_value(spec: object, prompt: str) -> Any:
    if not isinstance(spec, dict):
        return "sim"
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = spec.get("type")
    if isinstance(kind, str) and kind in _TYPE_SAMPLES:
        return _TYPE_SAMPLES[kind]
    return prompt[:_PROMPT_PREFIX_CHARS] or "sim"
