//! The OpenAI Responses API dialect (`POST /v1/responses`), over the same `ChatBackend` seam as
//! chat completions, so it works in-process, over gRPC and behind `--upstream` alike. `types`
//! holds its wire types, `convert` (with `input` for the input items, `custom` for custom tools
//! and `namespace` for namespace tools, `tools` for what they share) turns a request into a
//! domain `ChatRequest`, `stream` is
//! the pure state machine from domain events to Responses events (reasoning items included),
//! `seal` seals Claude's thinking into reasoning items' `encrypted_content`, `handler` is the thin
//! axum route around them, `input_tokens` the token-count route (a 501: the CLI has no exact
//! count), and `doc` describes the raw-JSON request fields for the OpenAPI document. Responses
//! are stored by the session layer (a chain is a session); `stored` writes the dialect's record
//! of one and shows it again, `lookup` serves `GET`/`DELETE /v1/responses/{id}` and
//! `input_items`. `background` is refused.

pub mod convert;
pub mod custom;
pub mod doc;
pub mod handler;
pub mod input;
pub mod input_tokens;
pub mod lookup;
pub mod namespace;
pub mod seal;
pub mod stored;
pub mod stream;
pub mod tools;
pub mod types;
