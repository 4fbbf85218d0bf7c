"""LangChain's `ChatOpenAI` (langchain-openai, pinned in tools/requirements.txt) against
claude-gateway: function calling with `bind_tools`, the round trip with a `ToolMessage`,
streamed tool-call chunks, and `with_structured_output`.

`tests/features.rs` starts the gateway on the real `claude` CLI against the fake Anthropic API
and runs this file with OPENAI_BASE_URL=<gateway>/v1. The fake API calls a tool when the user
text holds `[[tool:NAME:{args}]]` and answers a tool result with `Tool said: <result>`. User
texts carry `#lc-...` markers for the Rust side; the round trip's call id is appended to
FEATURES_RECORD (JSON lines) when that is set.
"""

import json
import os

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

CALL_WEATHER = '[[tool:get_weather:{"city":"Paris"}]]'


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"Drizzle in {city}"


class Person(BaseModel):
    """A person."""

    name: str = Field(description="The person's name")
    age: int = Field(description="Age in years")


def record(**fields) -> None:
    path = os.environ.get("FEATURES_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(fields) + "\n")


@pytest.fixture
def llm() -> ChatOpenAI:
    base_url = os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        pytest.skip("OPENAI_BASE_URL is not set (tests/features.rs sets it)")
    return ChatOpenAI(
        model="gpt-4o",
        base_url=base_url,
        api_key=os.environ.get("OPENAI_API_KEY", "unused"),
        max_retries=0,
        timeout=90,
    )


def test_bind_tools_round_trip(llm: ChatOpenAI) -> None:
    with_tools = llm.bind_tools([get_weather])
    messages = [
        SystemMessage("You report the weather."),
        HumanMessage(f"#lc-round-trip What is the weather in Paris? {CALL_WEATHER}"),
    ]
    ai = with_tools.invoke(messages)
    assert isinstance(ai, AIMessage)
    assert len(ai.tool_calls) == 1, ai
    call = ai.tool_calls[0]
    assert call["name"] == "get_weather", ai
    assert call["args"] == {"city": "Paris"}, ai
    assert call["id"], ai
    assert not ai.invalid_tool_calls, ai
    assert ai.response_metadata.get("finish_reason") == "tool_calls", ai.response_metadata
    assert ai.usage_metadata and ai.usage_metadata["total_tokens"] > 0, ai

    # Run the tool the way LangChain does: invoking it with the call gives the ToolMessage.
    result = get_weather.invoke(call)
    assert isinstance(result, ToolMessage)
    assert result.tool_call_id == call["id"]
    final = with_tools.invoke(messages + [ai, result])
    assert "Tool said" in final.content, final
    assert final.content == "Tool said: Drizzle in Paris", final
    assert not final.tool_calls
    record(langchain_round_trip_call_id=call["id"])


def test_streamed_tool_call_chunks(llm: ChatOpenAI) -> None:
    with_tools = llm.bind_tools([get_weather])
    gathered = None
    count = 0
    for chunk in with_tools.stream([HumanMessage(f"#lc-stream Weather? {CALL_WEATHER}")]):
        gathered = chunk if gathered is None else gathered + chunk
        count += 1
    assert count >= 2, count
    assert gathered is not None
    assert len(gathered.tool_calls) == 1, gathered
    assert gathered.tool_calls[0]["name"] == "get_weather"
    assert gathered.tool_calls[0]["args"] == {"city": "Paris"}


def test_tool_choice_forces_the_named_tool(llm: ChatOpenAI) -> None:
    forced = llm.bind_tools([get_weather], tool_choice="get_weather")
    ai = forced.invoke(f"#lc-forced Tell me about Paris. {CALL_WEATHER}")
    assert [c["name"] for c in ai.tool_calls] == ["get_weather"], ai


def test_structured_output(llm: ChatOpenAI) -> None:
    structured = llm.with_structured_output(Person, method="json_schema")
    person = structured.invoke('#lc-structured Describe Ada. [[json:{"name":"Ada","age":36}]]')
    assert person == Person(name="Ada", age=36)
