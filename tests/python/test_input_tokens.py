"""`client.responses.input_tokens.count` of the official `openai` Python SDK against
claude-gateway on the real `claude` CLI. The CLI gives no exact count (its `get_context_usage` is
a context-window estimate that silently falls back to a character-based guess), so the gateway
answers a valid request 501 `not_implemented` in OpenAI's error shape, with the reason and
`x-should-retry: false`: the SDK raises at once instead of retrying, and never sees a number. An
invalid request is refused as `responses.create` refuses it. `tests/responses_sdk.rs` runs this
file and then checks that the fake Anthropic API received nothing: no count, no completion.
"""

import json
import os
import re
import urllib.request

import jsonschema
import openai
import pytest
from openai import OpenAI

MODEL = "gpt-4o"
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "schemas", "openai.json"), encoding="utf-8") as f:
    SCHEMAS = json.load(f)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ROUTE = '/v1/responses/input_tokens'


def assert_schema(name: str, value) -> None:
    schema = {"$schema": SCHEMAS["$schema"], "$defs": SCHEMAS["$defs"], "$ref": f"#/$defs/{name}"}
    jsonschema.Draft202012Validator(schema).validate(value)


def refused_counts(client: OpenAI) -> int:
    """How many count requests the gateway answered 501, from its own metrics."""
    root = str(client.base_url).rstrip("/").removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/metrics", timeout=30) as response:
        text = response.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("claude_gateway_http_requests_total{") and f'route="{ROUTE}"' in line \
                and 'status="501"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_a_count_is_refused_with_501_once_not_guessed() -> None:
    # The SDK's default retries: a 501 with `x-should-retry: false` must not be retried.
    with OpenAI(base_url=os.environ["OPENAI_BASE_URL"], max_retries=2, timeout=60) as client:
        before = refused_counts(client)
        with pytest.raises(openai.InternalServerError) as err:
            client.responses.input_tokens.count(
                model=MODEL,
                instructions="You are terse.",
                input=[
                    {"role": "user", "content": "#count-sdk My name is Ada."},
                    {"role": "assistant", "content": "Hello Ada."},
                    {"role": "user", "content": "What is my name?"},
                ],
                tools=[WEATHER],
            )
        assert err.value.status_code == 501
        body = err.value.response.json()
        assert_schema("ErrorResponse", body)
        assert body["error"]["code"] == "not_implemented"
        assert body["error"]["type"] == "invalid_request_error"
        assert re.search(r"get_context_usage", body["error"]["message"]), body
        assert err.value.response.headers["x-should-retry"] == "false"
        assert refused_counts(client) == before + 1, "the SDK retried a 501"


def test_invalid_counts_are_refused_like_create(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.input_tokens.count(model="gpt-9", input="#count-sdk Hi")
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.input_tokens.count(model=MODEL, input=[{"type": "nope"}])
    assert_schema("ErrorResponse", err.value.response.json())
