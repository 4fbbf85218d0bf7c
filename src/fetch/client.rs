//! One image download over the request's client. The client resolves names through
//! `CheckingResolver`, which refuses a name if any of its addresses is not public and hands
//! the connector exactly the addresses it checked (no second lookup a rebinding DNS server could
//! answer differently). Literal-address URLs skip resolvers, so they are checked here; redirects
//! are followed by hand, each hop re-checked, on the same client.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address::is_public;
use crate::chat::ChatError;
use crate::chat::validate::Block;

const MAX_REDIRECTS: usize = 3;

type BoxError = Box<dyn StdError + Send + Sync>;

/// A name or address a download must not reach, with the reason for the client.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

/// Resolves with the system resolver and refuses names with any non-public address.
struct CheckingResolver {
    allow_private: bool,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| refused(format!("`{host}` does not resolve ({e})")))?
                .collect();
            if addrs.is_empty() {
                return Err(refused(format!("`{host}` has no address")));
            }
            if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(refused(format!(
                    "`{host}` resolves to {}, a private, loopback or reserved address",
                    bad.ip()
                )));
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn refused(why: String) -> BoxError {
    Box::new(Refused(why))
}

/// What one request's downloads share: the client and the byte budget.
pub struct Downloader {
    client: reqwest::Client,
    allow_private: bool,
    /// Largest image, in bytes.
    pub max_bytes: usize,
    /// Largest sum of all the request's images, and what has been received so far.
    pub max_total_bytes: usize,
    pub received: AtomicUsize,
}

impl Downloader {
    pub fn new(
        allow_private: bool,
        max_bytes: usize,
        max_total_bytes: usize,
    ) -> Result<Self, ChatError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckingResolver { allow_private }))
            .no_proxy()
            .build()
            .map_err(|e| ChatError::internal(format!("image client: {e}")))?;
        Ok(Downloader {
            client,
            allow_private,
            max_bytes,
            max_total_bytes,
            received: AtomicUsize::new(0),
        })
    }

    /// The image at `url` as a base64 image block.
    pub async fn image(&self, url: &str, param: &str) -> Result<Block, ChatError> {
        let mut current =
            reqwest::Url::parse(url).map_err(|e| image_error(param, format!("bad URL ({e})")))?;
        for _ in 0..=MAX_REDIRECTS {
            self.check_url(&current, param)?;
            let response = self
                .client
                .get(current.clone())
                .send()
                .await
                .map_err(|e| image_error(param, request_failure(&e)))?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| image_error(param, "a redirect without a location".into()))?;
                current = current
                    .join(location)
                    .map_err(|e| image_error(param, format!("a bad redirect ({e})")))?;
                continue;
            }
            if !response.status().is_success() {
                return Err(image_error(
                    param,
                    format!("the server answered {}", response.status()),
                ));
            }
            let bytes = self.read_limited(response, param).await?;
            let media_type = sniff(&bytes).ok_or_else(|| {
                image_error(param, "it is not a PNG, JPEG, GIF or WebP image".into())
            })?;
            return Ok(Block::Image {
                media_type: media_type.to_string(),
                data: base64::engine::general_purpose::STANDARD.encode(&bytes),
            });
        }
        Err(image_error(
            param,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }

    /// An `http(s)` URL whose literal address, if it has one, is public. Names are checked by
    /// the resolver when the connection is made.
    fn check_url(&self, url: &reqwest::Url, param: &str) -> Result<(), ChatError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(image_error(
                param,
                format!("`{}` URLs cannot be fetched", url.scheme()),
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| image_error(param, "the URL has no host".into()))?;
        // IPv6 literals keep their brackets in `host_str`.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = literal.parse::<std::net::IpAddr>() else {
            return Ok(());
        };
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(image_error(
                param,
                format!("`{ip}` is a private, loopback or reserved address"),
            ))
        }
    }

    /// The body, at most `max_bytes`, each chunk counted against the request's total as it
    /// arrives (a size the server announces is refused up front when it cannot fit).
    async fn read_limited(
        &self,
        response: reqwest::Response,
        param: &str,
    ) -> Result<Vec<u8>, ChatError> {
        let max = self.max_bytes;
        let too_large = || image_error(param, format!("it is larger than the {max}-byte limit"));
        if let Some(announced) = response.content_length() {
            let announced = usize::try_from(announced).unwrap_or(usize::MAX);
            if announced > max {
                return Err(too_large());
            }
            let so_far = self.received.load(Ordering::Relaxed);
            if so_far.saturating_add(announced) > self.max_total_bytes {
                return Err(self.over_budget(param));
            }
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| image_error(param, format!("the download failed ({e})")))?;
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            let total = self
                .received
                .fetch_add(chunk.len(), Ordering::Relaxed)
                .saturating_add(chunk.len());
            if total > self.max_total_bytes {
                return Err(self.over_budget(param));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn over_budget(&self, param: &str) -> ChatError {
        ChatError::invalid_with_code(
            format!(
                "The request's remote images add up to more than {} bytes, this gateway's limit \
                 (--fetch-images-max-total-bytes).",
                self.max_total_bytes
            ),
            param,
            super::BUDGET_CODE,
        )
    }
}

/// Why a request failed, in words: a refusal by the resolver is named as such.
fn request_failure(err: &reqwest::Error) -> String {
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(inner) = source {
        if let Some(refused) = inner.downcast_ref::<Refused>() {
            return refused.0.clone();
        }
        source = inner.source();
    }
    format!("the request failed ({err})")
}

pub fn image_error(param: &str, why: String) -> ChatError {
    ChatError::invalid_with_code(
        format!("The image could not be used: {why}."),
        param,
        "invalid_image_url",
    )
}

/// The image type from its first bytes; the server's content type is not trusted.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.get(..4) == Some(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_are_sniffed() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"RIFF"), None);
        assert_eq!(sniff(b"<html>"), None);
    }

    #[tokio::test]
    async fn names_with_private_addresses_are_refused_unless_allowed() {
        let name = || "localhost".parse::<Name>().unwrap();
        let err = CheckingResolver {
            allow_private: false,
        }
        .resolve(name())
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains("loopback"), "{err}");
        let addrs: Vec<SocketAddr> = CheckingResolver {
            allow_private: true,
        }
        .resolve(name())
        .await
        .unwrap()
        .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn literal_addresses_are_checked_before_connecting() {
        let d = Downloader::new(false, 10, 10).unwrap();
        for url in [
            "http://127.0.0.1/x.png",
            "http://[::ffff:10.0.0.1]/x.png",
            "http://[64:ff9b::a9fe:a9fe]/latest",
            "ftp://example.com/x.png",
        ] {
            let err = d.check_url(&url.parse().unwrap(), "p").unwrap_err();
            assert_eq!(err.code(), Some("invalid_image_url"), "{url}");
        }
        assert!(
            d.check_url(&"https://1.1.1.1/x.png".parse().unwrap(), "p")
                .is_ok()
        );
    }
}
