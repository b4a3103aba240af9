// The router's OpenAI-compatible HTTP door driven by the official Node SDK (`openai`, pinned in
// package.json). Driven by tests/integration/test_openai_door_node.py against a real router:
//
//     node openai_door_check.mjs <case>      (ROUTER_BASE_URL=http://127.0.0.1:PORT/v1)
//
// Each case prints one JSON object: what the SDK returned or raised, as the SDK surfaces it. The
// assertions are the pytest's; this script only reports, and exits non-zero when the SDK did
// something no case expects (a call that should fail succeeded, or the reverse).
import OpenAI from "openai";

const HELLO = [{ role: "user", content: "Hello router" }];
const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

// The SDK's own fetch, wrapped to record every HTTP status it saw: retries show up as more than one.
function recordingFetch(statuses, onStatus = async () => {}) {
  return async (url, init) => {
    const response = await fetch(url, init);
    statuses.push(response.status);
    await onStatus(response.status);
    return response;
  };
}

function nextStdinLine() {
  return new Promise((resolve) => {
    process.stdin.once("data", (data) => {
      process.stdin.destroy(); // one line is all it reads: a live stdin would keep node running
      resolve(String(data));
    });
  });
}

function client(options = {}) {
  return new OpenAI({
    baseURL: process.env.ROUTER_BASE_URL,
    apiKey: process.env.ROUTER_API_KEY ?? "unused",
    maxRetries: 0,
    timeout: 20_000,
    ...options,
  });
}

// An APIError as the SDK surfaces it: its class, HTTP status and the OpenAI error fields.
function surfaced(error, statuses) {
  if (!(error instanceof OpenAI.APIError)) throw error;
  return {
    class: error.constructor.name,
    status: error.status ?? null,
    code: error.code ?? null,
    param: error.param ?? null,
    type: error.type ?? null,
    message: error.message,
    retryAfter: error.headers?.get?.("retry-after") ?? null,
    requestId: error.headers?.get?.("x-router-request-id") ?? null,
    statuses,
  };
}

async function expectFailure(call, statuses = []) {
  try {
    await call();
  } catch (error) {
    return surfaced(error, statuses);
  }
  throw new Error("the call succeeded; this case expects the SDK to raise");
}

