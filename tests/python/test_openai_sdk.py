"""The official `openai` Python SDK against claude-gateway.

The gateway runs the real `claude` CLI against the fake Anthropic API of
`tests/common/fake_anthropic.rs`, which answers `You said: <text>` and obeys directives such as
`[[words:N]]` (answer `w1 w2 ... wN`, one word per delta). `tests/clients.rs` starts both and runs
this file with OPENAI_BASE_URL=<gateway>/v1.
"""

import asyncio

import openai
import pytest
from openai import OpenAI


def test_basic_completion(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: Hello"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_system_message_and_multi_turn(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": "What is my name?"},
        ],
    )
    # The fake API answers the last user message.
    assert completion.choices[0].message.content == "You said: What is my name?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o"


def test_streaming(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Count [[words:5]]"}],
        stream=True,
    )
    chunks = list(stream)
    assert chunks, "no chunks"
    ids = {c.id for c in chunks}
    assert len(ids) == 1, ids
    for c in chunks:
        assert c.object == "chat.completion.chunk"
        assert c.model == "gpt-4o"
        assert c.usage is None, c
    assert chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 3, chunks
    text = "".join(c.choices[0].delta.content for c in content_chunks)
    assert text == "w1 w2 w3 w4 w5"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"], chunks
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_streaming_with_include_usage(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Count [[words:4]]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len(chunks) >= 3, chunks
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    for c in chunks[:-1]:
        assert c.usage is None, c
        assert len(c.choices) == 1, c
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert text == "w1 w2 w3 w4"
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_models_list_and_retrieve(client: OpenAI) -> None:
    models = list(client.models.list())
    ids = [m.id for m in models]
    assert "gpt-4o" in ids, ids
    assert "sonnet" in ids, ids
    for m in models:
        assert m.object == "model"
    model = client.models.retrieve("gpt-4o")
    assert model.id == "gpt-4o"
    assert model.object == "model"
    assert model.owned_by


def test_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(
            model="gpt-9-does-not-exist",
            messages=[{"role": "user", "content": "Hello"}],
        )
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert "gpt-9-does-not-exist" in info.value.message


def test_retrieving_an_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-9-does-not-exist")
    assert info.value.code == "model_not_found"


def test_bad_request(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert info.value.status_code == 400
    assert info.value.type == "invalid_request_error"
    assert info.value.param == "messages"


def test_last_message_must_be_from_the_user(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
            ],
        )
    assert info.value.param == "messages"


def test_raw_response_has_a_request_id(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert raw.status_code == 200
    request_id = raw.headers.get("x-request-id")
    assert request_id, dict(raw.headers)
    completion = raw.parse()
    assert completion.choices[0].message.content == "You said: Hello"

    # A client-chosen request id is echoed back.
    models = client.models.with_raw_response.list(extra_headers={"x-request-id": "sdk-req-42"})
    assert models.headers.get("x-request-id") == "sdk-req-42"


def test_async_client_streams(async_client_factory) -> None:
    async def run() -> list:
        async with async_client_factory() as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Count [[words:3]]"}],
                stream=True,
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.model == "gpt-4o-mini" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w1 w2 w3"
    assert chunks[-1].choices[0].finish_reason == "stop"
