//! Who may use the gateway, and how often: optional gateway API keys (`Authorization: Bearer`
//! over HTTP, `authorization` metadata over gRPC) and an optional per-key request rate limit.
//! `Access` makes one decision for both protocols (`admit`); the thin layers that read a request
//! and write the answer in each protocol's shape live with their protocol (`http::access`,
//! `grpc::access`), so this module imports neither.
//!
//! The rules, by route:
//! - the API (`/v1/…`, the `claude_gateway.v1` services, and anything unknown) needs a key when
//!   keys are configured, and spends the caller's rate-limit budget;
//! - health (`/health…`, `/metrics…`, `grpc.health.v1`) needs a key only with
//!   `--public-health false`, and is never rate-limited (probes must not be throttled);
//! - documentation (`/`, `/openapi.json`, `/docs…`, `/redoc…`, gRPC reflection) is always open:
//!   it shows the contract only, and runs nothing.
//!
//! With no keys configured everything is open; a rate limit then applies per client address
//! (IPv6 per /64), which behind a reverse proxy means one budget for all. One budget serves
//! both protocols. Keys are never logged, nor echoed in error messages.
//!
//! The dashboard (`/dashboard…`) decides for itself (`Access::console`): an admin key, a
//! dashboard login's cookie (`console`), or with `--dashboard-open-on-loopback` any client on
//! 127.0.0.1/::1. The same cookie also admits, as admin, the read-only operator endpoints the
//! dashboard's page reads (`GET /v1/quota`, `/v1/usage`, `/v1/budgets`: `Route::console_read`).
//!
//! With `--quota-low-priority-threshold`, a `priority=low` key is refused (429, retry after the
//! window's reset) while any of the Claude account's usage windows is used above it
//! (`chat::quota`).
//!
//! The budgets live in this process (`limiter`), or with `--rate-limit-store postgres://…` in
//! PostgreSQL (`shared_limiter`), shared by every gateway using that database: a key by a
//! digest of it (`KeySet::limit_id`), the same on every instance; a client address as itself,
//! so one client is one budget whichever façade it reaches.
//!
//! Every admitted request acts for a `Tenant` (the key's, or the anonymous tenant without keys),
//! which the layers put into the request's extensions for the handlers. A `--upstream` façade
//! names the tenant it acts for in the `x-gateway-tenant` (and `x-gateway-tenant-admin`)
//! metadata; a worker honours that only from an admin key, or when it has no keys at all (an
//! open worker trusts its network), never from an ordinary key.

pub mod console;
mod keys;
mod limiter;
mod shared_limiter;

use std::net::IpAddr;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};

use crate::chat::{ChatError, Tenant};

/// The metadata a façade names its caller's tenant in, on every call to its worker.
pub const TENANT_METADATA: &str = "x-gateway-tenant";
/// `true` when the façade's caller is an admin.
pub const TENANT_ADMIN_METADATA: &str = "x-gateway-tenant-admin";

pub use keys::{ApiKey, KeyEntry, KeySet, parse_key_file, read_key_file};
pub use limiter::{Gcra, Identity, Quota, RateLimiter, openai_duration, retry_after_secs};
pub use shared_limiter::{DECIDE_TIMEOUT, SharedLimiter};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The API proper: a key when there are keys, and rate-limited.
    Api,
    /// Health and metrics: a key only without `--public-health`; never rate-limited.
    Health,
    /// Documentation: always open.
    Open,
}

/// True when `path` is `prefix` or lies below it (`/health`, `/health/live`; not `/healthz`).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Route {
    /// Whether a GET of `path` is one of the operator's read endpoints the dashboard's page
    /// reads with its login cookie.
    pub fn console_read(path: &str) -> bool {
        ["/v1/quota", "/v1/usage", "/v1/budgets"].contains(&path)
    }

    /// Whether `path` is the dashboard's.
    pub fn is_console(path: &str) -> bool {
        under(path, "/dashboard")
    }

    pub fn of_http_path(path: &str) -> Self {
        if path == "/"
            || ["/openapi.json", "/docs", "/redoc"]
                .iter()
                .any(|p| under(path, p))
        {
            Route::Open
        } else if ["/health", "/metrics"].iter().any(|p| under(path, p)) {
            Route::Health
        } else {
            Route::Api
        }
    }

    /// gRPC paths are `/package.Service/Method`.
    pub fn of_grpc_path(path: &str) -> Self {
        if path.starts_with("/grpc.reflection.") {
            Route::Open
        } else if path.starts_with("/grpc.health.") {
            Route::Health
        } else {
            Route::Api
        }
    }
}

/// Which protocol a refusal is written for: the messages say where the key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
}

