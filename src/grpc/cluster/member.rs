//! One worker as the façade sees it: its connection, what it last said about its health
//! (`grpc.health.v1` Watch) and its load (`WorkerService.WatchLoad`), both watched on streams
//! that reconnect with backoff, the requests this façade has on it, and a short pause after a
//! request found it unreachable. Dropping the member (it left the DNS answer) stops both
//! watches; requests still running on it keep their connection until they end.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::chat::Load;
use crate::grpc::pb;
use crate::grpc::pb::worker_service_client::WorkerServiceClient;
use crate::grpc::remote::RemoteBackend;
use crate::metrics::upstream as metrics;

use super::pick::Candidate;

/// How long a worker that refused a connection is passed over, unless its health watch
/// reconnects first.
const PAUSE: Duration = Duration::from_secs(2);
/// Between two attempts to reopen a watch: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));
/// How often the worker may report its load.
const REPORT_EVERY_MS: u32 = 100;

/// What the last health report said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Nothing heard yet.
    Unknown,
    Serving,
    NotServing,
    /// The watch broke: the worker is gone or restarting.
    Unreachable,
}

#[derive(Debug)]
struct State {
    health: Health,
    load: Option<pb::WorkerLoad>,
    /// This façade's requests on it when its last report came: those started since are not
    /// in the report yet.
    in_flight_at_report: u32,
    /// Passed over until then: a request could not reach it.
    paused_until: Option<Instant>,
}

pub struct Member {
    /// Its address, `scheme://ip:port` or the configured URL: its label and its rendezvous name.
    pub name: String,
    pub remote: RemoteBackend,
    state: Mutex<State>,
    in_flight: AtomicU32,
    stop: CancellationToken,
}

impl Member {
    /// The member, with its two watches running until it is dropped.
    pub fn start(name: String, remote: RemoteBackend) -> Arc<Self> {
        let member = Arc::new(Member {
            name,
            remote,
            state: Mutex::new(State {
                health: Health::Unknown,
                load: None,
                in_flight_at_report: 0,
                paused_until: None,
            }),
            in_flight: AtomicU32::new(0),
            stop: CancellationToken::new(),
        });
        tokio::spawn(watch_health(Arc::downgrade(&member), member.stop.clone()));
        tokio::spawn(watch_load(Arc::downgrade(&member), member.stop.clone()));
        member
    }

    fn state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    pub fn health(&self) -> Health {
        self.state(|s| s.health)
    }

    /// Whether new requests may go to it: serving, not draining, not paused.
    pub fn takes_requests(&self) -> bool {
        self.state(|s| {
            s.health == Health::Serving
                && !s.load.as_ref().is_some_and(|l| l.draining)
                && s.paused_until.is_none_or(|t| Instant::now() >= t)
        })
    }

    /// Serving but shutting down: it finishes what it runs.
    pub fn draining(&self) -> bool {
        self.state(|s| s.load.as_ref().is_some_and(|l| l.draining))
    }

    /// A request could not reach it: passed over for a moment.
    pub fn pause(&self) {
        self.state(|s| s.paused_until = Some(Instant::now() + PAUSE));
    }

    pub fn candidate(&self) -> Candidate {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        self.state(|s| match &s.load {
            Some(l) => Candidate {
                reported_busy: l.serving.saturating_add(l.queued),
                since_report: in_flight.saturating_sub(s.in_flight_at_report),
                capacity: l.capacity,
                ready: l.warm.saturating_add(l.idle),
                in_flight,
            },
            None => Candidate {
                reported_busy: 0,
                since_report: in_flight,
                capacity: 0,
                ready: 0,
                in_flight,
            },
        })
    }

    /// Its last reported load, in the domain's terms.
    pub fn load(&self) -> Option<Load> {
        self.state(|s| {
            s.load.as_ref().map(|l| Load {
                serving: l.serving as usize,
                warm: l.warm as usize,
                session: l.sessions as usize,
                idle: l.idle as usize,
                tools: l.tools as usize,
                queued: l.queued as usize,
                capacity: l.capacity as usize,
            })
        })
    }

    /// Counts a request on it until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics::in_flight(&self.name, 1);
        InFlight(self.clone())
    }

    fn set_health(&self, health: Health) {
        self.state(|s| {
            if health == Health::Serving {
                // The worker answers again: whatever paused it is over.
                s.paused_until = None;
            }
            s.health = health;
        });
    }

    fn set_load(&self, load: Option<pb::WorkerLoad>) {
        // The workers' account windows become the façade's own (the newest report wins).
        if let Some(load) = &load {
            crate::chat::quota::board().record(
                load.quota
                    .iter()
                    .cloned()
                    .map(crate::grpc::convert::quota_from_pb),
            );
        }
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        self.state(|s| {
            s.load = load;
            s.in_flight_at_report = in_flight;
        });
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.cancel();
        metrics::forget(&self.name);
    }
}

/// A request this façade has on a member.
pub struct InFlight(Arc<Member>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics::in_flight(&self.0.name, -1);
    }
}

/// The next backoff after `current`.
fn next(current: Duration) -> Duration {
    (current * 2).min(BACKOFF.1)
}

/// Follows the worker's overall health (`service: ""`) for as long as the member lives.
async fn watch_health(member: std::sync::Weak<Member>, stop: CancellationToken) {
    let mut backoff = BACKOFF.0;
    loop {
        let Some(channel) = member.upgrade().map(|m| m.remote.channel()) else {
            return;
        };
        let mut client = HealthClient::new(channel);
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let opened = tokio::select! {
            opened = client.watch(request) => opened,
            () = stop.cancelled() => return,
        };
        if let Ok(response) = opened {
            let mut updates = response.into_inner();
            loop {
                let update = tokio::select! {
                    update = updates.next() => update,
                    () = stop.cancelled() => return,
                };
                let Some(Ok(update)) = update else { break };
                let Some(m) = member.upgrade() else { return };
                backoff = BACKOFF.0;
                m.set_health(match update.status() {
                    ServingStatus::Serving => Health::Serving,
                    _ => Health::NotServing,
                });
            }
        }
        match member.upgrade() {
            Some(m) => m.set_health(Health::Unreachable),
            None => return,
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = next(backoff);
    }
}

/// Follows the worker's load reports for as long as the member lives.
async fn watch_load(member: std::sync::Weak<Member>, stop: CancellationToken) {
    let mut backoff = BACKOFF.0;
    loop {
        let Some(channel) = member.upgrade().map(|m| m.remote.channel()) else {
            return;
        };
        let mut client = WorkerServiceClient::new(channel);
        let request = pb::WatchLoadRequest {
            min_interval_ms: REPORT_EVERY_MS,
        };
        let opened = tokio::select! {
            opened = client.watch_load(request) => opened,
            () = stop.cancelled() => return,
        };
        if let Ok(response) = opened {
            let mut reports = response.into_inner();
            loop {
                let report = tokio::select! {
                    report = reports.next() => report,
                    () = stop.cancelled() => return,
                };
                let Some(Ok(report)) = report else { break };
                let Some(m) = member.upgrade() else { return };
                backoff = BACKOFF.0;
                m.set_load(report.load);
            }
        }
        // A draining worker's last report said so; keep it until the worker answers again.
        match member.upgrade() {
            Some(m) if !m.draining() => m.set_load(None),
            Some(_) => {}
            None => return,
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = next(backoff);
    }
}
