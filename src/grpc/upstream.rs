//! How the façade reaches its `--upstream` worker: the URL rules (an `https://` URL is TLS, and
//! a key is never sent in clear text to a host off this machine unless the operator says so
//! with `--upstream-insecure`), the channel with its connect timeout, and `Deadline`, which
//! bounds every call. A deadline travels as `grpc-timeout`, so the worker stops the work too,
//! and is enforced here as well: a worker that accepts the connection and never answers (not
//! even the TLS handshake) costs the client a 504 at the deadline, not a hang.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::transport::{Endpoint, Uri};
use tonic::{Request, Status};

use crate::access::{ApiKey, TENANT_ADMIN_METADATA, TENANT_METADATA};
use crate::chat::Tenant;

use super::tls::{ClientTlsFiles, chain};

/// Between HTTP/2 pings on an idle connection, and how long an answer may take.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Everything the configuration says about the worker.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub url: String,
    /// The name the worker's TLS certificate is checked against when `url` names an address
    /// the façade resolved (a DNS name's answer); `None`: the URL's host.
    pub server_name: Option<String>,
    pub api_key: Option<ApiKey>,
    pub tls: ClientTlsFiles,
    /// Allows sending the key over plain `http://` to a host that is not loopback.
    pub insecure: bool,
    /// TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    pub deadlines: Deadlines,
}

/// How long each kind of call to the worker may take.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Models, sessions, health.
    pub call: Duration,
    /// A completion, streamed or not, from the request to its last byte.
    pub completion: Duration,
}

/// Checks the URL against the TLS and key settings and builds the (lazy) channel.
pub fn endpoint(config: &UpstreamConfig) -> Result<Endpoint, String> {
    let UpstreamConfig {
        url,
        server_name,
        api_key,
        tls,
        insecure,
        connect_timeout,
        deadlines: _,
    } = config;
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid --upstream `{url}`: {e}"))?;
    let host = uri.host().unwrap_or_default();
    let has_key = api_key.as_ref().is_some_and(|k| !k.is_empty());
    let tls_config = match uri.scheme_str() {
        Some("https") => Some(match server_name {
            Some(name) => super::tls::client_config(tls, *connect_timeout)?.domain_name(name),
            None => super::tls::client_config(tls, *connect_timeout)?,
        }),
        Some("http") if !tls.is_empty() => {
            return Err(format!(
                "--upstream-ca and --upstream-tls-cert need an https:// --upstream, not `{url}`"
            ));
        }
        Some("http") if has_key && !insecure && !is_loopback(host) => {
            return Err(format!(
                "refusing to send --upstream-api-key in clear text to `{host}`: use an \
                 https:// --upstream (the worker serves TLS with --grpc-tls-cert), or pass \
                 --upstream-insecure if the network between them is trusted"
            ));
        }
        Some("http") => None,
        _ => {
            return Err(format!(
                "invalid --upstream `{url}`: expected http://HOST:PORT or https://HOST:PORT"
            ));
        }
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| format!("invalid --upstream `{url}`: {e}"))?
        .connect_timeout(*connect_timeout)
        .tcp_nodelay(true)
        // A worker that vanished without closing the connection (its machine gone) is noticed
        // within seconds, by the watches that stay open on it too.
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE)
        .keep_alive_while_idle(true);
    if let Some(tls_config) = tls_config {
        endpoint = endpoint
            .tls_config(tls_config)
            .map_err(|e| format!("--upstream TLS settings: {}", chain(&e)))?;
    }
    Ok(endpoint)
}

/// `localhost`, 127.0.0.0/8 and ::1 (bracketed in a URL): traffic that never leaves the
/// machine.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
}

/// One call's deadline, counted from when the call began.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    pub fn after(limit: Duration) -> Self {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }

    /// Stamps the time left as `grpc-timeout`, so the worker gives up when the façade does.
    pub fn stamp<T>(self, request: &mut Request<T>) {
        let left = self.at.saturating_duration_since(Instant::now());
        request.set_timeout(left.max(Duration::from_millis(1)));
    }

    /// A request carrying `message` and this deadline.
    pub fn request<T>(self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        self.stamp(&mut request);
        request
    }

    /// Runs `call` until the deadline; past it, `DEADLINE_EXCEEDED` (a 504).
    pub async fn run<T>(self, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
        match tokio::time::timeout_at(self.at, call).await {
            Ok(Err(status)) if timed_out(&status) => Err(self.expired()),
            Ok(result) => result,
            Err(_) => Err(self.expired()),
        }
    }

    /// The rest of a stream, cut at the deadline with a final `DEADLINE_EXCEEDED`.
    pub fn bound<S, T>(self, stream: S) -> impl Stream<Item = Result<T, Status>> + Send + 'static
    where
        S: Stream<Item = Result<T, Status>> + Send + 'static,
        T: Send + 'static,
    {
        async_stream::stream! {
            let sleep = tokio::time::sleep_until(self.at);
            tokio::pin!(sleep);
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    item = stream.next() => match item {
                        Some(Err(status)) if timed_out(&status) => {
                            yield Err(self.expired());
                            break;
                        }
                        Some(item) => yield item,
                        None => break,
                    },
                    () = &mut sleep => {
                        yield Err(self.expired());
                        break;
                    }
                }
            }
        }
    }

    fn expired(self) -> Status {
        Status::deadline_exceeded(format!(
            "The upstream gateway did not finish this call within its {} s deadline.",
            self.limit.as_secs_f64()
        ))
    }
}

