//! The OpenAI Responses API dialect (`POST /v1/responses`), over the same `ChatBackend` seam as
//! chat completions, so it works in-process, over gRPC and behind `--upstream` alike. `types`
//! holds its wire types, `convert` (with `input` for the input items and `custom` for custom
//! tools) turns a request into a domain `ChatRequest`, `stream` is the pure state machine from
//! domain events to Responses events (reasoning items included), `seal` seals Claude's thinking
//! into reasoning items' `encrypted_content`, `handler` is the thin axum route around them, and
//! `doc` describes the raw-JSON request fields for the OpenAPI document. Stateless for now: nothing is stored, so
//! `previous_response_id` and `background` are refused.

pub mod convert;
pub mod custom;
pub mod doc;
pub mod handler;
pub mod input;
pub mod seal;
pub mod stream;
pub mod types;
