"""The OpenAI features beyond plain chat, through the official `openai` Python SDK: function
calling (tool_choice, parallel calls, streaming, the round trip, legacy `functions`), JSON output
(json_object, json_schema), `stop`, `max_tokens`, `n`, images, usage details, ignored and refused
parameters.

The gateway runs the real `claude` CLI against the fake Anthropic API of
`tests/common/fake_anthropic.rs`, steered by directives in the user text: `[[tool:NAME:{args}]]`
(a call of the offered tool NAME), `[[json:{...}]]` (the structured output), `[[words:N]]`
(`w1 w2 ... wN`, one word per delta), `[[cache_read:N]]`, `[[thinking]]`. A last user message
holding tool results is answered `Tool said: <result text>`.

`tests/features.rs` starts both, runs this file with OPENAI_BASE_URL=<gateway>/v1, then checks
what reached the API. Each test puts a unique marker (`#feat-...`) in its user text so that the
Rust side can find its API requests; the ids of the round trip are written to FEATURES_RECORD
(a JSON-lines file) when that is set.
"""

import base64
import json
import os
import struct
import zlib
from collections import defaultdict

import jsonschema
import openai
import pytest
from openai import OpenAI

MODEL = "gpt-4o"

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": WEATHER_PARAMETERS,
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string"}},
            "required": ["tz"],
        },
    },
}
TOOLS = [WEATHER, TIME]

CALL_WEATHER = '[[tool:get_weather:{"city":"Paris"}]]'
CALL_TIME = '[[tool:get_time:{"tz":"Europe/Paris"}]]'


