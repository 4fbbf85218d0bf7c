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
//! Every admitted request acts for a `Tenant` (the key's, or the anonymous tenant without keys),
//! which the layers put into the request's extensions for the handlers. A `--upstream` façade
//! names the tenant it acts for in the `x-gateway-tenant` (and `x-gateway-tenant-admin`)
//! metadata; a worker honours that only from an admin key, or when it has no keys at all (an
//! open worker trusts its network), never from an ordinary key.

mod keys;
mod limiter;

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
pub use limiter::{Identity, Quota, RateLimiter, openai_duration, retry_after_secs};

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
}

/// The access rules of one gateway, shared by both protocols.
pub struct Access {
    keys: KeySet,
    public_health: bool,
    limiter: Option<RateLimiter>,
}

impl Access {
    pub fn new(keys: KeySet, public_health: bool, rate_limit_rpm: u32) -> Self {
        Access {
            keys,
            public_health,
            limiter: (rate_limit_rpm > 0).then(|| RateLimiter::new(rate_limit_rpm)),
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
        let access = Access::new(
            KeySet::new(&keys),
            config.public_health,
            config.rate_limit_rpm,
        );
        tracing::info!(
            api_keys = access.keys.len(),
            public_health = access.public_health,
            rate_limit_rpm = config.rate_limit_rpm,
            "access rules"
        );
        Ok(access)
    }

    /// Open: no keys and no rate limit, so nothing to check.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty() && self.limiter.is_none()
    }

    /// Decides one request: `authorization` is the raw header or metadata value, `peer` the
    /// client's address when known. `Ok` carries the tenant the request acts for (the anonymous
    /// one without keys, or on a route that needs none) and the quota to report, when
    /// rate-limited.
    pub fn admit(
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
        let quota = limiter.check(who, Instant::now());
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
mod tests {
    use super::*;

    fn access(keys: &[&str], public_health: bool, rpm: u32) -> Access {
        let keys: Vec<KeyEntry> = keys
            .iter()
            .map(|k| KeyEntry::user(k.parse().unwrap()))
            .collect();
        Access::new(KeySet::new(&keys), public_health, rpm)
    }

    #[test]
    fn routes_are_classified_by_path_prefix() {
        for (path, route) in [
            ("/v1/chat/completions", Route::Api),
            ("/v1/models/gpt-4o", Route::Api),
            ("/nowhere", Route::Api),
            ("/healthz", Route::Api),
            ("/health", Route::Health),
            ("/health/ready", Route::Health),
            ("/metrics", Route::Health),
            ("/", Route::Open),
            ("/openapi.json", Route::Open),
            ("/docs/", Route::Open),
            ("/redoc", Route::Open),
        ] {
            assert_eq!(Route::of_http_path(path), route, "{path}");
        }
        for (path, route) in [
            (
                "/claude_gateway.v1.ChatService/CreateChatCompletion",
                Route::Api,
            ),
            ("/grpc.health.v1.Health/Check", Route::Health),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                Route::Open,
            ),
        ] {
            assert_eq!(Route::of_grpc_path(path), route, "{path}");
        }
    }

    #[test]
    fn keys_are_checked_where_the_rules_say() {
        let a = access(&["k1", "k2"], true, 0);
        let http = Protocol::Http;
        let err = a.admit(Route::Api, http, None, None).unwrap_err().error;
        assert_eq!(err.code(), Some("invalid_api_key"));
        assert!(err.to_string().contains("didn't provide"), "{err}");
        let err = a
            .admit(Route::Api, http, Some("Basic k1"), None)
            .unwrap_err();
        assert!(err.error.to_string().contains("didn't provide"));
        let err = a
            .admit(Route::Api, http, Some("Bearer k3"), None)
            .unwrap_err();
        assert!(err.error.to_string().starts_with("Incorrect API key"));
        assert!(!err.error.to_string().contains("k3"));
        assert!(a.admit(Route::Api, http, Some("Bearer k2"), None).is_ok());
        assert!(a.admit(Route::Api, http, Some("bearer  k1 "), None).is_ok());
        assert!(a.admit(Route::Health, http, None, None).is_ok());
        assert!(a.admit(Route::Open, http, None, None).is_ok());
        let closed = access(&["k1"], false, 0);
        assert!(closed.admit(Route::Health, http, None, None).is_err());
        assert!(closed.admit(Route::Open, http, None, None).is_ok());
        let open = access(&[], false, 0);
        assert!(open.is_open());
        let admitted = open.admit(Route::Api, http, None, None).unwrap();
        assert!(admitted.quota.is_none());
        assert_eq!(admitted.tenant, Tenant::anonymous());
    }

    #[test]
    fn the_rate_limit_is_per_key_or_per_client() {
        let a = access(&["k1", "k2"], true, 2);
        let call = |auth| a.admit(Route::Api, Protocol::Grpc, Some(auth), None);
        assert_eq!(call("Bearer k1").unwrap().quota.unwrap().remaining, 1);
        assert_eq!(call("Bearer k1").unwrap().quota.unwrap().remaining, 0);
        let refusal = call("Bearer k1").unwrap_err();
        assert_eq!(refusal.error.code(), Some("rate_limit_exceeded"));
        assert!(matches!(
            refusal.error,
            ChatError::RateLimited {
                retry_after: Some(30),
                ..
            }
        ));
        assert_eq!(refusal.quota.unwrap().remaining, 0);
        assert!(call("Bearer k2").is_ok());
        // Health is never counted.
        let health = a.admit(Route::Health, Protocol::Grpc, None, None).unwrap();
        assert!(health.quota.is_none());

        let open = access(&[], true, 1);
        let ip = |s: &str| Some(s.parse().unwrap());
        assert!(
            open.admit(Route::Api, Protocol::Http, None, ip("10.0.0.1"))
                .is_ok()
        );
        assert!(
            open.admit(Route::Api, Protocol::Http, None, ip("10.0.0.1"))
                .is_err()
        );
        assert!(
            open.admit(Route::Api, Protocol::Http, None, ip("10.0.0.2"))
                .is_ok()
        );
    }

    #[test]
    fn the_configuration_builds_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# ops\nk3 name=ops\n").unwrap();
        let keys = |list: &[&str]| list.iter().map(|k| k.parse().unwrap()).collect();
        let config = AccessConfig {
            api_keys: keys(&["k1", "k2"]),
            admin_api_keys: keys(&["k9"]),
            api_keys_file: Some(file),
            public_health: false,
            rate_limit_rpm: 5,
        };
        let a = Access::from_config(&config).unwrap();
        assert_eq!(a.keys.len(), 4);
        assert!(!a.public_health);
        let auth = Some("Bearer k3");
        let admitted = a.admit(Route::Api, Protocol::Http, auth, None).unwrap();
        assert_eq!(admitted.quota.unwrap().limit, 5);
        assert_eq!(admitted.tenant, Tenant::new("ops", false).unwrap());
        let admin = a.admit(Route::Api, Protocol::Http, Some("Bearer k9"), None);
        assert!(admin.unwrap().tenant.is_admin());
        let user = a.admit(Route::Api, Protocol::Http, Some("Bearer k1"), None);
        assert!(!user.unwrap().tenant.is_admin());

        let open = AccessConfig {
            public_health: true,
            ..AccessConfig::default()
        };
        let a = Access::from_config(&open).unwrap();
        assert!(a.is_open() && a.public_health);
        let missing = AccessConfig {
            api_keys_file: Some("/nonexistent".into()),
            ..AccessConfig::default()
        };
        assert!(Access::from_config(&missing).is_err());
        let bad = AccessConfig {
            api_keys: keys(&["ok", "no good"]),
            ..AccessConfig::default()
        };
        let Err(err) = Access::from_config(&bad) else {
            panic!("a key with a space was taken")
        };
        assert!(
            err.starts_with("--api-keys: key 2:") && !err.contains("good"),
            "{err}"
        );
    }

