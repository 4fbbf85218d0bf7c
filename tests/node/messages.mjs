// Anthropic's Messages API through the official TypeScript SDK (`@anthropic-ai/sdk`, pinned in
// tools/package.json, installed into .tools/ by .ci/install-tools) against claude-gateway:
// one streamed answer and one tool round trip. `tests/messages_sdk.rs` starts the gateway on
// the real `claude` CLI with the fake Anthropic API and runs `node tests/node/messages.mjs`
// with GATEWAY_URL and GATEWAY_KEY; the fake API calls a tool when the user text holds
// `[[tool:NAME:{args}]]` and answers a tool result with `Tool said: <result>`. Each test's user
// text carries a `#node-msg-...` marker for the Rust side, and the round trip's call id is
// appended to FEATURES_RECORD (JSON lines) when that is set.
//
// node:test runs the tests when the file is run with plain `node`; any failed assertion makes
// the process exit non-zero.

import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { test } from "node:test";

// ESM ignores NODE_PATH: import the SDK from where .ci/install-tools puts it.
import Anthropic from "../../.tools/node_modules/@anthropic-ai/sdk/index.mjs";

const baseURL = process.env.GATEWAY_URL;
assert.ok(baseURL, "GATEWAY_URL must point at the gateway (tests/messages_sdk.rs sets it)");
const client = new Anthropic({
  baseURL,
  apiKey: process.env.GATEWAY_KEY ?? "unused",
  maxRetries: 0,
  timeout: 90_000,
});
const MODEL = "claude-sonnet-4-5";
const WEATHER = {
  name: "get_weather",
  description: "Current weather in a city.",
  input_schema: {
    type: "object",
    properties: { city: { type: "string", description: "The city, e.g. Paris" } },
    required: ["city"],
  },
};

function record(fields) {
  if (process.env.FEATURES_RECORD) {
    appendFileSync(process.env.FEATURES_RECORD, JSON.stringify(fields) + "\n");
  }
}

const textOf = (message) =>
  message.content
    .filter((b) => b.type === "text")
    .map((b) => b.text)
    .join("");

test("a streamed answer: text events and the final message", async () => {
  const stream = client.messages.stream({
    model: MODEL,
    max_tokens: 1024,
    messages: [{ role: "user", content: "#node-msg-stream Count [[words:4]]" }],
  });
  const pieces = [];
  stream.on("text", (delta) => pieces.push(delta));
  const final = await stream.finalMessage();
  assert.ok(pieces.length >= 2, JSON.stringify(pieces));
  assert.equal(pieces.join(""), "w1 w2 w3 w4");
  assert.equal(textOf(final), "w1 w2 w3 w4");
  assert.match(final.id, /^msg_/);
  assert.equal(final.stop_reason, "end_turn");
  assert.ok(final.usage.input_tokens > 0, JSON.stringify(final.usage));
  assert.ok(final.usage.output_tokens > 0, JSON.stringify(final.usage));
});

test("a tool round trip: tool_use, then the tool_result answered", async () => {
  const question = {
    role: "user",
    content: '#node-msg-tool Weather? [[tool:get_weather:{"city":"Paris"}]]',
  };
  const first = await client.messages.create({
    model: MODEL,
    max_tokens: 1024,
    tools: [WEATHER],
    messages: [question],
  });
  assert.equal(first.stop_reason, "tool_use", JSON.stringify(first));
  const uses = first.content.filter((b) => b.type === "tool_use");
  assert.equal(uses.length, 1, JSON.stringify(first));
  assert.equal(uses[0].name, "get_weather");
  assert.deepEqual(uses[0].input, { city: "Paris" });
  record({ node_messages_call_id: uses[0].id });

  const second = await client.messages.create({
    model: MODEL,
    max_tokens: 1024,
    tools: [WEATHER],
    messages: [
      question,
      { role: "assistant", content: first.content },
      {
        role: "user",
        content: [{ type: "tool_result", tool_use_id: uses[0].id, content: "Windy, 15 C" }],
      },
    ],
  });
  assert.equal(second.stop_reason, "end_turn", JSON.stringify(second));
  assert.equal(textOf(second), "Tool said: Windy, 15 C");
});
