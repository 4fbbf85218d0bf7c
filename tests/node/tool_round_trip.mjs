// Function calling through the official Node `openai` SDK (pinned in tools/package.json,
// installed into .tools/ by .ci/install-tools) against claude-gateway. `tests/features.rs`
// starts the gateway on the real `claude` CLI with the fake Anthropic API and runs
// `node tests/node/tool_round_trip.mjs` with OPENAI_BASE_URL=<gateway>/v1; the fake API calls
// a tool when the user text holds `[[tool:NAME:{args}]]` and answers a tool result with
// `Tool said: <result>`. Each test's user text carries a `#node-...` marker for the Rust side,
// and the round trip's call id is appended to FEATURES_RECORD (JSON lines) when that is set.
//
// node:test runs the tests when the file is run with plain `node`; any failed assertion makes
// the process exit non-zero.

import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { test } from "node:test";

// ESM ignores NODE_PATH: import the SDK from where .ci/install-tools puts it.
import OpenAI from "../../.tools/node_modules/openai/index.mjs";

const baseURL = process.env.OPENAI_BASE_URL;
assert.ok(baseURL, "OPENAI_BASE_URL must point at the gateway (tests/features.rs sets it)");
const client = new OpenAI({
  baseURL,
  apiKey: process.env.OPENAI_API_KEY ?? "unused",
  maxRetries: 0,
  timeout: 90_000,
});
const MODEL = "gpt-4o";

const WEATHER_PARAMETERS = {
  type: "object",
  properties: { city: { type: "string", description: "The city, e.g. Paris" } },
  required: ["city"],
};
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather in a city.",
      parameters: WEATHER_PARAMETERS,
    },
  },
];
const CALL_WEATHER = '[[tool:get_weather:{"city":"Paris"}]]';

function record(fields) {
  if (process.env.FEATURES_RECORD) {
    appendFileSync(process.env.FEATURES_RECORD, JSON.stringify(fields) + "\n");
  }
}

test("a tool call, then its result sent back", async () => {
  const messages = [{ role: "user", content: `#node-round-trip Weather in Paris? ${CALL_WEATHER}` }];
  const first = await client.chat.completions.create({ model: MODEL, messages, tools });
  assert.equal(first.object, "chat.completion");
  assert.equal(first.model, MODEL);
  const choice = first.choices[0];
  assert.equal(choice.finish_reason, "tool_calls", JSON.stringify(first));
  assert.equal(choice.message.tool_calls.length, 1, JSON.stringify(first));
  const call = choice.message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.ok(call.id, "the call has an id");
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });

  messages.push(choice.message);
  messages.push({ role: "tool", tool_call_id: call.id, content: "Windy, 15 C" });
  const second = await client.chat.completions.create({ model: MODEL, messages, tools });
  assert.equal(second.choices[0].message.content, "Tool said: Windy, 15 C", JSON.stringify(second));
  assert.equal(second.choices[0].finish_reason, "stop");
  assert.ok(!second.choices[0].message.tool_calls?.length);
  record({ node_round_trip_call_id: call.id });
});

test("streamed tool call deltas reassemble into the call", async () => {
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: `#node-stream Weather? ${CALL_WEATHER}` }],
    tools,
    stream: true,
  });
  const calls = new Map();
  const finishes = [];
  let first = true;
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (first) {
      assert.equal(choice.delta.role, "assistant", JSON.stringify(chunk));
      first = false;
    }
    for (const tc of choice.delta.tool_calls ?? []) {
      if (!calls.has(tc.index)) {
        assert.ok(tc.id && tc.function?.name, `first fragment has id and name: ${JSON.stringify(tc)}`);
        calls.set(tc.index, { id: tc.id, name: tc.function.name, args: "" });
      }
      calls.get(tc.index).args += tc.function?.arguments ?? "";
    }
    if (choice.finish_reason) finishes.push(choice.finish_reason);
  }
  assert.deepEqual([...calls.keys()], [0]);
  assert.equal(calls.get(0).name, "get_weather");
  assert.deepEqual(JSON.parse(calls.get(0).args), { city: "Paris" });
  assert.deepEqual(finishes, ["tool_calls"]);
});

test("runTools runs the function locally and finishes with Claude's answer", async () => {
  const ran = [];
  const runner = client.chat.completions.runTools({
    model: MODEL,
    messages: [{ role: "user", content: `#node-run-tools Weather in Paris? ${CALL_WEATHER}` }],
    tools: [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Current weather in a city.",
          parameters: WEATHER_PARAMETERS,
          parse: JSON.parse,
          function: ({ city }) => {
            ran.push(city);
            return `Snow in ${city}`;
          },
        },
      },
    ],
  });
  const content = await runner.finalContent();
  assert.deepEqual(ran, ["Paris"]);
  assert.equal(content, "Tool said: Snow in Paris");
});
