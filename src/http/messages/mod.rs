//! Anthropic's Messages API dialect (`POST /v1/messages`, `POST /v1/messages/count_tokens`), for
//! the clients that speak Claude natively (the Anthropic SDKs, Claude Code with
//! `ANTHROPIC_BASE_URL`). Like the Responses dialect it only transcodes, over the same
//! `ChatBackend` seam: `types` holds the wire types, `convert` turns a request into a domain
//! `ChatRequest`, `stream` is the pure state machine from domain events to Anthropic's SSE events
//! (its final state is also the non-streaming answer), `error` maps every `ChatError` to
//! Anthropic's error shape and owns the JSON extractor, `handler` is the thin axum layer, and
//! `models` answers `GET /v1/models` in Anthropic's shape for Anthropic clients, `betas` sorts the
//! `anthropic-beta` flags into reported and refused.

pub mod betas;
pub mod convert;
pub mod error;
pub mod handler;
pub mod models;
pub mod stream;
pub mod types;
