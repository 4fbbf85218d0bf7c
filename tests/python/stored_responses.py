"""Stored responses through the official `openai` Python SDK, in two phases around a restart of
the gateway (driven by tests/responses_sdk.rs, which restarts it on the same session store):

  before: create (stored by default), retrieve (equal to what create answered), input_items
          (SDK paging), a streamed response retrieved whole, delete, `store=False` (never
          retrievable), an unknown `previous_response_id` (404); records the first response id.
  after:  the first response is still there; `previous_response_id` continues it (the fake API
          log, checked in Rust, shows the earlier turn replayed natively); input_items of the new
          response hold only its own input.

Every raw body is checked against OpenAI's schemas (tests/schemas/openai.json). Usage:
`python stored_responses.py before|after`; FEATURES_RECORD is a JSONL file shared by the phases.
"""

import json
import os
import sys

import jsonschema
import openai
from openai import OpenAI

MODEL = "gpt-4o"
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "schemas", "openai.json"), encoding="utf-8") as f:
    SCHEMAS = json.load(f)
RECORD = os.environ["FEATURES_RECORD"]


def assert_schema(name: str, value) -> None:
    schema = {"$schema": SCHEMAS["$schema"], "$defs": SCHEMAS["$defs"], "$ref": f"#/$defs/{name}"}
    jsonschema.Draft202012Validator(schema).validate(value)


def raw_json(raw) -> dict:
    body = json.loads(raw.text)
    return body


def recorded() -> dict:
    out = {}
    with open(RECORD, encoding="utf-8") as f:
        for line in f:
            out.update(json.loads(line))
    return out


def record(**fields) -> None:
    with open(RECORD, "a", encoding="utf-8") as out:
        out.write(json.dumps(fields) + "\n")


def same_response(got: dict, created: dict) -> bool:
    """Equal but for `completed_at`: the store records its commit, the creating answer read the
    clock a moment later (the second may differ by one)."""
    a, b = dict(got), dict(created)
    ta, tb = a.pop("completed_at"), b.pop("completed_at")
    return a == b and abs(ta - tb) <= 1


def expect_not_found(call) -> None:
    try:
        call()
    except openai.NotFoundError as e:
        assert e.status_code == 404
        assert_schema("ErrorResponse", e.response.json())
        assert e.response.json()["error"]["code"] == "response_not_found", e.response.text
        return
    raise AssertionError("expected a 404")


def before(client: OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model=MODEL, instructions="Be brief.", input="My name is Ada. #stored-1")
    created = raw_json(raw)
    assert_schema("Response", created)
    assert created["store"] is True and created["status"] == "completed", created
    first = raw.parse()
    assert "My name is Ada." in first.output_text, first.output_text

    got = client.responses.with_raw_response.retrieve(first.id)
    assert_schema("Response", raw_json(got))
    assert same_response(raw_json(got), created), (raw_json(got), created)
    assert got.parse().output_text == first.output_text

    items_raw = client.responses.input_items.with_raw_response.list(first.id)
    assert_schema("ResponseItemList", raw_json(items_raw))
    items = list(client.responses.input_items.list(first.id))
    assert len(items) == 1 and items[0].type == "message" and items[0].role == "user", items
    assert items[0].content[0].text == "My name is Ada. #stored-1"

    # A response with three input items, listed two per page by the SDK's auto-paging.
    many = client.responses.create(model=MODEL, input=[
        {"role": "user", "content": "one #stored-paging"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three #stored-paging"},
    ])
    texts = [i.content[0].text for i in client.responses.input_items.list(many.id, limit=2, order="asc")]
    assert texts == ["one #stored-paging", "two", "three #stored-paging"], texts

    with client.responses.stream(model=MODEL, input="Stream me. #stored-stream") as stream:
        streamed = stream.get_final_response()
    again = client.responses.retrieve(streamed.id)
    assert again.output_text == streamed.output_text and again.usage == streamed.usage

    gone = client.responses.create(model=MODEL, input="Delete me. #stored-delete")
    client.responses.delete(gone.id)
    expect_not_found(lambda: client.responses.retrieve(gone.id))
    expect_not_found(lambda: client.responses.delete(gone.id))

    unstored = client.responses.create(model=MODEL, input="Forget me. #stored-false", store=False)
    assert unstored.store is False
    expect_not_found(lambda: client.responses.retrieve(unstored.id))
    expect_not_found(lambda: client.responses.create(
        model=MODEL, input="x #stored-none", previous_response_id=unstored.id))
    # A function call, stored and continued with only its output.
    weather = {"type": "function", "name": "get_weather", "description": "Current weather.",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                              "required": ["city"]}}
    raw = client.responses.with_raw_response.create(
        model=MODEL, tools=[weather],
        input='Weather in Paris? [[tool:get_weather:{"city":"Paris"}]] #stored-tool')
    asked = raw_json(raw)
    assert_schema("Response", asked)
    calls = [i for i in asked["output"] if i["type"] == "function_call"]
    assert len(calls) == 1 and calls[0]["name"] == "get_weather", asked
    assert same_response(raw_json(client.responses.with_raw_response.retrieve(asked["id"])), asked)
    answered = client.responses.create(
        model=MODEL, tools=[weather], previous_response_id=asked["id"],
        input=[{"type": "function_call_output", "call_id": calls[0]["call_id"],
                "output": "Sunny, 22 C"}])
    assert "Sunny, 22 C" in answered.output_text, answered.output_text
    record(stored_first=first.id, stored_first_text=first.output_text,
           stored_call_id=calls[0]["call_id"])


def after(client: OpenAI) -> None:
    ids = recorded()
    first = client.responses.retrieve(ids["stored_first"])
    assert first.output_text == ids["stored_first_text"]
    raw = client.responses.with_raw_response.create(
        model=MODEL, instructions="Be brief.", input="What is my name? #stored-2",
        previous_response_id=first.id)
    second = raw_json(raw)
    assert_schema("Response", second)
    assert second["previous_response_id"] == first.id, second
    items = list(client.responses.input_items.list(second["id"]))
    assert [i.content[0].text for i in items] == ["What is my name? #stored-2"], items
    record(stored_second=second["id"])


if __name__ == "__main__":
    phase = sys.argv[1]
    client = OpenAI(max_retries=0, timeout=60)
    {"before": before, "after": after}[phase](client)
    print(f"stored responses: {phase} ok")
