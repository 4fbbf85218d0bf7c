"""Fixtures for the OpenAI SDK tests. `tests/clients.rs` starts the gateway (real `claude` CLI
against the fake Anthropic API) and runs pytest with OPENAI_BASE_URL=<gateway>/v1 and
OPENAI_API_KEY set; run by hand, point OPENAI_BASE_URL at any running gateway."""

import os

import pytest
from openai import AsyncOpenAI, OpenAI


def _base_url() -> str:
    url = os.environ.get("OPENAI_BASE_URL")
    if not url:
        pytest.skip("OPENAI_BASE_URL is not set (tests/clients.rs sets it)")
    return url


@pytest.fixture
def client() -> OpenAI:
    # No retries: a failure must show the gateway's first answer, not a retried one.
    with OpenAI(base_url=_base_url(), max_retries=0, timeout=90) as c:
        yield c


@pytest.fixture
def async_client_factory():
    def make() -> AsyncOpenAI:
        return AsyncOpenAI(base_url=_base_url(), max_retries=0, timeout=90)

    return make
