"""The Responses API (`client.responses`) of the official `openai` Python SDK against
claude-gateway: create, the streaming helper (whose event accumulator is strict about order),
a function tool round trip, structured output, `max_output_tokens`, images and refusals. Every
raw response body is checked against OpenAI's own `Response` schema (tests/schemas/openai.json).

The gateway runs the real `claude` CLI against the fake Anthropic API of
`tests/common/fake_anthropic.rs`, steered by directives in the user text (`[[words:N]]`,
`[[tool:NAME:{args}]]`, `[[json:{...}]]`); a last user message holding tool results is answered
`Tool said: <result text>`. `tests/responses_sdk.rs` starts both, runs this file, then checks in
the fake API's log that the round trip reached Claude natively. Each test marks its user text
with a unique `#resp-...` marker; the round trip's call id goes to FEATURES_RECORD.
"""

import base64
import json
import os
import struct
import zlib

import jsonschema
import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

MODEL = "gpt-4o"
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "schemas", "openai.json"), encoding="utf-8") as f:
    SCHEMAS = json.load(f)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
CALL_WEATHER = '[[tool:get_weather:{"city":"Paris"}]]'
SHELL = {
    "type": "custom",
    "name": "shell",
    "description": "Runs a shell command.",
    "format": {"type": "grammar", "syntax": "regex", "definition": "[a-z .\\n-]+"},
}
CALL_SHELL = '[[tool:shell:{"input":"ls -la \\"docs\\"\\nwc -l"}]]'
SHELL_INPUT = 'ls -la "docs"\nwc -l'


def record(**fields) -> None:
    path = os.environ.get("FEATURES_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(fields) + "\n")


def assert_schema(name: str, value) -> None:
    schema = {"$schema": SCHEMAS["$schema"], "$defs": SCHEMAS["$defs"], "$ref": f"#/$defs/{name}"}
    jsonschema.Draft202012Validator(schema).validate(value)


def create_raw(client: OpenAI, **kwargs):
    """`responses.create`, checking the raw JSON against the schema; returns the parsed object."""
    raw = client.responses.with_raw_response.create(**kwargs)
    assert raw.headers.get("x-request-id"), raw.headers
    assert_schema("Response", raw.http_response.json())
    return raw.parse()


def stream_raw(client: OpenAI, **kwargs) -> list:
    """A streamed `responses.create`, read as raw server-sent events: every event checked
    against `ResponseStreamEvent`, numbered 0, 1, 2, … and named as its type."""
    events = []
    with client.responses.with_streaming_response.create(stream=True, **kwargs) as raw:
        name = None
        for line in raw.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                event = json.loads(line[len("data: "):])
                assert event["type"] == name, event
                assert event["sequence_number"] == len(events), event
                assert_schema("ResponseStreamEvent", event)
                events.append(event)
    return events


def test_create_with_instructions(client: OpenAI) -> None:
    response = create_raw(
        client, model=MODEL, instructions="You are terse.", input="#resp-create Hello"
    )
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == MODEL
    assert response.output_text == "You said: #resp-create Hello"
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )


def test_stream_helper_accumulates(client: OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="#resp-stream Count [[words:5]]") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds
    assert kinds[-1] == "response.completed", kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "w1 w2 w3 w4 w5"
    assert len(deltas) == 5, deltas
    assert final.output_text == "w1 w2 w3 w4 w5"
    assert final.status == "completed"


