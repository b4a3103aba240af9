"""The simulated answer: deterministic text, JSON or tool call, token usage and quality.

Pure and deterministic from the request and profile, so the same prompt always yields the same
answer and tests can assert exact content and usage.

What is answered (OpenAI's semantics):
- a tool call when `SimRequest.requested_tool` picks one (tool_choice "required" or a named
  function; "auto" with `call:<name>` in the prompt; never with "none"): finish_reason
  "tool_calls", arguments a JSON object valid against the tool's `parameters` schema
  (`sim.schema_value`; strings echo the prompt's first 40 characters);
- with `response_format` json_object: a JSON object, `{"answer": "<the text answer>"}`;
  with json_schema: a JSON value valid against the schema (`sim.schema_value`);
- otherwise the text answer, `answer_tokens` words (fewer with max_tokens, finish "length").

Token rules (documented because routers and tests compute costs from them):
- prompt_tokens = ceil(total characters of all message text / 4), where a message's text is its
  string content or the concatenated `text` of its content parts;
- completion_tokens = number of answer words (words are joined with single spaces), or for a
  tool call ceil((len(tool name) + len(arguments JSON)) / 4), or for a JSON answer
  ceil(len(JSON text) / 4); a JSON answer longer than max_tokens is cut to max_tokens * 4
  characters with finish "length" (invalid JSON then, as a real model's would be);
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
from router_service.sim.schema_value import value_for

_PROMPT_PREFIX_CHARS = 40
_FILLER = (
    "the", "router", "picked", "this", "model", "because", "it", "was", "healthy", "cheap", "and",
    "fast", "enough", "for", "the", "task", "so", "here", "is", "a", "plausible", "but", "entirely",
    "synthetic", "continuation", "of", "words",
)  # fmt: skip
_JSON_DELTA_CHARS = 16  # a streamed JSON answer comes in pieces of this many characters
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


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
    words: tuple[str, ...]  # empty for a tool call or a JSON answer
    tool_call: ToolCallAnswer | None
    finish_reason: str
    usage: SimUsage
    quality: float
    json_text: str = ""  # a JSON answer (response_format json_object / json_schema)

    @property
    def content(self) -> str:
        return self.json_text or " ".join(self.words)

    def content_deltas(self) -> list[str]:
        """One delta per word (JSON: per few characters); their concatenation equals `content`."""
        if self.json_text:
            text, step = self.json_text, _JSON_DELTA_CHARS
            return [text[i : i + step] for i in range(0, len(text), step)]
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
    if req.response_format != "text":
        return _json_answer(req, " ".join(words), SimUsage(prompt, 0, cached), quality)
    return Answer(words, None, finish, SimUsage(prompt, len(words), cached), quality)


def _json_answer(req: SimRequest, text: str, usage: SimUsage, quality: float) -> Answer:
    if req.response_format == "json_schema":
        value = value_for(req.response_schema or {}, req.last_user_text[:_PROMPT_PREFIX_CHARS])
    else:
        value = {"answer": text}
    body = _dumps(value)
    finish = "stop"
    if req.max_tokens is not None and math.ceil(len(body) / 4) > req.max_tokens:
        body, finish = body[: req.max_tokens * 4], "length"
    usage = SimUsage(usage.prompt_tokens, math.ceil(len(body) / 4), usage.cached_tokens)
    return Answer((), None, finish, usage, quality, json_text=body)


def answer_words(model: str, prompt: str, count: int) -> tuple[str, ...]:
    """ "Simulated answer from <model> to: <first 40 chars>" padded with filler to `count` words."""
    head = f"Simulated answer from {model} to: {prompt[:_PROMPT_PREFIX_CHARS]}".split()
    filler = itertools.islice(itertools.cycle(_FILLER), max(0, count - len(head)))
    return tuple(itertools.chain(head[:count], filler))


def _tool_call(tool: ToolDef, prompt: str) -> ToolCallAnswer:
    args = json.dumps(_arguments_for(tool.parameters, prompt), separators=(",", ":"), ensure_ascii=False)
    digest = zlib.crc32(f"{tool.name}\0{prompt}".encode()) & 0xFFFFFFFF
    return ToolCallAnswer(id=f"call_sim{digest:08x}", name=tool.name, arguments=args)


def _arguments_for(schema: Mapping[str, Any], prompt: str) -> dict[str, Any]:
    """An object valid against the tool's parameters schema; {"input": ...} when it declares none."""
    props = schema.get("properties")
    if not schema.get("required") and (not isinstance(props, dict) or not props):
        return {"input": prompt[:_PROMPT_PREFIX_CHARS]}
    value = value_for({**schema, "type": "object"}, prompt[:_PROMPT_PREFIX_CHARS])
    return value if isinstance(value, dict) else {}
