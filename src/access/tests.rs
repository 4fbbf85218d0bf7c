//! Unit tests of `mod.rs`.

use super::*;

/// `admit` for the in-memory limiter, which never waits.
trait AdmitNow {
    fn admit_now(
        &self,
        route: Route,
        protocol: Protocol,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Admitted, Refusal>;
}

impl AdmitNow for Access {
    fn admit_now(
        &self,
        route: Route,
        protocol: Protocol,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Admitted, Refusal> {
        futures::executor::block_on(self.admit(route, protocol, authorization, peer))
    }
}

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
    let err = a.admit_now(Route::Api, http, None, None).unwrap_err().error;
    assert_eq!(err.code(), Some("invalid_api_key"));
    assert!(err.to_string().contains("didn't provide"), "{err}");
    let err = a
        .admit_now(Route::Api, http, Some("Basic k1"), None)
        .unwrap_err();
    assert!(err.error.to_string().contains("didn't provide"));
    let err = a
        .admit_now(Route::Api, http, Some("Bearer k3"), None)
        .unwrap_err();
    assert!(err.error.to_string().starts_with("Incorrect API key"));
    assert!(!err.error.to_string().contains("k3"));
    assert!(
        a.admit_now(Route::Api, http, Some("Bearer k2"), None)
            .is_ok()
    );
    assert!(
        a.admit_now(Route::Api, http, Some("bearer  k1 "), None)
            .is_ok()
    );
    assert!(a.admit_now(Route::Health, http, None, None).is_ok());
    assert!(a.admit_now(Route::Open, http, None, None).is_ok());
    let closed = access(&["k1"], false, 0);
    assert!(closed.admit_now(Route::Health, http, None, None).is_err());
    assert!(closed.admit_now(Route::Open, http, None, None).is_ok());
    let open = access(&[], false, 0);
    assert!(open.is_open());
    let admitted = open.admit_now(Route::Api, http, None, None).unwrap();
    assert!(admitted.quota.is_none());
    assert_eq!(admitted.tenant, Tenant::anonymous());
}

#[test]
fn the_rate_limit_is_per_key_or_per_client() {
    let a = access(&["k1", "k2"], true, 2);
    let call = |auth| a.admit_now(Route::Api, Protocol::Grpc, Some(auth), None);
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
    let health = a
        .admit_now(Route::Health, Protocol::Grpc, None, None)
        .unwrap();
    assert!(health.quota.is_none());

    let open = access(&[], true, 1);
    let ip = |s: &str| Some(s.parse().unwrap());
    assert!(
        open.admit_now(Route::Api, Protocol::Http, None, ip("10.0.0.1"))
            .is_ok()
    );
    assert!(
        open.admit_now(Route::Api, Protocol::Http, None, ip("10.0.0.1"))
            .is_err()
    );
    assert!(
        open.admit_now(Route::Api, Protocol::Http, None, ip("10.0.0.2"))
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
        rate_limit_store: None,
        ..AccessConfig::default()
    };
    let a = Access::from_config(&config).unwrap();
    assert_eq!(a.keys.len(), 4);
    assert!(!a.public_health);
    let auth = Some("Bearer k3");
    let admitted = a.admit_now(Route::Api, Protocol::Http, auth, None).unwrap();
    assert_eq!(admitted.quota.unwrap().limit, 5);
    assert_eq!(admitted.tenant, Tenant::new("ops", false).unwrap());
    let admin = a.admit_now(Route::Api, Protocol::Http, Some("Bearer k9"), None);
    assert!(admin.unwrap().tenant.is_admin());
    let user = a.admit_now(Route::Api, Protocol::Http, Some("Bearer k1"), None);
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
            .admit_now(
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