/// tonic's own enforcement of `grpc-timeout` on this side ends a call with CANCELLED
/// ("Timeout expired"); it is the same deadline.
fn timed_out(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `request` as a call made for `tenant`: the worker acts for it when the façade's key is one of
/// its admin keys (or it has no keys), see `access::Access::on_behalf_of`.
pub fn for_tenant<T>(mut request: Request<T>, tenant: &Tenant) -> Request<T> {
    // Tenant ids are checked ASCII, so both always parse.
    if let Ok(id) = tenant.id().parse() {
        request.metadata_mut().insert(TENANT_METADATA, id);
    }
    let admin = if tenant.is_admin() { "true" } else { "false" };
    request.metadata_mut().insert(
        TENANT_ADMIN_METADATA,
        tonic::metadata::MetadataValue::from_static(admin),
    );
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, key: Option<&str>) -> UpstreamConfig {
        UpstreamConfig {
            url: url.into(),
            server_name: None,
            api_key: key.map(|k| k.parse().unwrap()),
            tls: ClientTlsFiles::default(),
            insecure: false,
            connect_timeout: Duration::from_secs(1),
            deadlines: Deadlines {
                call: Duration::from_secs(1),
                completion: Duration::from_secs(1),
            },
        }
    }

    #[test]
    fn a_key_goes_in_clear_text_only_to_loopback_or_when_allowed() {
        for url in [
            "http://127.0.0.1:50051",
            "http://127.9.9.9:50051",
            "http://localhost:50051",
            "http://[::1]:50051",
        ] {
            assert!(endpoint(&config(url, Some("k"))).is_ok(), "{url}");
        }
        for url in [
            "http://10.0.0.7:50051",
            "http://worker.internal:50051",
            "http://[fd00::1]:50051",
            "http://0.0.0.0:50051",
        ] {
            let err = endpoint(&config(url, Some("k"))).unwrap_err();
            assert!(err.contains("--upstream-insecure"), "{url}: {err}");
            // No key, nothing secret to protect; an explicit opt-in allows it.
            assert!(endpoint(&config(url, None)).is_ok(), "{url}");
            let allowed = UpstreamConfig {
                insecure: true,
                ..config(url, Some("k"))
            };
            assert!(endpoint(&allowed).is_ok(), "{url}");
        }
        // https is TLS whoever the host is.
        assert!(endpoint(&config("https://worker.internal:50051", Some("k"))).is_ok());
    }

    #[test]
    fn tls_files_need_https_and_urls_need_a_known_scheme() {
        let with_ca = UpstreamConfig {
            tls: ClientTlsFiles {
                ca: Some("/nonexistent/ca.pem".into()),
                identity: None,
            },
            ..config("http://127.0.0.1:50051", None)
        };
        assert!(endpoint(&with_ca).unwrap_err().contains("need an https://"));
        let err = endpoint(&config("ftp://127.0.0.1:1", None)).unwrap_err();
        assert!(err.contains("expected http://HOST:PORT"), "{err}");
        assert!(endpoint(&config("127.0.0.1:50051", None)).is_err());
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_is_deadline_exceeded() {
        let deadline = Deadline::after(Duration::from_millis(50));
        let mut request = deadline.request(());
        assert!(request.metadata_mut().get("grpc-timeout").is_some());
        let started = Instant::now();
        let status = deadline
            .run(std::future::pending::<Result<(), Status>>())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("0.05 s deadline"), "{status:?}");
        assert!(started.elapsed() < Duration::from_secs(2));

        let deadline = Deadline::after(Duration::from_millis(50));
        let items: Vec<_> = deadline
            .bound(futures::stream::iter([Ok(1)]).chain(futures::stream::pending()))
            .collect()
            .await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().ok(), Some(&1));
        assert_eq!(
            items[1].as_ref().map_err(Status::code).unwrap_err(),
            tonic::Code::DeadlineExceeded
        );
    }
}
