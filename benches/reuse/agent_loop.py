"""An agent loop through the official `openai` Python SDK, for `benches/reuse.rs`: ten tool
round trips, the whole history sent again at each step, against two gateways at once — one
continuing its parked `claude` process in place (reuse on), one replaying the history into a
fresh process (reuse off). The steps are interleaved (the first path alternates) so both see the
same machine.

The fake Anthropic API (`tests/common/fake_anthropic.rs`) is scripted through the messages: the
user text asks for `lookup` with `[[tool:lookup:{"n":1}]]`, and each tool result carries the
next call's directive, until the tenth result, which carries none and is answered
`Tool said: <result>`.

With `chat` instead of `tools`, the same is done for a chat UI: each step resends the history
with one more question (`[[words:5]]`, answered `w1 w2 w3 w4 w5`), which a parked process
holding that history continues.

Usage: python agent_loop.py REUSE_BASE_URL REPLAY_BASE_URL ROUNDS tools|chat
Prints one JSON object: {"reuse": [seconds per step], "replay": [...], "first": {...},
"errors": {path: what failed}}; a path that fails stops there, the other goes on.
"""

import json
import sys
import time

from openai import OpenAI

MODEL = "sonnet"
SYSTEM = "You are a careful agent. Call lookup for each step until it says it is the last."
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Looks up the result of step n.",
        "parameters": {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"],
        },
    },
}


WORDS = "[[words:5]]"


def directive(n: int) -> str:
    return '[[tool:lookup:{"n":%d}]]' % n


def result_of(n: int, rounds: int) -> str:
    if n < rounds:
        return f"step {n} done, next {directive(n + 1)}"
    return f"step {n} done, that was the last"


def assistant_turn(message) -> dict:
    """The assistant message as a client sends it back: its text and its calls as received."""
    turn = {"role": "assistant", "content": message.content}
    if message.tool_calls:
        turn["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in message.tool_calls
        ]
    return turn


class Loop:
    """One conversation: `tools` (tool round trips) or `chat` (a chat UI resending the
    history with one more question each time, answered `w1 w2 w3 w4 w5`)."""

    def __init__(self, base_url: str, mode: str) -> None:
        self.client = OpenAI(base_url=base_url + "/v1", api_key="sk-bench", timeout=120, max_retries=0)
        first = f"#agent-loop Run the steps. {directive(1)}"
        if mode == "chat":
            first = f"#chat-loop Question 0. {WORDS}"
        self.messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": first}]
        self.mode = mode
        self.steps: list[float] = []

    def call(self) -> tuple[float, object]:
        start = time.perf_counter()
        completion = self.client.chat.completions.create(
            model=MODEL, messages=self.messages, tools=[LOOKUP]
        )
        took = time.perf_counter() - start
        message = completion.choices[0].message
        self.messages.append(assistant_turn(message))
        return took, completion.choices[0]

    def expect_call(self, choice, n: int) -> None:
        if self.mode == "chat":
            assert choice.finish_reason == "stop", choice
            assert choice.message.content == "w1 w2 w3 w4 w5", choice
            return
        calls = choice.message.tool_calls or []
        assert choice.finish_reason == "tool_calls", choice
        assert len(calls) == 1 and calls[0].function.name == "lookup", choice
        assert json.loads(calls[0].function.arguments) == {"n": n}, choice

    def answer(self, choice, n: int, rounds: int) -> None:
        if self.mode == "chat":
            self.messages.append({"role": "user", "content": f"Question {n}. {WORDS}"})
            return
        call = choice.message.tool_calls[0]
        self.messages.append(
            {"role": "tool", "tool_call_id": call.id, "content": result_of(n, rounds)}
        )


def step(loop: Loop, choice, n: int, rounds: int):
    """Sends the result of call n and checks the answer: call n+1, or the final text."""
    loop.answer(choice, n, rounds)
    took, choice = loop.call()
    loop.steps.append(took)
    if n < rounds or loop.mode == "chat":
        loop.expect_call(choice, n + 1)
    else:
        assert choice.finish_reason == "stop", choice
        want = f"Tool said: {result_of(n, rounds)}"
        assert choice.message.content == want, choice
    return choice


def main() -> None:
    reuse_url, replay_url, rounds, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    loops = {"reuse": Loop(reuse_url, mode), "replay": Loop(replay_url, mode)}
    out = {"first": {}, "errors": {}}
    choices = {}
    # A path that fails stops there (its error reported, its steps so far kept); the other
    # goes on.
    for name, loop in loops.items():
        try:
            out["first"][name], choices[name] = loop.call()
            loop.expect_call(choices[name], 1)
        except Exception as e:
            out["errors"][name] = f"the first request failed: {e!r}"
    for n in range(1, rounds + 1):
        order = ["reuse", "replay"] if n % 2 else ["replay", "reuse"]
        for name in order:
            if name in out["errors"]:
                continue
            try:
                choices[name] = step(loops[name], choices[name], n, rounds)
            except Exception as e:
                out["errors"][name] = f"step {n} failed: {e!r}"
    for name, loop in loops.items():
        out[name] = loop.steps
    print(json.dumps(out))


if __name__ == "__main__":
    main()
