//! `WorkerService`: a worker's load, asked once or watched as a stream, for the façades that
//! balance over several workers (`cluster/`). The numbers are the engine's process budget, the
//! same ones `/metrics` shows; a backend that runs no processes (a façade) reports its workers'
//! sum. A watch sends a report when the load changed, at most every `min_interval_ms` and at
//! least every `HEARTBEAT`, and ends once the worker drains, after one report saying so.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::chat::{ChatBackend, Load};

use super::pb;

/// The longest a watch stays silent while nothing changes: its heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(5);

pub struct WorkerGrpc {
    backend: Arc<dyn ChatBackend>,
    /// Cancelled as soon as shutdown begins.
    draining: CancellationToken,
}

impl WorkerGrpc {
    pub fn new(backend: Arc<dyn ChatBackend>, draining: CancellationToken) -> Self {
        WorkerGrpc { backend, draining }
    }
}

fn report(load: Option<Load>, draining: bool) -> pb::WorkerLoad {
    let load = load.unwrap_or_default();
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    pb::WorkerLoad {
        serving: n(load.serving),
        queued: n(load.queued),
        capacity: n(load.capacity),
        warm: n(load.warm),
        idle: n(load.idle),
        sessions: n(load.session),
        tools: n(load.tools),
        draining,
        quota: crate::chat::quota::board()
            .snapshot()
            .into_iter()
            .map(super::convert::quota_to_pb)
            .collect(),
    }
}

/// The interval a watch asked for, within the bounds the proto promises.
fn interval(min_interval_ms: u32) -> Duration {
    match min_interval_ms {
        0 => Duration::from_millis(100),
        ms => Duration::from_millis(u64::from(ms.max(20))),
    }
}

#[tonic::async_trait]
impl pb::worker_service_server::WorkerService for WorkerGrpc {
    async fn get_load(
        &self,
        _request: Request<pb::GetLoadRequest>,
    ) -> Result<Response<pb::GetLoadResponse>, Status> {
        Ok(Response::new(pb::GetLoadResponse {
            load: Some(report(self.backend.load(), self.draining.is_cancelled())),
        }))
    }

    type WatchLoadStream = BoxStream<'static, Result<pb::WatchLoadResponse, Status>>;

    async fn watch_load(
        &self,
        request: Request<pb::WatchLoadRequest>,
    ) -> Result<Response<Self::WatchLoadStream>, Status> {
        let every = interval(request.into_inner().min_interval_ms);
        let backend = self.backend.clone();
        let draining = self.draining.clone();
        let reports = async_stream::stream! {
            let mut last: Option<pb::WorkerLoad> = None;
            let mut silent = Duration::ZERO;
            loop {
                let now = report(backend.load(), draining.is_cancelled());
                if last.as_ref() != Some(&now) || silent >= HEARTBEAT {
                    let done = now.draining;
                    last = Some(now);
                    silent = Duration::ZERO;
                    yield Ok(pb::WatchLoadResponse { load: last.clone() });
                    if done {
                        break;
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => silent += every,
                    () = draining.cancelled(), if !draining.is_cancelled() => {}
                }
            }
        };
        Ok(Response::new(Box::pin(reports)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_bounded() {
        assert_eq!(interval(0), Duration::from_millis(100));
        assert_eq!(interval(1), Duration::from_millis(20));
        assert_eq!(interval(250), Duration::from_millis(250));
    }

    #[test]
    fn a_report_names_every_state() {
        let load = Load {
            serving: 2,
            warm: 1,
            session: 3,
            idle: 4,
            tools: 5,
            queued: 6,
            capacity: 8,
        };
        let r = report(Some(load), true);
        assert_eq!(
            (
                r.serving, r.queued, r.capacity, r.warm, r.idle, r.sessions, r.tools
            ),
            (2, 6, 8, 1, 4, 3, 5)
        );
        assert!(r.draining);
        assert_eq!(report(None, false), pb::WorkerLoad::default());
    }
}
