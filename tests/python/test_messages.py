"""Anthropic's Messages API (`/v1/messages`) through the official `anthropic` Python SDK against
claude-gateway: `messages.create`, the `messages.stream` helper (text_stream and the final
message), a tool with an `input_schema` and its `tool_result` round trip, thinking, redacted
thinking sent back, a base64 image, PDF and text documents, `stop_sequences`, `max_tokens`, `messages.count_tokens`, `models.list`, both auth headers and the
Anthropic-shaped errors.

The gateway runs the real `claude` CLI against the fake Anthropic API of
`tests/common/fake_anthropic.rs`, steered by directives in the user text (`[[words:N]]`,
`[[reply:TEXT]]`, `[[tool:NAME:{args}]]`, `[[thinking]]`); a last user message holding tool
results is answered `Tool said: <result text>`. `tests/messages_sdk.rs` starts both with one
gateway key, runs this file with GATEWAY_URL and GATEWAY_KEY set, then checks in the fake API's
log that the blocks reached Claude natively. Each test marks its user text with a unique
`#msg-...` marker; ids and data the Rust side compares go to FEATURES_RECORD (JSON lines).
"""

import base64
import json
import os
import struct
import zlib

import anthropic
import pytest
from anthropic import Anthropic

MODEL = "claude-sonnet-4-5"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
        "required": ["city"],
    },
}
CALL_WEATHER = '[[tool:get_weather:{"city":"Paris"}]]'


def gateway() -> str:
    url = os.environ.get("GATEWAY_URL")
    if not url:
        pytest.skip("GATEWAY_URL is not set (tests/messages_sdk.rs sets it)")
    return url


def key() -> str:
    return os.environ.get("GATEWAY_KEY", "unused")


@pytest.fixture
def client() -> Anthropic:
    # No retries: a failure must show the gateway's first answer, not a retried one.
    with Anthropic(base_url=gateway(), api_key=key(), max_retries=0, timeout=90) as c:
        yield c