def record(**fields) -> None:
    """Appends one JSON line to FEATURES_RECORD (read by tests/features.rs), if it is set."""
    path = os.environ.get("FEATURES_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(fields) + "\n")


def user(text: str) -> list:
    return [{"role": "user", "content": text}]


def assert_weather_call(call, city: str = "Paris") -> None:
    assert call.type == "function", call
    assert call.id, call
    assert call.function.name == "get_weather", call
    assert json.loads(call.function.arguments) == {"city": city}, call


# ---------------------------------------------------------------------------------------------
# Function calling


def test_tool_call(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user(f"#feat-tool-call What is the weather in Paris? {CALL_WEATHER}"),
        tools=TOOLS,
    )
    assert completion.model == MODEL
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls", completion
    assert choice.message.role == "assistant"
    assert choice.message.content in ("Let me check.", None), completion
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1, completion
    assert_weather_call(choice.message.tool_calls[0])
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_tool_round_trip(client: OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You answer weather questions."},
        {"role": "user", "content": f"#feat-round-trip Weather in Paris? {CALL_WEATHER}"},
    ]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert first.choices[0].finish_reason == "tool_calls", first
    calls = first.choices[0].message.tool_calls
    assert calls and len(calls) == 1, first
    call = calls[0]
    assert_weather_call(call)

    # Step two: the assistant's call as it came, then the function's result.
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append(
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 22 C in Paris"}
    )
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    choice = second.choices[0]
    assert choice.message.content == "Tool said: Sunny, 22 C in Paris", second
    assert choice.finish_reason == "stop", second
    assert not choice.message.tool_calls, second
    record(round_trip_call_id=call.id)


def test_two_tool_results_in_one_round_trip(client: OpenAI) -> None:
    messages = user(f"#feat-two-results Weather and time? {CALL_WEATHER} {CALL_TIME}")
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    calls = first.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"], first
    assert len({c.id for c in calls}) == 2, first
    results = {"get_weather": "Rain", "get_time": "12:00"}
    messages = messages + [first.choices[0].message.model_dump(exclude_none=True)]
    for c in calls:
        messages.append(
            {"role": "tool", "tool_call_id": c.id, "content": results[c.function.name]}
        )
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "Tool said: Rain; 12:00", second
    assert second.choices[0].finish_reason == "stop"


def test_parallel_tool_calls(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user(f"#feat-parallel Weather and time? {CALL_WEATHER} {CALL_TIME}"),
        tools=TOOLS,
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 2, completion
    assert_weather_call(calls[0])
    assert calls[1].function.name == "get_time"
    assert json.loads(calls[1].function.arguments) == {"tz": "Europe/Paris"}
    assert calls[0].id != calls[1].id
    assert completion.choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_false_allows_one_call(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user(f"#feat-no-parallel Weather and time? {CALL_WEATHER} {CALL_TIME}"),
        tools=TOOLS,
        parallel_tool_calls=False,
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1, completion
    assert_weather_call(calls[0])
    assert completion.choices[0].finish_reason == "tool_calls"


def test_streaming_tool_calls(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user(f"#feat-stream-tools Weather and time? {CALL_WEATHER} {CALL_TIME}"),
        tools=TOOLS,
        stream=True,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    assert len({c.id for c in chunks}) == 1
    # Reassemble the calls by index: the first fragment of an index carries id, type and name,
    # later ones only argument text.
    calls: dict = {}
    fragments: dict = defaultdict(int)
    for c in chunks:
        if not c.choices:
            continue
        for tc in c.choices[0].delta.tool_calls or []:
            if tc.index not in calls:
                assert tc.id, f"the first fragment of call {tc.index} has the id: {tc}"
                assert tc.type == "function", tc
                assert tc.function and tc.function.name, tc
                calls[tc.index] = {"id": tc.id, "name": tc.function.name, "arguments": ""}
            else:
                assert tc.id is None, f"only the first fragment has the id: {tc}"
                assert not (tc.function and tc.function.name), tc
            if tc.function and tc.function.arguments:
                calls[tc.index]["arguments"] += tc.function.arguments
                fragments[tc.index] += 1
    assert sorted(calls) == [0, 1], calls
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert calls[1]["name"] == "get_time"
    assert json.loads(calls[1]["arguments"]) == {"tz": "Europe/Paris"}
    assert calls[0]["id"] != calls[1]["id"]
    assert all(fragments[i] >= 1 for i in calls), fragments
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text in ("", "Let me check."), text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"], chunks
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_streamed_tool_call_round_trip(client: OpenAI) -> None:
    """The SDK's stream helper accumulates the deltas into a message that can be sent back."""
    messages = user(f"#feat-stream-helper Weather? {CALL_WEATHER}")
    with client.chat.completions.stream(model=MODEL, messages=messages, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls", final
    assert len(message.tool_calls) == 1, final
    assert_weather_call(message.tool_calls[0])
    messages = messages + [
        {
            "role": "assistant",
            "content": message.content,
            "tool_calls": [
                {
                    "id": tc.id,
                    "type": "function",
                    "function": {"name": tc.function.name, "arguments": tc.function.arguments},
                }
                for tc in message.tool_calls
            ],
        },
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "Foggy"},
    ]
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Tool said: Foggy", chunks
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_choice_none_answers_in_text(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user(f"#feat-choice-none Weather? {CALL_WEATHER}"),
        tools=TOOLS,
        tool_choice="none",
    )
    choice = completion.choices[0]
    assert not choice.message.tool_calls, completion
    assert choice.finish_reason == "stop", completion
    assert choice.message.content == "You said: #feat-choice-none Weather?", completion


def test_tool_choice_auto(client: OpenAI) -> None:
    called = client.chat.completions.create(
        model=MODEL,
        messages=user(f"#feat-choice-auto Weather? {CALL_WEATHER}"),
        tools=TOOLS,
        tool_choice="auto",
    )
    assert called.choices[0].finish_reason == "tool_calls", called
    assert_weather_call(called.choices[0].message.tool_calls[0])
    # auto also lets Claude answer without a call.
    text = client.chat.completions.create(
        model=MODEL,
        messages=user("#feat-choice-auto-text Just say hi."),
        tools=TOOLS,
        tool_choice="auto",
    )
    assert text.choices[0].finish_reason == "stop", text
    assert not text.choices[0].message.tool_calls
    assert text.choices[0].message.content == "You said: #feat-choice-auto-text Just say hi."


def test_tool_choice_required(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user(f"#feat-choice-required Weather? {CALL_WEATHER}"),
        tools=TOOLS,
        tool_choice="required",
    )
    assert completion.choices[0].finish_reason == "tool_calls", completion
    assert len(completion.choices[0].message.tool_calls) == 1, completion
    assert_weather_call(completion.choices[0].message.tool_calls[0])


def test_tool_choice_required_without_a_call_is_an_upstream_error(client: OpenAI) -> None:
    # Claude answers in text; the gateway reminds it once, then gives up with a 502.
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=user("#feat-required-no-call Just say hi."),
            tools=TOOLS,
            tool_choice="required",
        )
    assert info.value.status_code == 502, info.value
    assert info.value.code == "upstream_error", info.value.body
    assert "tool_choice" in info.value.message, info.value.message


def test_tool_choice_required_streaming_without_a_call_is_a_real_error_status(client: OpenAI) -> None:
    # Nothing visible was produced (text is withheld when a tool is required), so the stream
    # was never committed: the failure is a real 502, not an in-stream error after a 200.
    with pytest.raises(openai.APIStatusError) as info:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=user("#feat-required-stream Just say hi."),
            tools=TOOLS,
            tool_choice="required",
            stream=True,
        )
        for _ in stream:
            pass
    assert info.value.status_code == 502, info.value.body
    assert info.value.code == "upstream_error", info.value.body


def test_tool_choice_named_function(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user(f"#feat-choice-named Weather and time? {CALL_WEATHER} {CALL_TIME}"),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1, completion
    assert calls[0].function.name == "get_time", completion
    assert json.loads(calls[0].function.arguments) == {"tz": "Europe/Paris"}
    assert completion.choices[0].finish_reason == "tool_calls"


def test_legacy_functions_round_trip(client: OpenAI) -> None:
    functions = [WEATHER["function"]]
    messages = user(f"#feat-legacy Weather? {CALL_WEATHER}")
    first = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        functions=functions,
        function_call={"name": "get_weather"},
    )
    message = first.choices[0].message
    # The call comes back as a tool call (the shape every current client reads); the legacy
    # `function_call` field is accepted as an alternative.
    if message.function_call is not None:
        name, arguments = message.function_call.name, message.function_call.arguments
    else:
        assert message.tool_calls and len(message.tool_calls) == 1, first
        name, arguments = message.tool_calls[0].function.name, message.tool_calls[0].function.arguments
    assert name == "get_weather", first
    assert json.loads(arguments) == {"city": "Paris"}
    assert first.choices[0].finish_reason in ("tool_calls", "function_call"), first

    messages = messages + [
        {"role": "assistant", "content": None, "function_call": {"name": name, "arguments": arguments}},
        {"role": "function", "name": "get_weather", "content": "Hail"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, functions=functions)
    assert second.choices[0].message.content == "Tool said: Hail", second
    assert second.choices[0].finish_reason == "stop"


# ---------------------------------------------------------------------------------------------
# JSON output

PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def person_format(strict: bool = True) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": strict},
    }


def test_json_object(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user('#feat-json-object Reply in JSON. [[json:{"answer":42,"unit":"m"}]]'),
        response_format={"type": "json_object"},
    )
    content = completion.choices[0].message.content
    assert json.loads(content) == {"answer": 42, "unit": "m"}, content
    assert completion.choices[0].finish_reason == "stop", completion
    assert not completion.choices[0].message.tool_calls


def test_json_object_without_a_directive_is_an_object(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user("#feat-json-empty Reply in JSON."),
        response_format={"type": "json_object"},
    )
    content = completion.choices[0].message.content
    assert isinstance(json.loads(content), dict), content
    assert completion.choices[0].finish_reason == "stop"


def test_json_object_streaming(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user('#feat-json-stream JSON please [[json:{"list":[1,2,3],"ok":true}]]'),
        response_format={"type": "json_object"},
        stream=True,
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas, chunks
    assert json.loads("".join(deltas)) == {"list": [1, 2, 3], "ok": True}, deltas
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices), chunks
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"], chunks


def test_json_schema_from_required(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user("#feat-json-schema Describe a person."),
        response_format=person_format(),
    )
    value = json.loads(completion.choices[0].message.content)
    jsonschema.validate(value, PERSON_SCHEMA)
    assert set(value) >= {"name", "age"}, value
    assert completion.choices[0].finish_reason == "stop"


def test_json_schema_given_value(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user(
            '#feat-json-schema-value Describe Ada. [[json:{"name":"Ada","age":36,"tags":["math"]}]]'
        ),
        response_format=person_format(strict=False),
    )
    value = json.loads(completion.choices[0].message.content)
    jsonschema.validate(value, PERSON_SCHEMA)
    assert value == {"name": "Ada", "age": 36, "tags": ["math"]}


def test_json_schema_streaming(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user('#feat-json-schema-stream Ada [[json:{"name":"Ada","age":36}]]'),
        response_format=person_format(),
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    value = json.loads(text)
    jsonschema.validate(value, PERSON_SCHEMA)
    assert value == {"name": "Ada", "age": 36}
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_sdk_parse_helper_with_json_schema(client: OpenAI) -> None:
    """`client.chat.completions.parse` with a pydantic model sends a strict json_schema."""
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    completion = client.chat.completions.parse(
        model=MODEL,
        messages=user('#feat-parse Describe Ada. [[json:{"name":"Ada","age":36}]]'),
        response_format=Person,
    )
    parsed = completion.choices[0].message.parsed
    assert parsed == Person(name="Ada", age=36), completion


def test_json_schema_violation_is_an_error(client: OpenAI) -> None:
    # `age` must be an integer: content that breaks the schema is never returned.
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=user('#feat-json-invalid Describe Ada. [[json:{"name":"Ada","age":"old"}]]'),
            response_format=person_format(),
        )
    assert info.value.status_code == 502, info.value
    assert info.value.code == "upstream_error", info.value.body
    assert "schema" in info.value.message, info.value.message


def test_json_schema_violation_streaming_ends_in_an_error(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user('#feat-json-invalid-stream Ada [[json:{"name":"Ada","age":"old"}]]'),
        response_format=person_format(),
        stream=True,
    )
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert info.value.code == "upstream_error", info.value.body
    assert "schema" in info.value.message, info.value.message
    # The stream never finishes normally with the invalid object.
    assert not any(c.choices and c.choices[0].finish_reason for c in received), received


# ---------------------------------------------------------------------------------------------
# stop, max_tokens


def test_stop_string(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=user("#feat-stop Count [[words:10]]"), stop="w5"
    )
    assert completion.choices[0].message.content == "w1 w2 w3 w4 ", completion
    assert completion.choices[0].finish_reason == "stop"


def test_stop_list_spanning_two_words(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=user("#feat-stop-list Count [[words:10]]"),
        stop=["nowhere", "w3 w4", "w9"],
    )
    assert completion.choices[0].message.content == "w1 w2 ", completion
    assert completion.choices[0].finish_reason == "stop"


def test_stop_split_across_stream_chunks(client: OpenAI) -> None:
    # The fake API sends one word per delta: "w3 " and "w4" arrive in different deltas.
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user("#feat-stop-stream Count [[words:10]]"),
        stop=["w3 w4"],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w1 w2 ", chunks
    assert "w3" not in text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"], chunks


def test_stop_not_found_keeps_everything(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user("#feat-stop-absent Count [[words:4]]"),
        stop=["w4 w5", "xyz"],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w1 w2 w3 w4", chunks
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_max_tokens_finishes_with_length(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=user("#feat-max-tokens Count [[words:10]]"), max_tokens=3
    )
    assert completion.choices[0].message.content == "w1 w2 w3 ", completion
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3, completion.usage


def test_max_completion_tokens_streaming(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user("#feat-max-completion Count [[words:10]]"),
        max_completion_tokens=4,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w1 w2 w3 w4 ", chunks
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"], chunks


# ---------------------------------------------------------------------------------------------
# n


def test_n_choices(client: OpenAI) -> None:
    one = client.chat.completions.create(
        model=MODEL, messages=user("#feat-n Count [[words:3]]")
    )
    three = client.chat.completions.create(
        model=MODEL, messages=user("#feat-n Count [[words:3]]"), n=3
    )
    assert [c.index for c in three.choices] == [0, 1, 2], three
    for c in three.choices:
        assert c.message.content == "w1 w2 w3", three
        assert c.finish_reason == "stop"
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens, (one.usage, three.usage)
    assert three.usage.total_tokens == three.usage.prompt_tokens + three.usage.completion_tokens


def test_n_choices_streaming(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user("#feat-n-stream Count [[words:4]]"),
        n=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len({c.id for c in chunks}) == 1
    text: dict = defaultdict(str)
    roles: dict = defaultdict(int)
    finishes: dict = defaultdict(list)
    for c in chunks[:-1]:
        assert len(c.choices) == 1, c
        choice = c.choices[0]
        if choice.delta.role:
            assert choice.delta.role == "assistant"
            assert not text[choice.index], "the role chunk comes first"
            roles[choice.index] += 1
        if choice.delta.content:
            assert not finishes[choice.index], "nothing after the finish chunk"
            text[choice.index] += choice.delta.content
        if choice.finish_reason:
            finishes[choice.index].append(choice.finish_reason)
    assert dict(text) == {0: "w1 w2 w3 w4", 1: "w1 w2 w3 w4", 2: "w1 w2 w3 w4"}, chunks
    assert dict(roles) == {0: 1, 1: 1, 2: 1}, chunks
    assert dict(finishes) == {0: ["stop"], 1: ["stop"], 2: ["stop"]}, chunks
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None, chunks[-1]
    assert usage.completion_tokens >= 3 * 4, usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# ---------------------------------------------------------------------------------------------
# Images


def tiny_png() -> bytes:
    """A real 2x2 RGB PNG (red, green / blue, white)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"\x00\xff\x00\x00\x00\xff\x00" + b"\x00\x00\x00\xff\xff\xff\xff"
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG_B64 = base64.b64encode(tiny_png()).decode()


def test_image_data_url(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "#feat-image What is in this picture?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "low"},
                    },
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == (
        "You said: #feat-image What is in this picture?"
    ), completion
    record(image_png_base64=PNG_B64)


def test_remote_image_url_is_refused(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "#feat-remote-image What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    ],
                }
            ],
        )
    assert info.value.status_code == 400
    assert info.value.type == "invalid_request_error"
    assert "image_url" in (info.value.param or ""), info.value.body


# ---------------------------------------------------------------------------------------------
# Usage details, ignored and refused parameters


def test_usage_cached_tokens(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=user("#feat-cache Hello [[cache_read:7]]")
    )
    usage = completion.usage
    assert usage.prompt_tokens_details is not None, usage
    assert usage.prompt_tokens_details.cached_tokens == 7, usage
    assert usage.prompt_tokens >= 7, usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_usage_reasoning_tokens_field(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=user("#feat-thinking Think first [[thinking]] [[reply:Done thinking]]")
    )
    assert completion.choices[0].message.content == "Done thinking", completion
    details = completion.usage.completion_tokens_details
    assert details is not None, completion.usage
    assert isinstance(details.reasoning_tokens, int), details
    assert 0 <= details.reasoning_tokens <= completion.usage.completion_tokens, completion.usage


def test_ignored_params_are_listed_in_a_header(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=user("#feat-ignored Hello"),
        temperature=0.2,
        seed=7,
    )
    assert raw.status_code == 200
    ignored = {p.strip() for p in raw.headers.get("x-ignored-params", "").split(",") if p.strip()}
    assert {"temperature", "seed"} <= ignored, dict(raw.headers)
    assert raw.parse().choices[0].message.content == "You said: #feat-ignored Hello"


def test_more_ignored_params(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=user("#feat-ignored-more Hello"),
        top_p=0.5,
        presence_penalty=0.1,
        frequency_penalty=0.1,
        logit_bias={"50256": -100},
        user="someone",
        store=False,
        service_tier="auto",
    )
    assert raw.status_code == 200
    ignored = {p.strip() for p in raw.headers.get("x-ignored-params", "").split(",") if p.strip()}
    expected = {
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "store",
        "service_tier",
    }
    assert expected <= ignored, dict(raw.headers)


def test_no_ignored_params_header_without_ignored_params(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=user("#feat-nothing-ignored Hello")
    )
    assert not raw.headers.get("x-ignored-params"), dict(raw.headers)


def test_logprobs_is_refused(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=user("#feat-logprobs Hello"), logprobs=True
        )
    assert info.value.status_code == 400
    assert info.value.param == "logprobs", info.value.body