/// A request the gateway turns away, with the quota to report when the rate limit did it.
#[derive(Debug)]
pub struct Refusal {
    pub error: ChatError,
    pub quota: Option<Quota>,
}

/// A request let in: who it acts for, and the quota to report when rate-limited.
#[derive(Debug)]
pub struct Admitted {
    pub tenant: Tenant,
    pub quota: Option<Quota>,
}

/// What the configuration says about access (`Config::access_config`).
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    pub api_keys: Vec<ApiKey>,
    pub admin_api_keys: Vec<ApiKey>,
    pub api_keys_file: Option<std::path::PathBuf>,
    pub public_health: bool,
    pub rate_limit_rpm: u32,
    /// `--rate-limit-store`: a `postgres://` URL, for budgets shared by every instance.
    pub rate_limit_store: Option<String>,
    /// `--quota-low-priority-threshold`: low-priority keys are refused above this utilization.
    pub quota_low_priority_threshold: Option<f64>,
    /// `--dashboard-open-on-loopback`.
    pub dashboard_open_on_loopback: bool,
}

/// Where the budgets are kept.
enum Limiter {
    Local(RateLimiter),
    Shared(SharedLimiter),
}

/// The access rules of one gateway, shared by both protocols.
pub struct Access {
    keys: KeySet,
    public_health: bool,
    limiter: Option<Limiter>,
    low_priority_threshold: Option<f64>,
    open_on_loopback: bool,
    /// Dashboard logins.
    pub console: console::ConsoleSessions,
}

/// Who is looking at the dashboard (`Access::console`).
#[derive(Debug, Clone, PartialEq)]
pub enum Viewer {
    /// An admin (or anybody, on a gateway without keys): sees everything.
    Admin(Tenant),
    /// A valid key, but not an admin's: 403.
    NotAdmin,
    /// No credentials, or wrong ones: the login form (401 for data).
    Nobody,
}

impl Access {
    pub fn new(keys: KeySet, public_health: bool, rate_limit_rpm: u32) -> Self {
        Access {
            keys,
            public_health,
            limiter: (rate_limit_rpm > 0).then(|| Limiter::Local(RateLimiter::new(rate_limit_rpm))),
            low_priority_threshold: None,
            open_on_loopback: false,
            console: console::ConsoleSessions::default(),
        }
    }

    /// `from_config`, with the budgets in `--rate-limit-store` when one is given (connecting to
    /// it now: an unreachable store is an error at start, not at the first request).
    pub async fn open(config: &AccessConfig) -> Result<Self, String> {
        let mut access = Access::from_config(config)?;
        match (&config.rate_limit_store, config.rate_limit_rpm) {
            (Some(url), rpm) if rpm > 0 => {
                let shared = SharedLimiter::open(url, rpm).await?;
                tracing::info!("rate limits shared through the --rate-limit-store");
                access.limiter = Some(Limiter::Shared(shared));
            }
            (Some(_), _) => {
                tracing::warn!("--rate-limit-store is unused without --rate-limit-rpm");
            }
            (None, _) => {}
        }
        Ok(access)
    }

    /// The shared limiter, when the budgets are in a store.
    pub fn shared_limiter(&self) -> Option<&SharedLimiter> {
        match &self.limiter {
            Some(Limiter::Shared(shared)) => Some(shared),
            Some(Limiter::Local(_)) | None => None,
        }
    }

    /// The rules `config` asks for: `--api-keys`, `--admin-api-keys` and `--api-keys-file`
    /// together, `--public-health` and `--rate-limit-rpm`. An unreadable or empty key file is an
    /// error.
    pub fn from_config(config: &AccessConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (flag, list, admin) in [
            ("--api-keys", &config.api_keys, false),
            ("--admin-api-keys", &config.admin_api_keys, true),
        ] {
            for (i, key) in list.iter().enumerate() {
                key.check()
                    .map_err(|e| format!("{flag}: key {}: {e}", i + 1))?;
                keys.push(if admin {
                    KeyEntry::admin(key.clone())
                } else {
                    KeyEntry::user(key.clone())
                });
            }
        }
        if let Some(path) = &config.api_keys_file {
            keys.extend(read_key_file(path)?);
        }
        let mut access = Access::new(
            KeySet::new(&keys),
            config.public_health,
            config.rate_limit_rpm,
        );
        access.low_priority_threshold = config.quota_low_priority_threshold;
        access.open_on_loopback = config.dashboard_open_on_loopback;
        tracing::info!(
            api_keys = access.keys.len(),
            public_health = access.public_health,
            rate_limit_rpm = config.rate_limit_rpm,
            "access rules"
        );
        Ok(access)
    }