    #[test]
    fn quota_headers_are_openai_s() {
        let q = Quota {
            limit: 3,
            remaining: 1,
            reset: std::time::Duration::from_millis(40_000),
            retry_after: None,
        };
        let headers = q.headers();
        assert_eq!(headers[0], ("x-ratelimit-limit-requests", "3".into()));
        assert_eq!(headers[1], ("x-ratelimit-remaining-requests", "1".into()));
        assert_eq!(headers[2], ("x-ratelimit-reset-requests", "40s".into()));
    }

    #[test]
    fn only_admins_and_open_gateways_act_on_behalf_of_a_tenant() {
        let keyed = Access::new(
            KeySet::new(&[
                KeyEntry::user("u".parse().unwrap()),
                KeyEntry::admin("a".parse().unwrap()),
            ]),
            true,
            0,
        );
        let tenant = |key: &str| {
            keyed
                .admit(
                    Route::Api,
                    Protocol::Grpc,
                    Some(&format!("Bearer {key}")),
                    None,
                )
                .unwrap()
                .tenant
        };
        let (user, admin) = (tenant("u"), tenant("a"));
        // An ordinary key cannot name another tenant, not even an admin one.
        let ignored = keyed.on_behalf_of(user.clone(), Some("alice"), Some("true"));
        assert_eq!(ignored.unwrap(), user);
        let alice = keyed.on_behalf_of(admin.clone(), Some("alice"), None);
        assert_eq!(alice.unwrap(), Tenant::new("alice", false).unwrap());
        let root = keyed.on_behalf_of(admin.clone(), Some("root"), Some("true"));
        assert!(root.unwrap().is_admin());
        assert_eq!(
            keyed.on_behalf_of(admin.clone(), None, None).unwrap(),
            admin
        );
        let bad = keyed.on_behalf_of(admin, Some("a b"), None).unwrap_err();
        assert_eq!(bad.param(), Some(TENANT_METADATA));
        let open = access(&[], true, 0);
        let anonymous = Tenant::anonymous();
        let named = open.on_behalf_of(anonymous.clone(), Some("bob"), Some("false"));
        assert_eq!(named.unwrap(), Tenant::new("bob", false).unwrap());
        assert_eq!(
            open.on_behalf_of(anonymous.clone(), None, None).unwrap(),
            anonymous
        );
    }

    #[test]
    fn the_upstream_key_goes_in_the_authorization_metadata() {
        use tonic::service::Interceptor;
        let key: ApiKey = "wk".parse().unwrap();
        let mut with = UpstreamKey::new(Some(&key)).unwrap();
        let request = with.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer wk"
        );
        let mut without = UpstreamKey::new(None).unwrap();
        let request = without.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }
}
