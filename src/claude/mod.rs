//! The `claude` subprocess: the argv builder (pure), what goes on stdin, the typed stream-json
//! lines, the turn state machine (pure), the process supervisor, and the engine that ties them
//! into a `ChatBackend` — with where processes come from and go between requests: the one
//! process budget (`limit`), the start line (`starts`), the warm pool (`pool`), and the
//! processes parked for reuse (`parked`, reset by `rewind`).

pub mod argv;
pub mod catalog;
pub mod control;
pub mod engine;
pub mod errors;
pub mod input;
pub mod input_tokens;
pub mod launch;
pub mod limit;
pub mod lines;
pub mod parked;
pub mod pool;
pub mod probe;
pub mod process;
pub mod ratelimit;
pub mod rewind;
pub mod run;
pub mod starts;
pub mod turn;

pub use engine::{Engine, EngineConfig};
