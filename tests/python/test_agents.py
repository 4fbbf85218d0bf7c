"""The OpenAI Agents SDK (`openai-agents`) against claude-gateway: an `Agent` with one
`@function_tool`, on `OpenAIResponsesModel` (the Responses API) with an `AsyncOpenAI` client
whose base URL is the gateway, run whole (`Runner.run`) and streamed (`Runner.run_streamed`).
The SDK runs the agent loop itself: the model asks for the tool, the SDK calls the Python
function and sends its result back as a `function_call_output`, the model answers with text.

The gateway runs the real `claude` CLI against the fake Anthropic API of
`tests/common/fake_anthropic.rs`: `[[tool:lookup_code:{...}]]` in the user text makes it call
the tool, and a turn carrying tool results is answered `Tool said: <result text>`.
`tests/agents.rs` starts both, runs this file, then checks in the fake API's log that the tool
result reached Claude as a native `tool_result`. Each test marks its input with `#agents-...`.
"""

import asyncio
import json
import os

from agents import (
    Agent,
    ItemHelpers,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.items import ToolCallItem, ToolCallOutputItem

MODEL = "gpt-4o"
INSTRUCTIONS = "Answer with the code the lookup_code tool gives."
CALL = '[[tool:lookup_code:{"city":"Oslo"}]]'
CODE = "code-for-oslo-4471"

# Traces would go to OpenAI's servers; the gateway is all there is here.
set_tracing_disabled(True)

CALLS: list[str] = []


@function_tool
def lookup_code(city: str) -> str:
    """The access code of a city.

    Args:
        city: The city's name.
    """
    CALLS.append(city)
    return f"code-for-{city.lower()}-4471"


def make_agent(async_client_factory) -> Agent:
    model = OpenAIResponsesModel(model=MODEL, openai_client=async_client_factory())
    return Agent(name="Coder", instructions=INSTRUCTIONS, tools=[lookup_code], model=model)


def check_items(marker: str, items) -> None:
    """One call of the tool and its output in the run's items; the call id goes to the record
    (tests/agents.rs finds it on the tool_use and the tool_result Claude saw)."""
    calls = [i for i in items if isinstance(i, ToolCallItem)]
    outputs = [i for i in items if isinstance(i, ToolCallOutputItem)]
    assert len(calls) == 1 and len(outputs) == 1, items
    assert calls[0].raw_item.name == "lookup_code", calls[0]
    assert json.loads(calls[0].raw_item.arguments) == {"city": "Oslo"}, calls[0]
    assert outputs[0].output == CODE, outputs[0]
    assert outputs[0].raw_item["call_id"] == calls[0].raw_item.call_id, outputs[0]
    path = os.environ.get("FEATURES_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"marker": marker, "call_id": calls[0].raw_item.call_id}) + "\n")


def test_runner_run_calls_the_function_tool(async_client_factory) -> None:
    CALLS.clear()
    agent = make_agent(async_client_factory)
    result = asyncio.run(
        Runner.run(agent, f"#agents-run What is the code for Oslo? {CALL}", max_turns=4)
    )
    assert CALLS == ["Oslo"]
    assert result.final_output == f"Tool said: {CODE}", result.final_output
    check_items("#agents-run ", result.new_items)
    # Two model calls: the one asking for the tool, the one answering with its result.
    assert len(result.raw_responses) == 2, result.raw_responses
    assert all(r.usage.output_tokens > 0 for r in result.raw_responses)


def test_runner_run_streamed_calls_the_function_tool(async_client_factory) -> None:
    CALLS.clear()
    agent = make_agent(async_client_factory)

    async def run():
        result = Runner.run_streamed(
            agent, f"#agents-stream What is the code for Oslo? {CALL}", max_turns=4
        )
        deltas, items = [], []
        async for event in result.stream_events():
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                deltas.append(event.data.delta)
            elif event.type == "run_item_stream_event":
                items.append(event.item)
        return result, deltas, items

    result, deltas, items = asyncio.run(run())
    assert CALLS == ["Oslo"]
    assert result.final_output == f"Tool said: {CODE}", result.final_output
    check_items("#agents-stream ", items)
    messages = [ItemHelpers.text_message_output(i) for i in items if i.type == "message_output_item"]
    assert messages[-1] == f"Tool said: {CODE}", messages
    # The answer arrived as text deltas (both turns' texts: "Let me check." and the answer).
    assert "".join(deltas).endswith(f"Tool said: {CODE}"), deltas
    assert len(deltas) > 2, deltas
