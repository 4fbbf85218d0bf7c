//! The workers behind the façade: the `--upstream` URLs, each an address or a DNS name, and the
//! members they stand for now. An address is one worker; a DNS name is resolved again every
//! `--upstream-resolve-secs` and each address it answers is one worker (a Kubernetes headless
//! Service lists its ready pods), so workers come and go without a restart. A name that does
//! not resolve keeps its last answer. IPv4 answers are used when there are any (a dual-stack
//! name would otherwise count every worker twice), else IPv6.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Uri;

use crate::chat::ChatError;
use crate::grpc::remote::{Refusal, RemoteBackend};
use crate::grpc::upstream::UpstreamConfig;
use crate::metrics::upstream as metrics;

use super::member::{Health, Member};
use super::pick::{rendezvous, two_choices};

/// The most workers one request is tried on.
const MAX_ATTEMPTS: usize = 4;

/// One `--upstream` URL.
#[derive(Debug, Clone)]
struct Target {
    config: UpstreamConfig,
    scheme: String,
    host: String,
    port: u16,
}

impl Target {
    fn parse(config: UpstreamConfig) -> Result<Self, String> {
        // Every setting (scheme, TLS, the key in clear text) is checked on the URL as given.
        crate::grpc::upstream::endpoint(&config)?;
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| format!("invalid --upstream `{}`: {e}", config.url))?;
        let scheme = uri.scheme_str().unwrap_or("http").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Ok(Target {
            config,
            scheme,
            host,
            port,
        })
    }

    /// An IP address needs no resolving.
    fn fixed(&self) -> bool {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
    }

    /// The member for one resolved address: the URL names the address, TLS still checks the
    /// certificate against the configured host name.
    fn at(&self, addr: SocketAddr) -> (String, UpstreamConfig) {
        let name = format!("{}://{addr}", self.scheme);
        let config = UpstreamConfig {
            url: name.clone(),
            server_name: Some(self.host.clone()),
            ..self.config.clone()
        };
        (name, config)
    }

    async fn resolve(&self) -> std::io::Result<Vec<(String, UpstreamConfig)>> {
        if self.fixed() {
            return Ok(vec![(self.config.url.clone(), self.config.clone())]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect();
        let v4: Vec<SocketAddr> = addrs.iter().copied().filter(SocketAddr::is_ipv4).collect();
        let mut chosen = if v4.is_empty() { addrs } else { v4 };
        chosen.sort();
        chosen.dedup();
        Ok(chosen.into_iter().map(|a| self.at(a)).collect())
    }
}

/// The workers now, by name.
pub struct Members {
    targets: Vec<Target>,
    members: RwLock<BTreeMap<String, Arc<Member>>>,
}

impl Members {
    /// Checks every URL's settings; no connection is made yet (a worker that is not up is an
    /// unavailable worker, not a startup failure).
    pub fn new(configs: Vec<UpstreamConfig>) -> Result<Arc<Self>, String> {
        if configs.is_empty() {
            return Err("--upstream needs at least one worker URL".into());
        }
        let targets = configs
            .into_iter()
            .map(Target::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Members {
            targets,
            members: RwLock::new(BTreeMap::new()),
        }))
    }

    /// Resolves the targets once now, then every `every` until `stop`.
    pub async fn discover(self: &Arc<Self>, every: Duration, stop: CancellationToken) {
        self.refresh().await;
        let members = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = stop.cancelled() => return,
                }
                let Some(members) = members.upgrade() else {
                    return;
                };
                members.refresh().await;
            }
        });
    }

    /// The members the targets stand for now: new addresses join, vanished ones leave.
    async fn refresh(&self) {
        let mut wanted: BTreeMap<String, UpstreamConfig> = BTreeMap::new();
        let mut failed = false;
        for target in &self.targets {
            match target.resolve().await {
                Ok(found) => wanted.extend(found),
                Err(e) => {
                    tracing::warn!(host = %target.host, "cannot resolve an --upstream: {e}");
                    failed = true;
                }
            }
        }
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        // When a name did not resolve this time, nobody leaves: it keeps what it had.
        if !failed {
            members.retain(|name, _| wanted.contains_key(name));
        }
        for (name, config) in wanted {
            if members.contains_key(&name) {
                continue;
            }
            match RemoteBackend::new(&config) {
                Ok(remote) => {
                    tracing::info!(worker = %name, "upstream worker joined");
                    members.insert(name.clone(), Member::start(name, remote));
                }
                Err(e) => tracing::error!(worker = %name, "cannot use an upstream worker: {e}"),
            }
        }
    }

    pub fn all(&self) -> Vec<Arc<Member>> {
        let members = self.members.read().unwrap_or_else(|e| e.into_inner());
        members.values().cloned().collect()
    }

    /// The member for the next attempt of a request: not one already `tried`; among those
    /// taking requests, the rendezvous winner for `key` or the better of two random ones. When
    /// none takes requests (all starting up or down), any untried one: its answer is the
    /// request's, rather than a refusal made here.
    pub fn choose(&self, key: Option<&[u8]>, tried: &[String]) -> Option<Arc<Member>> {
        let untried: Vec<Arc<Member>> = self
            .all()
            .into_iter()
            .filter(|m| !tried.contains(&m.name))
            .collect();
        let ready: Vec<Arc<Member>> = untried
            .iter()
            .filter(|m| m.takes_requests())
            .cloned()
            .collect();
        let pool = if ready.is_empty() { untried } else { ready };
        match key {
            Some(key) => {
                let order = rendezvous(key, pool.iter().map(|m| m.name.as_str()));
                let first = order.first()?;
                pool.iter().find(|m| m.name == *first).cloned()
            }
            None => {
                let candidates: Vec<_> = pool.iter().map(|m| m.candidate()).collect();
                let random = uuid::Uuid::new_v4().as_u64_pair().0;
                two_choices(&candidates, random).and_then(|i| pool.get(i).cloned())
            }
        }
    }

    /// How many members are in each state, for the metrics.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let states = self.states();
        ["serving", "draining", "not_serving", "unreachable"]
            .into_iter()
            .map(|s| (s, states.iter().filter(|(_, st)| *st == s).count()))
            .collect()
    }

    /// Members by state, for `/health` and the metrics.
    pub fn states(&self) -> Vec<(String, &'static str)> {
        self.all()
            .iter()
            .map(|m| {
                let state = match m.health() {
                    _ if m.draining() => "draining",
                    Health::Serving => "serving",
                    Health::NotServing => "not_serving",
                    Health::Unknown | Health::Unreachable => "unreachable",
                };
                (m.name.clone(), state)
            })
            .collect()
    }

    /// Runs `call` on a worker and, while it fails in a way that may be retried, on others.
    pub async fn on_any<T, F, Fut>(&self, key: Option<&[u8]>, call: F) -> Result<T, ChatError>
    where
        F: Fn(Arc<Member>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Refusal>>,
    {
        let mut tried = Vec::new();
        let mut last = None;
        while tried.len() < MAX_ATTEMPTS {
            let Some(member) = self.choose(key, &tried) else {
                break;
            };
            match call(member.clone()).await {
                Ok(value) => {
                    metrics::attempt(&member.name, "ok");
                    return Ok(value);
                }
                Err(refusal) if refusal.retry => {
                    tracing::warn!(worker = %member.name, error = %refusal.error, "retrying on another worker");
                    metrics::attempt(&member.name, "retried");
                    if matches!(refusal.error, ChatError::Unavailable { .. }) {
                        member.pause();
                    }
                    tried.push(member.name.clone());
                    last = Some(refusal.error);
                }
                Err(refusal) => {
                    metrics::attempt(&member.name, "failed");
                    return Err(refusal.error);
                }
            }
        }
        Err(last.unwrap_or_else(|| ChatError::Unavailable {
            message: "No upstream worker is known: --upstream resolved to no address yet.".into(),
        }))
    }
}