    /// The key file's budgets, by tenant id (`usage::Ledger` enforces them).
    pub fn file_budgets(
        &self,
    ) -> std::collections::HashMap<String, Vec<crate::usage::budget::Budget>> {
        self.keys.budgets().clone()
    }

    /// Whether any API key is configured.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Open: no keys and no rate limit, so nothing to check.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty() && self.limiter.is_none()
    }

    /// Decides one request: `authorization` is the raw header or metadata value, `peer` the
    /// client's address when known. `Ok` carries the tenant the request acts for (the anonymous
    /// one without keys, or on a route that needs none) and the quota to report, when
    /// rate-limited.
    pub async fn admit(
        &self,
        route: Route,
        protocol: Protocol,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Admitted, Refusal> {
        let needs_key = !self.keys.is_empty()
            && match route {
                Route::Api => true,
                Route::Health => !self.public_health,
                Route::Open => false,
            };
        let key = if needs_key {
            let refuse = |error| Refusal { error, quota: None };
            let presented = authorization
                .and_then(bearer_token)
                .ok_or_else(|| refuse(missing_key(protocol)))?;
            Some(
                self.keys
                    .find(presented)
                    .ok_or_else(|| refuse(wrong_key(protocol)))?,
            )
        } else {
            None
        };
        let tenant = key
            .and_then(|index| self.keys.tenant(index))
            .cloned()
            .unwrap_or_default();
        if route == Route::Api
            && let Some(index) = key
            && self.keys.is_low_priority(index)
            && let Some(error) = self.low_priority_refusal()
        {
            return Err(Refusal { error, quota: None });
        }
        let Some(limiter) = self.limiter.as_ref().filter(|_| route == Route::Api) else {
            return Ok(Admitted {
                tenant,
                quota: None,
            });
        };
        let who = match (key, peer) {
            (Some(index), _) => Identity::Key(index),
            (None, Some(ip)) => Identity::client(ip),
            (None, None) => Identity::Anonymous,
        };
        let quota = match limiter {
            Limiter::Local(local) => local.check(who, Instant::now()),
            Limiter::Shared(shared) => shared.check(&self.limit_id(who), who).await,
        };
        match quota.retry_after {
            None => Ok(Admitted {
                tenant,
                quota: Some(quota),
            }),
            Some(wait) => Err(Refusal {
                error: rate_limited(&quota, who, wait),
                quota: Some(quota),
            }),
        }
    }
}

impl Access {
    /// The refusal of a low-priority key while a usage window is above the threshold.
    fn low_priority_refusal(&self) -> Option<ChatError> {
        let threshold = self.low_priority_threshold?;
        let now = crate::chat::quota::unix_now();
        let window = crate::chat::quota::board().above(threshold, now)?;
        let wait = window.resets_in(now).max(1);
        Some(ChatError::RateLimited {
            message: format!(
                "This gateway's Claude usage window `{}` is {:.0}% used, above the {:.0}% \
                 reserved for normal-priority keys; this key has low priority. Please try again \
                 after the window resets, in {}.",
                window.window,
                window.utilization.unwrap_or(0.0) * 100.0,
                threshold * 100.0,
                openai_duration(std::time::Duration::from_secs(wait))
            ),
            retry_after: Some(wait),
        })
    }