def test_function_tool_round_trip(client: OpenAI) -> None:
    question = {"role": "user", "content": f"#resp-tool Weather in Paris? {CALL_WEATHER}"}
    first = create_raw(client, model=MODEL, input=[question], tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert call.id.startswith("fc_") and call.call_id, call

    # Stateless: the client sends back the whole conversation with the function's output.
    history = [question] + [item.model_dump(exclude_none=True) for item in first.output]
    history.append(
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 22 C"}
    )
    second = create_raw(client, model=MODEL, input=history, tools=[WEATHER])
    assert second.output_text == "Tool said: Sunny, 22 C", second
    assert not [item for item in second.output if item.type == "function_call"]
    record(responses_call_id=call.call_id)


def test_streamed_function_call(client: OpenAI) -> None:
    with client.responses.stream(
        model=MODEL,
        input=f"#resp-tool-stream Weather? {CALL_WEATHER}",
        tools=[WEATHER],
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds, kinds
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == {"city": "Paris"}, done
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather", final


def test_custom_tool_streamed_and_round_trip(client: OpenAI) -> None:
    question = {"role": "user", "content": f"#resp-custom Count the docs {CALL_SHELL}"}
    kwargs = dict(model=MODEL, input=[question], tools=[SHELL],
                  tool_choice={"type": "custom", "name": "shell"})
    events = stream_raw(client, **kwargs)
    kinds = [e["type"] for e in events]
    start = kinds.index("response.custom_tool_call_input.delta") - 1
    n_deltas = kinds.count("response.custom_tool_call_input.delta")
    assert kinds[start] == "response.output_item.added", kinds
    assert events[start]["item"]["type"] == "custom_tool_call", events[start]
    assert events[start]["item"]["input"] == "", events[start]
    after = kinds[start + 1 + n_deltas:]
    assert after[:2] == ["response.custom_tool_call_input.done", "response.output_item.done"], kinds
    # The deltas are the decoded text (real newline and quotes), not its JSON encoding.
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert "".join(deltas) == SHELL_INPUT, deltas
    done = events[start + 1 + n_deltas]
    assert done["input"] == SHELL_INPUT and done["item_id"] == events[start]["item"]["id"], done
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed", kinds
    assert_schema("Response", final)
    assert final["tools"][0]["type"] == "custom" and final["tool_choice"]["type"] == "custom"

    # The SDK's stream helper accumulates the same item.
    with client.responses.stream(**kwargs) as stream:
        list(stream)
        accumulated = stream.get_final_response()
    calls = [item for item in accumulated.output if item.type == "custom_tool_call"]
    assert len(calls) == 1 and calls[0].input == SHELL_INPUT, accumulated
    call = calls[0]
    assert call.name == "shell" and call.id.startswith("ctc_") and call.call_id, call

    # Stateless round trip: the call and its output go back as custom tool items.
    history = [question, call.model_dump(exclude_none=True),
               {"type": "custom_tool_call_output", "call_id": call.call_id,
                "output": "2 files"}]
    second = create_raw(client, model=MODEL, input=history, tools=[SHELL])
    assert second.output_text == "Tool said: 2 files", second
    record(responses_custom_call_id=call.call_id)


THOUGHT = "Let me think about this."


def test_reasoning_summary_and_encrypted_replay(client: OpenAI) -> None:
    question = {"role": "user", "content": "#resp-think Hello [[thinking]]"}
    kwargs = dict(model=MODEL, input=[question], reasoning={"effort": "low", "summary": "auto"},
                  include=["reasoning.encrypted_content"], store=False)
    events = stream_raw(client, **kwargs)
    kinds = [e["type"] for e in events]
    n = kinds.count("response.reasoning_summary_text.delta")
    assert n >= 1, kinds
    assert kinds[2:4] == ["response.output_item.added", "response.reasoning_summary_part.added"], kinds
    assert kinds[4 + n:7 + n] == [
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ], kinds
    assert kinds[7 + n] == "response.output_item.added" and kinds[-1] == "response.completed"
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta")
    assert deltas == THOUGHT, deltas
    item = events[6 + n]["item"]
    assert item["type"] == "reasoning" and item["id"].startswith("rs_"), item
    assert item["summary"] == [{"type": "summary_text", "text": THOUGHT}], item
    sealed = item["encrypted_content"]
    assert sealed and "think" not in sealed, item
    final = events[-1]["response"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "You said: #resp-think Hello", text
    assert THOUGHT not in json.dumps(final["output"][1]), final

    # The SDK's accumulator takes the reasoning item and its summary events.
    with client.responses.stream(**kwargs) as stream:
        list(stream)
        accumulated = stream.get_final_response()
    assert accumulated.output[0].type == "reasoning", accumulated
    assert accumulated.output[0].summary[0].text == THOUGHT
    assert accumulated.output_text == "You said: #resp-think Hello"

    # Stateless: the reasoning item goes back with the answer; the thinking is replayed natively
    # (the fake API's log is checked in tests/responses_sdk.rs).
    history = [question] + [i.model_dump(exclude_none=True) for i in accumulated.output]
    history.append({"role": "user", "content": "#resp-think-again And now?"})
    second = create_raw(client, model=MODEL, input=history,
                        include=["reasoning.encrypted_content"], store=False)
    assert second.output_text == "You said: #resp-think-again And now?", second

    # An altered item is refused, naming it.
    history[1] = dict(history[1], encrypted_content=sealed[:-6] + "AAAAAA")
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input=history)
    assert err.value.code == "invalid_encrypted_content", err.value
    assert err.value.param == "input[1].encrypted_content", err.value


def test_reasoning_replayed_in_a_tool_loop(client: OpenAI) -> None:
    # Claude thinks, then calls a function; the client runs it and sends everything back
    # statelessly, the reasoning item included. The thinking must reach the API again, signed,
    # before the tool_use it led to (the fake API's log is checked in tests/responses_sdk.rs).
    question = {"role": "user", "content": f"#resp-think-tool Weather? [[thinking]] {CALL_WEATHER}"}
    first = create_raw(client, model=MODEL, input=[question], tools=[WEATHER],
                       reasoning={"effort": "medium"}, include=["reasoning.encrypted_content"],
                       store=False)
    kinds = [item.type for item in first.output]
    assert kinds[0] == "reasoning" and "function_call" in kinds, kinds
    assert first.output[0].summary == [], first.output[0]
    assert first.output[0].encrypted_content, first.output[0]
    call = next(item for item in first.output if item.type == "function_call")
    history = [question] + [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "Rainy"})
    second = create_raw(client, model=MODEL, input=history, tools=[WEATHER],
                        include=["reasoning.encrypted_content"], store=False)
    assert second.output_text == "Tool said: Rainy", second


class Place(BaseModel):
    city: str
    country: str


def test_structured_output_with_parse(client: OpenAI) -> None:
    response = client.responses.parse(
        model=MODEL,
        input='#resp-json Where? [[json:{"city":"Paris","country":"France"}]]',
        text_format=Place,
    )
    assert response.output_parsed == Place(city="Paris", country="France"), response


def test_json_schema_text_format(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    response = create_raw(
        client,
        model=MODEL,
        input='#resp-json-raw A number [[json:{"n":7}]]',
        text={"format": {"type": "json_schema", "name": "num", "schema": schema, "strict": True}},
    )
    assert json.loads(response.output_text) == {"n": 7}


def test_max_output_tokens_is_incomplete(client: OpenAI) -> None:
    response = create_raw(
        client, model=MODEL, input="#resp-max Count [[words:10]]", max_output_tokens=3
    )
    assert response.status == "incomplete", response
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text.split() == ["w1", "w2", "w3"], response
    assert response.usage.output_tokens == 3


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_input_image_data_url(client: OpenAI) -> None:
    url = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    response = create_raw(
        client,
        model=MODEL,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "#resp-image What is this?"},
                    {"type": "input_image", "image_url": url, "detail": "low"},
                ],
            }
        ],
    )
    assert response.output_text.startswith("You said: #resp-image"), response


def test_refusals_are_openai_errors(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_123")
    assert err.value.code == "response_not_found"
    assert err.value.param == "previous_response_id"

    # A hosted tool is not offered to Claude, and reported; forcing it is refused.
    raw = client.responses.with_raw_response.create(
        model=MODEL, input="#resp-hosted Hi", tools=[{"type": "web_search"}]
    )
    assert raw.headers["x-ignored-params"] == "tools.web_search"
    assert raw.parse().output_text.startswith("You said: #resp-hosted"), raw.parse()
    assert raw.parse().tools == []
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(
            model=MODEL,
            input="x",
            tools=[{"type": "web_search"}],
            tool_choice={"type": "web_search"},
        )
    assert err.value.code == "unsupported_parameter"
    assert err.value.param == "tool_choice.type"

    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="no-such-model", input="x", stream=True)
    assert err.value.code == "model_not_found"
