//! `GET /dashboard/data`: one JSON snapshot of what the page draws, built from the metrics
//! registry (`metrics::snapshot`), the backend's load (its processes by state and the queue;
//! in front of workers, their sum), the quota board and the recent-request rings.

use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::json;

use super::{json, refused};
use crate::access::Viewer;
use crate::http::handlers::AppState;

pub async fn data(State(state): State<AppState>, viewer: Option<Extension<Viewer>>) -> Response {
    if let Some(refusal) = refused(viewer.map(|v| v.0)) {
        return refusal;
    }
    let mut numbers = crate::metrics::snapshot::numbers();
    // Not counting this very request.
    numbers.in_flight_http = (numbers.in_flight_http - 1).max(0);
    let load = state.backend.load().map(|l| {
        json!({
            "serving": l.serving,
            "warm": l.warm,
            "session": l.session,
            "idle": l.idle,
            "tools": l.tools,
            "queued": l.queued,
            "capacity": l.capacity,
        })
    });
    let (recent, errors) = crate::metrics::recent::snapshot();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now_ms": now_ms,
        "started": state.started,
        "status": if state.draining.is_cancelled() { "draining" } else { "serving" },
        "numbers": numbers,
        "load": load,
        "quota": crate::chat::quota::board().snapshot(),
        "recent": recent,
        "errors": errors,
    }))
}
