"""The README's quick start, run as a new user would: `router-service up` as a real process, then
every `routerctl` command of README.md's "Two commands" section as a subprocess.

The commands are read from README.md itself, so the test fails when the README drifts from what
works (only the feedback placeholder `<request-id>` is replaced, by the id a `complete` printed,
and the README's `export ROUTER_API_KEY=...` line by the dev key `up` printed). The dev key is
attributed and may give feedback for its own requests; without a key a caller is anonymous (no
feedback: PERMISSION_DENIED), and a wrong key is UNAUTHENTICATED.
Then about a hundred ordinary, varied prompts go through the embedded default policy, none of
which may fail NO_ELIGIBLE_CANDIDATE, and forced tool calls and JSON modes come back as such
through the router from the simulated providers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.embedded.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "router_launcher.cli"]
ROUTERCTL = ROOT / ".venv" / "bin" / "routerctl"
SUMMARY = re.compile(
    r"^-- (?P<deployment>[\w.:-]+/[\w.:-]+) \| attempts \d+ \| \d+ ms \| "
    r"tokens \d+ in / \d+ out \| \$\d+\.\d{9} \| request (?P<request_id>\S+)$",
    re.MULTILINE,
)
DEV_KEY_LINE = re.compile(r"^  export ROUTER_API_KEY=(lrk_k_dev\.\S+)$", re.MULTILINE)


def _readme_block() -> list[str]:
    """The lines of the code block after "With the stack up" in "## Two commands"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    after = section.split("With the stack up", 1)[1]
    return after.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()


def readme_commands() -> list[str]:
    """The routerctl lines of that block."""
    return [line.strip() for line in _readme_block() if "routerctl" in line]


