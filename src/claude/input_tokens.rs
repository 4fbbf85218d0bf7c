//! Why the engine answers `POST /v1/responses/input_tokens` (and gRPC `CountInputTokens`) with
//! 501 instead of a number. The only count the CLI (2.1.330) offers is its `get_context_usage`
//! control request, and that is a context-window breakdown, not the input tokens of the request
//! it would send. Observed against a fake Anthropic API, after `initialize` with a system prompt
//! and the gateway's in-process MCP tools and a history replayed with `shouldQuery:false`:
//!
//! * it calls `POST /v1/messages/count_tokens?beta=true` up to three times — the messages (with
//!   the CLI's own environment and model reminders), the system prompt *wrapped as a user
//!   message*, and `"foo"` plus the tools — and caches the last two per process (a repeated call
//!   costs one API call, 30–50 ms in a warm process; the first about 70 ms, after ~0.6 s of
//!   spawn and `initialize`);
//! * `totalTokens` adds those counts after subtracting a fixed 500 tokens from the tools' count
//!   (its assumed tool-use overhead, not measured: small tool sets count as 0), and leaves out the
//!   CLI's own system blocks that the real request carries;
//! * when `count_tokens` fails (a 500, or a 404 from a proxy without it) it retries once and then
//!   answers from local character estimates, in the same shape, with nothing marking the answer
//!   as estimated (513 instead of 400 for the same conversation).
//!
//! A number that is sometimes a silent guess, and never the request's own count, is not what a
//! client budgeting its context asks for; the request is validated (so a bad one is still a
//! 400) and then refused with this explanation.

/// The message of the refusal, for the API user.
pub const NOT_COUNTED: &str = "Counting input tokens is not implemented: the claude CLI offers \
    only a context-window estimate (`get_context_usage`), which leaves out part of the request \
    it sends and silently falls back to a character-based guess when the Anthropic API cannot \
    count, so no exact count can be given. The `usage.input_tokens` of a response is exact.";