    /// Who is looking at the dashboard: from the login cookie's `token`, an `authorization`
    /// header (an admin's key), or the client's address with `--dashboard-open-on-loopback`.
    pub fn console(
        &self,
        token: Option<&str>,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Viewer {
        if self.keys.is_empty() {
            return Viewer::Admin(Tenant::anonymous());
        }
        if let Some(tenant) = token.and_then(|t| self.console.tenant(t)) {
            return Viewer::Admin(tenant);
        }
        if let Some(presented) = authorization.and_then(bearer_token) {
            return self.viewer_of_key(presented);
        }
        if self.open_on_loopback && peer.is_some_and(|ip| ip.is_loopback()) {
            return Viewer::Admin(Tenant::new("dashboard-loopback", true).unwrap_or_default());
        }
        Viewer::Nobody
    }

    /// Who `key` is, for the dashboard.
    pub fn viewer_of_key(&self, key: &str) -> Viewer {
        match self.keys.find(key).and_then(|i| self.keys.tenant(i)) {
            Some(tenant) if tenant.is_admin() => Viewer::Admin(tenant.clone()),
            Some(_) => Viewer::NotAdmin,
            None => Viewer::Nobody,
        }
    }

    /// The name of `who`'s budget in the store: the same on every gateway.
    fn limit_id(&self, who: Identity) -> String {
        match who {
            Identity::Key(index) => self
                .keys
                .limit_id(index)
                .map_or_else(|| format!("key#{index}"), str::to_owned),
            Identity::Client(ip) => format!("ip:{ip}"),
            Identity::Anonymous => "anonymous".into(),
            Identity::Overflow => "overflow".into(),
        }
    }

    /// The tenant a request acts for when it names one in `forwarded` (the value of
    /// `x-gateway-tenant`, with `x-gateway-tenant-admin`): a façade calling for its own caller.
    /// Honoured only when `caller` is an admin or this gateway has no keys; from anyone else the
    /// metadata is ignored. A malformed tenant id is refused rather than ignored, so a façade's
    /// admin key never stands in for the tenant it meant to name.
    pub fn on_behalf_of(
        &self,
        caller: Tenant,
        forwarded: Option<&str>,
        forwarded_admin: Option<&str>,
    ) -> Result<Tenant, ChatError> {
        let Some(id) = forwarded else {
            return Ok(caller);
        };
        if !(caller.is_admin() || self.keys.is_empty()) {
            tracing::debug!(caller = %caller, "x-gateway-tenant from a non-admin key ignored");
            return Ok(caller);
        }
        let admin = forwarded_admin.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        Tenant::new(id.trim(), admin).ok_or_else(|| {
            ChatError::invalid(
                format!(
                    "The `{TENANT_METADATA}` metadata is not a tenant id (1 to {} ASCII \
                     letters, digits, `_`, `-`, `.` or `@`).",
                    crate::chat::tenant::MAX_TENANT_ID
                ),
                TENANT_METADATA,
            )
        })
    }
}

/// The key in `Bearer KEY` (the scheme in any case, as RFC 9110 has it).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn missing_key(protocol: Protocol) -> ChatError {
    let how = match protocol {
        Protocol::Http => {
            "in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)"
        }
        Protocol::Grpc => "in the `authorization` metadata (authorization: Bearer YOUR_KEY)",
    };
    ChatError::Unauthorized {
        message: format!(
            "You didn't provide an API key. This gateway needs one of its API keys, sent {how}. \
             Ask its operator for a key."
        ),
    }
}

fn wrong_key(protocol: Protocol) -> ChatError {
    let header = match protocol {
        Protocol::Http => "the Authorization header",
        Protocol::Grpc => "the `authorization` metadata",
    };
    ChatError::Unauthorized {
        message: format!(
            "Incorrect API key provided in {header}. It is not one of this gateway's API keys; \
             ask its operator for a valid key."
        ),
    }
}

fn rate_limited(quota: &Quota, who: Identity, wait: std::time::Duration) -> ChatError {
    let whose = match who {
        Identity::Key(_) => "per API key",
        Identity::Client(_) | Identity::Anonymous | Identity::Overflow => "per client",
    };
    ChatError::RateLimited {
        message: format!(
            "Rate limit reached for requests: this gateway allows {} requests per minute {whose}. \
             Please try again in {}.",
            quota.limit,
            openai_duration(wait)
        ),
        retry_after: Some(retry_after_secs(wait)),
    }
}

impl Quota {
    /// The `x-ratelimit-*` headers OpenAI sends, as (name, value) pairs.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("x-ratelimit-limit-requests", self.limit.to_string()),
            ("x-ratelimit-remaining-requests", self.remaining.to_string()),
            ("x-ratelimit-reset-requests", openai_duration(self.reset)),
        ]
    }
}

/// Adds `quota`'s `x-ratelimit-*` headers (HTTP headers, or gRPC response metadata).
pub fn write_quota(headers: &mut HeaderMap, quota: Option<&Quota>) {
    for (name, value) in quota.map(Quota::headers).into_iter().flatten() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Adds a tenant's `x-budget-*` headers (`Ledger::budget_headers`; HTTP headers, or gRPC
/// response metadata).
pub fn write_budgets(headers: &mut HeaderMap, budgets: Vec<(String, String)>) {
    for (name, value) in budgets {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            headers.insert(name, value);
        }
    }
}

/// The tonic interceptor of the `--upstream` façade: sends the worker's key on every call.
#[derive(Clone, Default)]
pub struct UpstreamKey(Option<AsciiMetadataValue>);

impl UpstreamKey {
    pub fn new(key: Option<&ApiKey>) -> Result<Self, String> {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Ok(UpstreamKey(None));
        };
        key.check()
            .map_err(|e| format!("--upstream-api-key: {e}"))?;
        let mut value: AsciiMetadataValue =
            MetadataValue::try_from(format!("Bearer {}", key.expose()))
                .map_err(|_| "--upstream-api-key is not a valid header value".to_string())?;
        value.set_sensitive(true);
        Ok(UpstreamKey(Some(value)))
    }
}

impl tonic::service::Interceptor for UpstreamKey {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests;
