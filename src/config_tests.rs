//! Unit tests of `config.rs`.

use super::*;

#[test]
fn defaults_listen_on_loopback() {
    let c = Config::try_parse_from(["claude-gateway"]).unwrap();
    assert_eq!(c.http_addr().to_string(), "127.0.0.1:8000");
    assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:50051");
    let c = Config::try_parse_from(["claude-gateway", "--port", "9000"]).unwrap();
    assert_eq!(c.http_addr().to_string(), "127.0.0.1:9000");
    let c = Config::try_parse_from(["claude-gateway", "--strict-params"]).unwrap();
    assert!(c.strict_params);
}

#[test]
fn the_access_flags_reach_the_access_rules_and_keys_stay_hidden() {
    let c = Config::try_parse_from([
        "claude-gateway",
        "--api-keys",
        "k1,k2",
        "--admin-api-keys",
        "k9",
        "--api-keys-file",
        "/etc/keys",
        "--public-health",
        "false",
        "--rate-limit-rpm",
        "5",
    ])
    .unwrap();
    assert!(!format!("{c:?}").contains("k1"), "keys in Debug");
    let a = c.access_config();
    assert_eq!(a.api_keys.len(), 2);
    assert_eq!(a.admin_api_keys[0].expose(), "k9");
    assert_eq!(a.api_keys_file, Some(PathBuf::from("/etc/keys")));
    assert!(!a.public_health);
    assert_eq!(a.rate_limit_rpm, 5);
    let defaults = Config::try_parse_from(["claude-gateway"])
        .unwrap()
        .access_config();
    assert!(defaults.api_keys.is_empty() && defaults.public_health);
}

#[test]
fn flags_may_follow_the_doctor_subcommand() {
    let c =
        Config::try_parse_args(["claude-gateway", "doctor", "--claude-bin", "/x/claude"]).unwrap();
    assert_eq!(c.command, Some(Command::Doctor));
    assert_eq!(c.claude_bin, PathBuf::from("/x/claude"));
    let c = Config::try_parse_args(["claude-gateway", "--claude-bin", "/y", "doctor"]).unwrap();
    assert_eq!(c.claude_bin, PathBuf::from("/y"));
    let c = Config::try_parse_args(["claude-gateway", "--port", "9000"]).unwrap();
    assert_eq!((c.command, c.http_addr().port()), (None, 9000));
}

#[test]
fn relative_cli_paths_become_absolute() {
    let c = Config::try_parse_from(["claude-gateway", "--claude-bin", "bin/claude"]).unwrap();
    assert!(c.engine_config().unwrap().claude_bin.is_absolute());
    let c = Config::try_parse_from(["claude-gateway"]).unwrap();
    assert_eq!(
        c.engine_config().unwrap().claude_bin,
        PathBuf::from("claude")
    );
}

#[test]
fn tls_files_come_in_pairs() {
    let c = Config::try_parse_from(["claude-gateway"]).unwrap();
    assert!(c.grpc_tls().is_none());
    let c = Config::try_parse_from([
        "claude-gateway",
        "--grpc-tls-cert",
        "c.pem",
        "--grpc-tls-key",
        "k.pem",
    ])
    .unwrap();
    assert_eq!(c.grpc_tls().unwrap().cert, PathBuf::from("c.pem"));
    for lone in [
        ["--grpc-tls-cert", "c.pem"],
        ["--grpc-tls-client-ca", "ca.pem"],
        ["--upstream-tls-key", "k.pem"],
    ] {
        let args = std::iter::once("claude-gateway").chain(lone);
        assert!(Config::try_parse_from(args).is_err(), "{lone:?}");
    }
}

#[test]
fn upstream_deadlines_follow_the_request_timeout() {
    let c = Config::try_parse_from(["claude-gateway", "--request-timeout-secs", "42"]).unwrap();
    let upstream = c.upstream_config("https://w:1");
    assert_eq!(upstream.deadlines.completion, Duration::from_secs(42));
    assert_eq!(upstream.deadlines.call, Duration::from_secs(10));
    assert_eq!(upstream.connect_timeout, Duration::from_secs(5));
}

#[test]
fn bad_model_map_is_a_startup_error() {
    let c = Config::try_parse_from(["claude-gateway", "--model-map", "nonsense"]).unwrap();
    assert!(c.engine_config().is_err());
}