def record(**fields) -> None:
    path = os.environ.get("FEATURES_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(fields) + "\n")


def text_of(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def assert_anthropic_error(err, status: int, kind: str) -> None:
    """The error as Anthropic shapes it: status, `{"type":"error","error":{type,message}}`, and
    a `request-id` header."""
    assert err.status_code == status, err
    assert err.body["type"] == "error", err.body
    assert err.body["error"]["type"] == kind, err.body
    assert err.body["error"]["message"], err.body
    assert err.response.headers.get("request-id"), err.response.headers


def test_create_text(client: Anthropic) -> None:
    raw = client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=1024,
        system="You are terse.",
        messages=[{"role": "user", "content": "#msg-create Hello"}],
    )
    assert raw.headers.get("request-id"), raw.headers
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_"), message.id
    assert message.model == MODEL
    assert text_of(message) == "You said: #msg-create Hello"
    assert [b.type for b in message.content] == ["text"], message
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    assert message.usage.cache_creation_input_tokens is not None
    assert message.usage.cache_read_input_tokens is not None


def test_system_blocks_and_bearer_auth() -> None:
    # `Authorization: Bearer` works as well as `x-api-key`; `system` may be a list of blocks.
    with Anthropic(
        base_url=gateway(), api_key=None, auth_token=key(), max_retries=0, timeout=90
    ) as c:
        message = c.messages.create(
            model=MODEL,
            max_tokens=1024,
            system=[{"type": "text", "text": "Answer like a pirate."}],
            messages=[{"role": "user", "content": "#msg-bearer Hi"}],
        )
    assert text_of(message) == "You said: #msg-bearer Hi"


def test_stream_text_and_final_message(client: Anthropic) -> None:
    with client.messages.stream(
        model=MODEL,
        max_tokens=1024,
        messages=[{"role": "user", "content": "#msg-stream Count [[words:5]]"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) >= 2, pieces
    assert "".join(pieces) == "w1 w2 w3 w4 w5"
    assert text_of(final) == "w1 w2 w3 w4 w5"
    assert final.id.startswith("msg_")
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0
    assert final.usage.output_tokens > 0


def test_stream_raw_event_sequence(client: Anthropic) -> None:
    # Exactly Anthropic's order: message_start, (content_block_start, deltas, stop)…,
    # message_delta, message_stop; `ping`s may come anywhere between.
    stream = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        stream=True,
        messages=[{"role": "user", "content": "#msg-raw Count [[words:3]]"}],
    )
    kinds = [e.type for e in stream if e.type != "ping"]
    assert kinds[0] == "message_start", kinds
    assert kinds[1] == "content_block_start", kinds
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"], kinds
    assert set(kinds[2:-3]) == {"content_block_delta"}, kinds


def test_tool_round_trip(client: Anthropic) -> None:
    question = {"role": "user", "content": f"#msg-tool What is the weather? {CALL_WEATHER}"}
    first = client.messages.create(
        model=MODEL, max_tokens=1024, tools=[WEATHER], messages=[question]
    )
    assert first.stop_reason == "tool_use", first
    uses = [b for b in first.content if b.type == "tool_use"]
    assert len(uses) == 1, first
    call = uses[0]
    assert call.name == "get_weather", call
    assert call.input == {"city": "Paris"}, call
    assert call.id.startswith("toolu_"), call
    record(messages_call_id=call.id)

    second = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 22 C"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn", second
    assert text_of(second) == "Tool said: Sunny, 22 C"


def test_stream_tool_call(client: Anthropic) -> None:
    with client.messages.stream(
        model=MODEL,
        max_tokens=1024,
        tools=[WEATHER],
        messages=[{"role": "user", "content": f"#msg-stream-tool {CALL_WEATHER}"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    deltas = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert json.loads("".join(deltas)) == {"city": "Paris"}, deltas
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"})], final
    assert final.stop_reason == "tool_use"


def test_thinking_only_when_asked(client: Anthropic) -> None:
    asked = client.messages.create(
        model=MODEL,
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "#msg-think Why? [[thinking]]"}],
    )
    assert [b.type for b in asked.content] == ["thinking", "text"], asked
    assert asked.content[0].thinking == "Let me think about this."
    assert asked.content[0].signature.startswith("sig_fake_"), asked
    assert text_of(asked) == "You said: #msg-think Why?"

    plain = client.messages.create(
        model=MODEL,
        max_tokens=4096,
        messages=[{"role": "user", "content": "#msg-nothink Why? [[thinking]]"}],
    )
    assert [b.type for b in plain.content] == ["text"], plain


def test_thinking_replayed_in_a_tool_loop(client: Anthropic) -> None:
    # The thinking block sent back (with its signature) before the tool_use it led to.
    thinking = {"type": "enabled", "budget_tokens": 2048}
    question = {"role": "user", "content": f"#msg-think-tool Weather? [[thinking]] {CALL_WEATHER}"}
    first = client.messages.create(
        model=MODEL, max_tokens=4096, thinking=thinking, tools=[WEATHER], messages=[question]
    )
    assert [b.type for b in first.content] == ["thinking", "text", "tool_use"], first
    call = first.content[2]
    record(messages_think_signature=first.content[0].signature)
    second = client.messages.create(
        model=MODEL,
        max_tokens=4096,
        thinking=thinking,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Rain"}],
            },
        ],
    )
    assert text_of(second) == "Tool said: Rain", second


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_image_base64(client: Anthropic) -> None:
    data = base64.b64encode(tiny_png()).decode()
    record(messages_image_data=data)
    message = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": data},
                    },
                    {"type": "text", "text": "#msg-image What is this?"},
                ],
            }
        ],
    )
    assert text_of(message).startswith("You said:"), message
    assert "#msg-image What is this?" in text_of(message), message


def tiny_pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def test_pdf_document(client: Anthropic) -> None:
    data = base64.b64encode(tiny_pdf()).decode()
    record(messages_pdf_data=data)
    message = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": data},
                        "title": "Tiny report",
                        "context": "An empty PDF",
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "Plain notes."},
                    },
                    {"type": "text", "text": "#msg-pdf Summarise these."},
                ],
            }
        ],
    )
    assert text_of(message) == "You said: #msg-pdf Summarise these.", message

    # What the gateway cannot honour is refused before anything runs, by its place.
    for document, param in [
        ({"source": {"type": "url", "url": "https://example.com/a.pdf"}}, "source.type"),
        ({"source": {"type": "base64", "media_type": "application/msword", "data": data}}, "media_type"),
        (
            {
                "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                "citations": {"enabled": True},
            },
            "citations",
        ),
    ]:
        with pytest.raises(anthropic.BadRequestError) as err:
            client.messages.create(
                model=MODEL,
                max_tokens=1024,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "document", **document},
                            {"type": "text", "text": "#msg-bad-doc Read."},
                        ],
                    }
                ],
            )
        assert_anthropic_error(err.value, 400, "invalid_request_error")
        assert param in err.value.body["error"]["message"], err.value.body


