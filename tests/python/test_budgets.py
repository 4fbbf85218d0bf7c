"""Budgets and the usage ledger through the official SDKs, `openai` and `anthropic`, with their
default retries on. `tests/usage.rs` starts a gateway on the fake CLI whose key file gives
OPENAI_KEY one request a day and ANTHROPIC_KEY one too, and sets GATEWAY_URL. Each SDK's first
call succeeds and shows what is left in the `x-budget-*` headers; the second is the SDK's own
rate-limit error naming the budget, sent once: the gateway's `x-should-retry: false` stops the
SDK's retries. `GET /v1/usage` through the SDK's own `get` shows the key's row."""

import os
import time

import anthropic
import httpx
import openai
import pytest


def _env(name: str) -> str:
    value = os.environ.get(name)
    assert value, f"{name} is not set (tests/usage.rs sets it)"
    return value


class Counter:
    """Counts the HTTP requests an SDK sends, retries included, with an event hook on the SDK's
    own HTTP client class (each SDK says which httpx it is built on)."""

    def __init__(self) -> None:
        self.sent = 0

    def client(self, sdk):
        def count(_request) -> None:
            self.sent += 1

        return sdk.DefaultHttpxClient(event_hooks={"request": [count]}, timeout=60)


def test_openai_sdk_sees_the_budget_and_does_not_retry_a_spent_one() -> None:
    counter = Counter()
    # max_retries=2 is the SDK's default; written out because the point is that it stays unused.
    client = openai.OpenAI(
        base_url=_env("GATEWAY_URL") + "/v1",
        api_key=_env("OPENAI_KEY"),
        max_retries=2,
        http_client=counter.client(openai),
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}]
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-budget-limit-requests-day"] == "1"
    assert raw.headers["x-budget-remaining-requests-day"] == "0"
    assert int(raw.headers["x-budget-reset-requests-day"]) % 86400 == 0
    before = counter.sent
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Again"}]
        )
    assert refused.value.code == "insufficient_quota"
    assert refused.value.type == "insufficient_quota"
    assert "1 requests per day" in refused.value.message
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert counter.sent - before == 1, "the SDK retried a spent budget"
    # The ledger's row (written in batches: within a moment), through the SDK's own request
    # method; the refusal ran nothing and has none.
    deadline = time.monotonic() + 10
    while True:
        usage = client.get("/usage?group_by=key", cast_to=httpx.Response).json()
        assert usage["object"] == "list", usage
        if usage["data"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(g["key"], g["requests"]) for g in usage["data"]] == [("sdk-openai", 1)], usage


def test_anthropic_sdk_sees_the_budget_and_does_not_retry_a_spent_one() -> None:
    counter = Counter()
    client = anthropic.Anthropic(
        base_url=_env("GATEWAY_URL"),
        api_key=_env("ANTHROPIC_KEY"),
        max_retries=2,
        http_client=counter.client(anthropic),
    )
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert raw.parse().content[0].text
    assert raw.headers["x-budget-remaining-requests-day"] == "0"
    before = counter.sent
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "Again"}],
        )
    assert refused.value.status_code == 429
    body = refused.value.body
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error", body
    assert "1 requests per day" in body["error"]["message"], body
    assert counter.sent - before == 1, "the SDK retried a spent budget"