@dataclass
class Stack:
    target: str
    log: Path
    key: str = ""  # the dev key `up` printed
    openai_listen: str = ""  # the OpenAI door's HOST:PORT (a free port, not the README's 8080)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("up")
    port, openai_listen = free_port(), f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "ROUTER_OPENAI_LISTEN": openai_listen,
        "ROUTER_METRICS_LISTEN": "",
        "CONSUMER_METRICS_LISTEN": "",
        "EVENTS_SPOOL_DIR": str(tmp / "spool"),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    log = tmp / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CLI, "up", "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    stack = Stack(f"127.0.0.1:{port}", log, openai_listen=openai_listen)
    try:
        deadline = time.monotonic() + 60
        while "embedded stack is up" not in stack.text():
            assert process.poll() is None, stack.text()
            assert time.monotonic() < deadline, stack.text()
            time.sleep(0.1)
        with grpc.insecure_channel(stack.target) as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
        printed = DEV_KEY_LINE.search(stack.text())
        assert printed, stack.text()
        stack.key = printed[1]
        yield stack
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _routerctl(stack: Stack, command: str, key: str) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/routerctl", command
    env = {**os.environ, "ROUTER_TARGET": stack.target, "ROUTER_API_KEY": key}
    return subprocess.run(
        [str(ROUTERCTL), *argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_readme_lists_the_commands_this_test_runs() -> None:
    verbs = [shlex.split(c)[1] for c in readme_commands()]
    assert verbs == ["complete", "complete", "route", "feedback"], readme_commands()
    assert "<request-id>" in readme_commands()[-1]


def test_the_readme_exports_the_printed_key_before_the_commands() -> None:
    first = _readme_block()[0]
    assert first.startswith("export ROUTER_API_KEY=lrk_k_dev."), first


def test_every_readme_command_succeeds_against_up(stack: Stack) -> None:
    request_id = ""
    for command in readme_commands():
        if "<request-id>" in command:
            assert request_id, "a complete must run before feedback"
            command = command.replace("<request-id>", request_id)
        done = _routerctl(stack, command, stack.key)
        where = f"{command}\nstdout: {done.stdout}\nstderr: {done.stderr}"
        assert done.returncode == 0, where
        verb = shlex.split(command)[1]
        if verb == "complete":
            summary = SUMMARY.search(done.stderr)
            assert summary, where
            assert done.stdout.strip().startswith("Simulated answer from"), where
            request_id = summary["request_id"]
        elif verb == "route":
            lines = done.stdout.splitlines()
            assert re.match(r"^policy=default strategy=\S+ task=\w+$", lines[0]), where
            assert re.match(r"^chosen: \S+/\S+$", lines[1]), where
            assert lines[3].split()[:4] == ["candidate", "eligible", "score", "quality"], where
        else:
            assert done.stdout.strip() == "recorded", where
    # The README's feedback without the exported key: anonymous, which may not give feedback.
    anonymous = _routerctl(stack, readme_commands()[-1].replace("<request-id>", request_id), "")
    assert anonymous.returncode != 0 and "error: PERMISSION_DENIED" in anonymous.stderr, anonymous


# --- the dev key: attributed, allowed feedback; anonymous and wrong keys ---------------------------


def _bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def _feedback(stub: pb_grpc.RouterServiceStub, request_id: str, key: str) -> tuple[str, str]:
    try:
        stub.Feedback(
            pb.FeedbackRequest(request_id=request_id, score=0.8),
            metadata=_bearer(key) if key else (),
            timeout=10,
        )
    except grpc.RpcError as error:
        return _error(error)
    return "OK", ""


def test_feedback_needs_the_dev_key_and_a_request_the_key_made(stack: Stack) -> None:
    chat = _chat("Write a haiku about the sea")
    with grpc.insecure_channel(stack.target) as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        keyed = stub.Complete(pb.CompleteRequest(chat=chat), metadata=_bearer(stack.key), timeout=30)
        anonymous = stub.Complete(pb.CompleteRequest(chat=chat), timeout=30)
        code, detail = _feedback(stub, keyed.routing.request_id, "")
        assert code == "PERMISSION_DENIED" and "lacks the 'feedback' scope" in detail, detail
        assert _feedback(stub, keyed.routing.request_id, stack.key) == ("OK", "")
        # The anonymous request is not k_dev's (nor its team's): the key's calls are attributed.
        assert _feedback(stub, anonymous.routing.request_id, stack.key)[0] == "PERMISSION_DENIED"


def test_a_wrong_key_is_unauthenticated_and_the_secret_is_printed_once(stack: Stack) -> None:
    key_id, _, secret = stack.key.partition(".")
    wrong = f"{key_id}.{secret[::-1]}"
    with grpc.insecure_channel(stack.target) as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        for call in (
            lambda: stub.Route(pb.RouteRequest(chat=_chat("hi")), metadata=_bearer(wrong), timeout=10),
            lambda: stub.Complete(pb.CompleteRequest(chat=_chat("hi")), metadata=_bearer(wrong), timeout=10),
        ):
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    routed = _routerctl(stack, '.venv/bin/routerctl route "Summarise this contract"', stack.key)
    assert routed.returncode == 0, routed.stderr
    assert stack.text().count(secret) == 1  # the export line; never in a log line


# --- the embedded default policy serves ordinary prompts ------------------------------------------

_SUBJECTS = ("the sea", "a database migration", "autumn in Kyoto", "our Q3 invoice", "a lost cat")
_KINDS = (
    "Write a haiku about {}",
    "Write a short poem about {}",
    "Compose a limerick about {}",
    "Tell me a story about {}",
    "Extract the names and dates from this note about {}: Anna met Bo on 3 May 2024.",
    "List every email address mentioned here about {}: ops@example.com, jo@example.org",
    "Pull out the amounts and currencies from this text about {}: 12 EUR, 40 USD",
    "Summarise this contract about {} in two sentences",
    "What's up? Tell me something about {}",
    "Hi! How would you describe {}?",
    "Write a Python function that sorts a list of {}",
    "Fix this bug: `for i in range(len(x)): x.pop(i)` while iterating over {}",
    "Explain step by step why {} matters, and prove your reasoning",
    "Translate 'good morning' into French, in the context of {}",
    "Classify the sentiment of this review of {}: 'great, but slow'",
    "Give me three bullet points about {}",
    "Explain SO_REUSEPORT in one sentence, as if to someone who likes {}",
    "Answer in JSON: what colour is {}?",
    "Brainstorm five names for a product about {}",
    "Rewrite this paragraph about {} to sound friendlier",
)
PROMPTS = [kind.format(subject) for kind in _KINDS for subject in _SUBJECTS]  # 100


def _error(error: grpc.RpcError) -> tuple[str, str]:
    """(status code name, "<ErrorInfo reason>: <message>")."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    reason = ""
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reason = info.reason
    return error.code().name, f"{reason}: {error.details()}"  # type: ignore[attr-defined]


def _complete(stub: pb_grpc.RouterServiceStub, chat: pb.ChatRequest) -> tuple[str, str]:
    try:
        response = stub.Complete(pb.CompleteRequest(chat=chat), timeout=30)
    except grpc.RpcError as error:
        return _error(error)
    return "OK", pb.FinishReason.Name(response.finish_reason)


def test_a_hundred_ordinary_prompts_never_fail_no_eligible_candidate(stack: Stack) -> None:
    assert len(PROMPTS) == 100
    chats = [pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content=p)]) for p in PROMPTS]
    with grpc.insecure_channel(stack.target) as channel, ThreadPoolExecutor(8) as pool:
        stub = pb_grpc.RouterServiceStub(channel)
        outcomes = list(pool.map(lambda chat: _complete(stub, chat), chats))
    refused = [(p, o) for p, o in zip(PROMPTS, outcomes, strict=True) if "NO_ELIGIBLE_CANDIDATE" in o[1]]
    assert not refused, refused
    assert all(code != "FAILED_PRECONDITION" for code, _ in outcomes), outcomes


# --- tools, JSON, pins and long prompts through the router -----------------------------------------

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}


def _struct(value: dict[str, object]) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


def _chat(text: str, **fields: object) -> pb.ChatRequest:
    return pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content=text)], **fields)  # type: ignore[arg-type]


def test_a_forced_tool_call_comes_back_as_one_unary_and_streamed(stack: Stack) -> None:
    chat = _chat(
        "What is the weather in Paris?",
        tools=[pb.Tool(name="get_weather", parameters=_struct(WEATHER))],
        tool_choice=pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_REQUIRED),
    )
    with grpc.insecure_channel(stack.target) as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        response = stub.Complete(pb.CompleteRequest(chat=chat), timeout=30)
        streamed = list(stub.Stream(pb.StreamRequest(chat=chat), timeout=30))
    assert response.finish_reason == pb.FINISH_REASON_TOOL_CALLS
    (call,) = response.message.tool_calls
    arguments = json.loads(call.arguments_json)
    assert (
        call.name == "get_weather"
        and isinstance(arguments["city"], str)
        and isinstance(arguments["days"], int)
    )
    end = streamed[-1]
    assert end.WhichOneof("event") == "end" and end.end.finish_reason == pb.FINISH_REASON_TOOL_CALLS


def test_json_modes_answer_json_through_the_router(stack: Stack) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["title", "tags"],
    }
    with grpc.insecure_channel(stack.target) as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        obj = stub.Complete(
            pb.CompleteRequest(
                chat=_chat(
                    "Describe Paris",
                    response_format=pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_OBJECT),
                )
            ),
            timeout=30,
        )
        shaped = stub.Complete(
            pb.CompleteRequest(
                chat=_chat(
                    "Describe Paris",
                    response_format=pb.ResponseFormat(
                        type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
                        json_schema=_struct(schema),
                        schema_name="place",
                    ),
                )
            ),
            timeout=30,
        )
    assert isinstance(json.loads(obj.message.content), dict)
    value = json.loads(shaped.message.content)
    assert isinstance(value["title"], str) and isinstance(value["tags"], list)


def test_a_pin_with_disable_fallback_is_not_refused_by_the_policy_floor(stack: Stack) -> None:
    """Forced JSON is classified as extraction, for which swift-1 has no prior (its mean is
    0.725), and the caller asks for 0.9: the pin still routes. Route, not Complete, and a few
    tries: a simulated upstream failure may open the breaker, which (rightly) excludes a pin."""
    chat = _chat(
        "Extract the dates: 3 May 2024",
        model=pb.ModelSelector(model="swift-1", disable_fallback=True),
        response_format=pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_OBJECT),
        routing=pb.RoutingHints(min_quality=0.9),
    )
    chosen = ""
    with grpc.insecure_channel(stack.target) as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        for _ in range(50):
            try:
                chosen = stub.Route(pb.RouteRequest(chat=chat), timeout=30).decision.chosen
                break
            except grpc.RpcError as error:
                assert "floor" not in _error(error)[1], _error(error)
                time.sleep(0.2)
    assert chosen == "sim-fast/swift-1"


def test_route_shows_quality_estimates_and_whether_they_are_known(stack: Stack) -> None:
    with grpc.insecure_channel(stack.target) as channel:
        decision = (
            pb_grpc.RouterServiceStub(channel)
            .Route(
                pb.RouteRequest(
                    chat=_chat(
                        "Write a haiku about the sea",
                        routing=pb.RoutingHints(task_type=pb.TASK_TYPE_CREATIVE),
                    )
                ),
                timeout=30,
            )
            .decision
        )
    by_model = {c.model: c for c in decision.candidates}
    assert by_model["thrifty-1"].quality == pytest.approx(0.6) and by_model["thrifty-1"].quality_known
    assert by_model["sage-1"].quality == pytest.approx((0.92 + 0.93 + 0.9) / 3)


def test_a_prompt_too_long_for_every_model_is_context_length_exceeded(stack: Stack) -> None:
    with grpc.insecure_channel(stack.target) as channel, pytest.raises(grpc.RpcError) as error:
        pb_grpc.RouterServiceStub(channel).Complete(
            pb.CompleteRequest(chat=_chat("word " * 200_000)), timeout=30
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    code, detail = _error(error.value)
    assert (code, detail.split(":")[0]) == ("INVALID_ARGUMENT", "CONTEXT_LENGTH_EXCEEDED")