def test_redacted_thinking_sent_back(client: Anthropic) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    question = {"role": "user", "content": "#msg-redacted Why? [[redacted_thinking]]"}
    first = client.messages.create(
        model=MODEL, max_tokens=4096, thinking=thinking, messages=[question]
    )
    assert [b.type for b in first.content] == ["redacted_thinking", "text"], first
    assert first.content[0].data.startswith("redacted_fake_"), first
    record(messages_redacted_data=first.content[0].data)

    # Streamed, the block comes whole in its content_block_start.
    with client.messages.stream(
        model=MODEL, max_tokens=4096, thinking=thinking, messages=[question]
    ) as stream:
        starts = [e.content_block for e in stream if e.type == "content_block_start"]
        streamed = stream.get_final_message()
    assert starts[0].type == "redacted_thinking", starts
    assert starts[0].data.startswith("redacted_fake_"), starts
    assert [b.type for b in streamed.content] == ["redacted_thinking", "text"], streamed

    second = client.messages.create(
        model=MODEL,
        max_tokens=4096,
        thinking=thinking,
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": "#msg-redacted-again And then?"},
        ],
    )
    assert text_of(second) == "You said: #msg-redacted-again And then?", second


def test_stop_sequences(client: Anthropic) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        stop_sequences=["NEVER", "HALT"],
        messages=[{"role": "user", "content": "#msg-stop [[reply:one two HALT three]]"}],
    )
    # Cut where the sequence begins, and the answer names the sequence that matched.
    assert text_of(message) == "one two ", message
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "HALT"), message

    with client.messages.stream(
        model=MODEL,
        max_tokens=1024,
        stop_sequences=["HALT"],
        messages=[{"role": "user", "content": "#msg-stop-stream [[reply:one two HALT three]]"}],
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == "one two ", streamed
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "HALT"), final


def test_max_tokens(client: Anthropic) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=3,
        messages=[{"role": "user", "content": "#msg-max Count [[words:10]]"}],
    )
    assert message.stop_reason == "max_tokens", message
    assert text_of(message).split() == ["w1", "w2", "w3"], message
    assert message.usage.output_tokens == 3


def test_count_tokens(client: Anthropic) -> None:
    # A real count, or a 501 in Anthropic's shape: never a silent guess.
    try:
        count = client.messages.count_tokens(
            model=MODEL,
            system="You are terse.",
            messages=[{"role": "user", "content": "#msg-count How many tokens is this?"}],
        )
    except anthropic.APIStatusError as err:
        assert_anthropic_error(err, 501, err.body["error"]["type"])
        record(messages_count="refused")
        return
    assert count.input_tokens > 0, count
    record(messages_count="counted", messages_count_tokens=count.input_tokens)


def test_models_list_in_anthropic_shape(client: Anthropic) -> None:
    # The SDK sends `anthropic-version`: the list comes in Anthropic's shape, claude-* ids only.
    raw = client.models.with_raw_response.list()
    body = raw.http_response.json()
    assert set(body) >= {"data", "has_more", "first_id", "last_id"}, body
    ids = [m["id"] for m in body["data"]]
    assert ids, body
    assert all(i.startswith("claude-") for i in ids), body
    assert all(m["type"] == "model" and m["display_name"] and m["created_at"] for m in body["data"])
    assert (body["first_id"], body["last_id"], body["has_more"]) == (ids[0], ids[-1], False), body
    page = raw.parse()
    assert [m.id for m in page.data] == ids


def test_invalid_requests_are_anthropic_errors(client: Anthropic) -> None:
    # `max_tokens` is required, as Anthropic requires it (the SDK's types would refuse to send
    # such a request, so it goes through the client's raw `post`).
    with pytest.raises(anthropic.BadRequestError) as err:
        client.post(
            "/v1/messages",
            cast_to=anthropic.types.Message,
            body={"model": MODEL, "messages": [{"role": "user", "content": "#msg-bad Hi"}]},
        )
    assert_anthropic_error(err.value, 400, "invalid_request_error")
    assert "max_tokens" in err.value.body["error"]["message"], err.value.body

    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(
            model=MODEL,
            max_tokens=1024,
            messages=[{"role": "robot", "content": "#msg-bad Hi"}],
        )
    assert_anthropic_error(err.value, 400, "invalid_request_error")

    # Malformed JSON gets the same shape.
    with pytest.raises(anthropic.BadRequestError) as err:
        client.post(
            "/v1/messages",
            cast_to=anthropic.types.Message,
            content=b"{not json",
            options={"headers": {"content-type": "application/json"}},
        )
    assert_anthropic_error(err.value, 400, "invalid_request_error")

    # Refused before the 200 when streaming, too.
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(
            model=MODEL,
            max_tokens=1024,
            stream=True,
            messages=[{"role": "robot", "content": "#msg-bad Hi"}],
        )
    assert_anthropic_error(err.value, 400, "invalid_request_error")


def test_bad_key_is_authentication_error() -> None:
    with Anthropic(base_url=gateway(), api_key="not-a-gateway-key", max_retries=0, timeout=30) as c:
        with pytest.raises(anthropic.AuthenticationError) as err:
            c.messages.create(
                model=MODEL,
                max_tokens=1024,
                messages=[{"role": "user", "content": "#msg-badkey Hi"}],
            )
    assert_anthropic_error(err.value, 401, "authentication_error")