const cases = {
  async unary() {
    const { data, response } = await client()
      .chat.completions.create({ model: "m2", messages: HELLO })
      .withResponse();
    return {
      id: data.id,
      model: data.model,
      content: data.choices[0].message.content,
      role: data.choices[0].message.role,
      finishReason: data.choices[0].finish_reason,
      usage: data.usage,
      router: data.router, // the extra field: the SDK keeps what it does not know
      headers: {
        requestId: response.headers.get("x-router-request-id"),
        deployment: response.headers.get("x-router-deployment"),
        costNanos: response.headers.get("x-router-cost-nanos"),
      },
    };
  },

  async stream() {
    const stream = await client().chat.completions.create({
      model: "m1",
      messages: HELLO,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    return {
      chunks: chunks.length,
      firstRole: withChoices[0]?.choices[0].delta.role ?? null,
      text: withChoices.map((c) => c.choices[0].delta.content ?? "").join(""),
      finishReasons: withChoices.map((c) => c.choices[0].finish_reason).filter((r) => r),
      lastUsage: chunks.at(-1).usage ?? null,
      lastHasChoices: chunks.at(-1).choices.length > 0,
      router: withChoices.find((c) => c.choices[0].finish_reason)?.router ?? null,
    };
  },

  async errors() {
    const sdk = client({ maxRetries: 2 });
    return {
      invalid: await expectFailure(() =>
        sdk.chat.completions.create({ model: "m1", messages: HELLO, temperature: 3.5 }),
      ),
      unknownModel: await expectFailure(() =>
        sdk.chat.completions.create({ model: "no-such-model", messages: HELLO }),
      ),
    };
  },

  // Every upstream rate-limited: the router answers 503 with Retry-After; maxRetries 2 is three tries.
  async retriesExhausted() {
    const statuses = [];
    const sdk = client({ maxRetries: 2, fetch: recordingFetch(statuses) });
    return expectFailure(() => sdk.chat.completions.create({ model: "router", messages: HELLO }), statuses);
  },

  // The same, but the upstreams recover as the first 503 reaches the SDK (before it waits and
  // retries): the retry is answered. SIM_ADMIN_URLS: the sims' admin bases, comma-separated.
  async retryRecovers() {
    const statuses = [];
    const recover = async (status) => {
      if (status !== 503 || statuses.length !== 1) return;
      for (const base of (process.env.SIM_ADMIN_URLS ?? "").split(",").filter((u) => u)) {
        const body = JSON.stringify({ model: "*", profile: { rate_limit_rate: 0 } });
        const r = await fetch(`${base}/admin/profile`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        if (!r.ok) throw new Error(`sim admin ${base}: HTTP ${r.status}`);
      }
    };
    const sdk = client({ maxRetries: 1, fetch: recordingFetch(statuses, recover) });
    const completion = await sdk.chat.completions.create({ model: "router", messages: HELLO });
    return { statuses, content: completion.choices[0].message.content };
  },

  // A concurrency limit is full (the test holds its one slot with a stream): first 429 as the SDK
  // raises it without retries; then with maxRetries 1, the first 429 is reported on stdout
  // ({"event":"429"}) and the retry waits until the test has freed the slot and said so on stdin,
  // before the SDK sleeps its Retry-After and tries again.
  async rateLimited() {
    const refused = await expectFailure(() =>
      client().chat.completions.create({ model: "router", messages: HELLO }),
    );
    const statuses = [];
    const handshake = async (status) => {
      if (status !== 429 || statuses.length !== 1) return;
      console.log(JSON.stringify({ event: "429" }));
      await nextStdinLine();
    };
    const sdk = client({ maxRetries: 1, fetch: recordingFetch(statuses, handshake) });
    const completion = await sdk.chat.completions.create({ model: "router", messages: HELLO });
    return { refused, statuses, content: completion.choices[0].message.content };
  },

  // A forced tool call, unary and streamed (the streamed arguments joined), then the call and its
  // result sent back as the next turn.
  async tools() {
    const sdk = client();
    const ask = [{ role: "user", content: "Weather in Paris?" }];
    const unary = await sdk.chat.completions.create({
      model: "m1",
      messages: ask,
      tools: [WEATHER_TOOL],
      tool_choice: "required",
    });
    const stream = await sdk.chat.completions.create({
      model: "m1",
      messages: ask,
      tools: [WEATHER_TOOL],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      stream: true,
    });
    let streamedArguments = "";
    for await (const chunk of stream) {
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) {
        streamedArguments += call.function?.arguments ?? "";
      }
    }
    const calls = unary.choices[0].message.tool_calls ?? [];
    const followUp = await sdk.chat.completions.create({
      model: "m1",
      messages: [
        ...ask,
        { role: "assistant", tool_calls: calls },
        { role: "tool", tool_call_id: calls[0]?.id ?? "", content: '{"celsius": 21}' },
      ],
      tools: [WEATHER_TOOL],
    });
    return {
      finishReason: unary.choices[0].finish_reason,
      calls: calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
      streamedArguments,
      followUp: followUp.choices[0].message.content,
    };
  },

  // JSON mode and structured output: the content as the SDK returned it (the test parses it).
  async jsonMode() {
    const sdk = client();
    const schema = { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] };
    const asObject = await sdk.chat.completions.create({
      model: "m1",
      messages: HELLO,
      response_format: { type: "json_object" },
    });
    const asSchema = await sdk.chat.completions.create({
      model: "m1",
      messages: HELLO,
      response_format: { type: "json_schema", json_schema: { name: "reply", schema } },
    });
    return { object: asObject.choices[0].message.content, schema: asSchema.choices[0].message.content };
  },

  // The caller stops reading after the first chunk and aborts the stream (the SDK's
  // stream.controller.abort(), what `break` out of for-await also does): the test checks that the
  // upstream call was cut. Prints after the abort; the pytest waits for the sim to see it.
  async cancelStream() {
    const stream = await client().chat.completions.create({ model: "m1", messages: HELLO, stream: true });
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += chunk.choices.length;
      break; // the SDK aborts the request when the loop is left
    }
    return { chunks, aborted: stream.controller.signal.aborted };
  },

  // The upstream cuts the stream after its first chunk: the SDK raises, never a clean end.
  async streamCut() {
    const stream = await client().chat.completions.create({ model: "m1", messages: HELLO, stream: true });
    let text = "";
    const failure = await expectFailure(async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    });
    return { text, failure };
  },
};

const name = process.argv[2];
if (!(name in cases)) {
  console.error(`usage: node openai_door_check.mjs <${Object.keys(cases).join("|")}>`);
  process.exit(2);
}
try {
  console.log(JSON.stringify(await cases[name]()));
  process.exit(0); // idle keep-alive sockets must not hold the process
} catch (error) {
  console.error(error?.stack ?? String(error));
  process.exit(1);
}
