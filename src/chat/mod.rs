//! The domain of a chat completion, free of any protocol: request and event types, validation,
//! the model map, the one error type, the `ChatBackend` seam the protocols talk to, and the
//! `Tenant` a request acts for.

pub mod affinity;
pub mod backend;
pub mod documents;
pub mod error;
pub mod limits;
pub mod message_json;
pub mod models;
pub mod quota;
pub mod stop;
pub mod tenant;
pub mod tokens;
pub mod turns;
pub mod types;
pub mod validate;

pub use backend::{Api, BackendHealth, ChatBackend, ChatStream, CliStatus, Load, RequestContext};
pub use error::ChatError;
pub use tenant::Tenant;
