//! TLS for both ends of gRPC, from PEM files named in the configuration: the server's
//! certificate and key, with an optional client CA that turns on mutual TLS
//! (`--grpc-tls-*`), and the `--upstream` client's trust roots and optional client certificate
//! (`--upstream-ca`, `--upstream-tls-*`). Files are read and checked once, at startup, so a
//! wrong path or a key that does not match its certificate stops the process with a message
//! naming the flag, instead of failing each handshake later. rustls with the ring provider
//! does the work (tonic's `tls-ring`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig};

/// A client that opens a connection and never finishes its handshake must not hold a task on
/// the server forever.
const SERVER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The gRPC server's certificate, and the CA its clients' certificates must be signed by.
#[derive(Debug, Clone)]
pub struct ServerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With it, a client without a certificate signed by this CA is refused (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// What the `--upstream` client trusts and presents.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsFiles {
    /// The CA of the worker's certificate; without it, the public web PKI roots.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key, for a worker that asks for one.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTlsFiles {
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.identity.is_none()
    }
}

/// Reads and checks the server's files.
pub fn server_config(files: &ServerTlsFiles) -> Result<ServerTlsConfig, String> {
    let ServerTlsFiles {
        cert,
        key,
        client_ca,
    } = files;
    let identity = Identity::from_pem(
        read_pem(cert, "--grpc-tls-cert")?,
        read_pem(key, "--grpc-tls-key")?,
    );
    let mut config = ServerTlsConfig::new()
        .identity(identity)
        .timeout(SERVER_HANDSHAKE_TIMEOUT);
    if let Some(ca) = client_ca {
        config =
            config.client_ca_root(Certificate::from_pem(read_pem(ca, "--grpc-tls-client-ca")?));
    }
    // tonic parses the PEM only when a server takes the configuration: do it now, once.
    Server::builder().tls_config(config.clone()).map_err(|e| {
        format!(
            "--grpc-tls-cert/--grpc-tls-key ({}, {}): {}",
            cert.display(),
            key.display(),
            chain(&e)
        )
    })?;
    Ok(config)
}

/// Reads the client's files; the handshake (connect included) is bounded by `timeout`.
pub fn client_config(files: &ClientTlsFiles, timeout: Duration) -> Result<ClientTlsConfig, String> {
    let ClientTlsFiles { ca, identity } = files;
    let mut config = ClientTlsConfig::new().timeout(timeout);
    config = match ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read_pem(ca, "--upstream-ca")?)),
        None => config.with_webpki_roots(),
    };
    if let Some((cert, key)) = identity {
        config = config.identity(Identity::from_pem(
            read_pem(cert, "--upstream-tls-cert")?,
            read_pem(key, "--upstream-tls-key")?,
        ));
    }
    Ok(config)
}

/// A PEM file's bytes; an unreadable file or one without a PEM block names its flag.
fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("{flag}: cannot read {}: {e}", path.display()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!(
            "{flag}: {} is not a PEM file (no `-----BEGIN` line)",
            path.display()
        ));
    }
    Ok(bytes)
}

/// An error with its causes: tonic's own message ("transport error") says little alone.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_non_pem_file_names_its_flag() {
        let files = ServerTlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            client_ca: None,
        };
        let err = server_config(&files).unwrap_err();
        assert!(err.starts_with("--grpc-tls-cert: cannot read"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let files = ClientTlsFiles {
            ca: Some(junk),
            identity: None,
        };
        let err = client_config(&files, Duration::from_secs(1)).unwrap_err();
        assert!(
            err.contains("--upstream-ca") && err.contains("not a PEM file"),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_that_does_not_parse_is_refused_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let files = ServerTlsFiles {
            cert,
            key,
            client_ca: None,
        };
        let err = server_config(&files).unwrap_err();
        assert!(err.starts_with("--grpc-tls-cert/--grpc-tls-key"), "{err}");
    }
}
