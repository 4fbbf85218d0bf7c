//! Remote images, when the operator allows them (`--fetch-images`): each `http(s)` image URL of a
//! request is downloaded and replaced by a `data:` URL before validation, so the rest of the
//! gateway only ever sees inline images. Guarded against server-side request forgery: every
//! address a host resolves to must be public (no loopback, private, link-local, …), the
//! connection is pinned to the checked address, redirects are followed by hand and re-checked,
//! and size, time and type are limited.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;

use crate::chat::ChatError;
use crate::chat::types::{ChatRequest, ContentPart};

#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub enabled: bool,
    pub timeout: Duration,
    pub max_bytes: usize,
    /// Allow loopback and private addresses (for tests on one machine only).
    pub allow_private: bool,
}

const MAX_REDIRECTS: usize = 3;

/// Replaces every remote image URL of `req` by a data URL; a no-op when fetching is off (the
/// validator then refuses remote URLs with a clear 400).
pub async fn inline_remote_images(
    req: &mut ChatRequest,
    cfg: &FetchConfig,
) -> Result<(), ChatError> {
    if !cfg.enabled {
        return Ok(());
    }
    for (i, message) in req.messages.iter_mut().enumerate() {
        for (j, part) in message.content.iter_mut().enumerate() {
            if let ContentPart::ImageUrl { url, .. } = part
                && (url.starts_with("http://") || url.starts_with("https://"))
            {
                let param = format!("messages[{i}].content[{j}].image_url");
                *url = tokio::time::timeout(cfg.timeout, fetch(url, cfg, &param))
                    .await
                    .map_err(|_| {
                        image_error(
                            &param,
                            format!("fetching it took longer than {} s", cfg.timeout.as_secs()),
                        )
                    })??;
            }
        }
    }
    Ok(())
}

fn image_error(param: &str, why: String) -> ChatError {
    ChatError::invalid_with_code(
        format!("The image could not be used: {why}."),
        param,
        "invalid_image_url",
    )
}

async fn fetch(url: &str, cfg: &FetchConfig, param: &str) -> Result<String, ChatError> {
    let mut current =
        reqwest::Url::parse(url).map_err(|e| image_error(param, format!("bad URL ({e})")))?;
    for _ in 0..=MAX_REDIRECTS {
        let host = current
            .host_str()
            .ok_or_else(|| image_error(param, "the URL has no host".into()))?
            .to_string();
        let port = current.port_or_known_default().unwrap_or(443);
        let addr = checked_address(&host, port, cfg.allow_private, param).await?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addr)
            .no_proxy()
            .build()
            .map_err(|e| ChatError::internal(format!("image client: {e}")))?;
        let response = client
            .get(current.clone())
            .send()
            .await
            .map_err(|e| image_error(param, format!("the request failed ({e})")))?;
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
        let bytes = read_limited(response, cfg.max_bytes, param).await?;
        let media_type = sniff(&bytes)
            .ok_or_else(|| image_error(param, "it is not a PNG, JPEG, GIF or WebP image".into()))?;
        let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
        return Ok(format!("data:{media_type};base64,{data}"));
    }
    Err(image_error(
        param,
        format!("more than {MAX_REDIRECTS} redirects"),
    ))
}

/// The first address of `host`, refusing hosts with any non-public address.
async fn checked_address(
    host: &str,
    port: u16,
    allow_private: bool,
    param: &str,
) -> Result<SocketAddr, ChatError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| image_error(param, format!("`{host}` does not resolve ({e})")))?
        .collect();
    if addrs.is_empty() {
        return Err(image_error(param, format!("`{host}` has no address")));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(image_error(
            param,
            format!(
                "`{host}` resolves to {}, a private, loopback or reserved address",
                bad.ip()
            ),
        ));
    }
    Ok(addrs[0])
}

pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

async fn read_limited(
    response: reqwest::Response,
    max: usize,
    param: &str,
) -> Result<Vec<u8>, ChatError> {
    if response.content_length().is_some_and(|n| n as usize > max) {
        return Err(image_error(
            param,
            format!("it is larger than the {max}-byte limit"),
        ));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| image_error(param, format!("the download failed ({e})")))?;
        if body.len() + chunk.len() > max {
            return Err(image_error(
                param,
                format!("it is larger than the {max}-byte limit"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The image type from its first bytes; the server's content type is not trusted.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn image_types_are_sniffed() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"<html>"), None);
    }

    #[tokio::test]
    async fn loopback_hosts_are_refused_unless_allowed() {
        let err = checked_address("127.0.0.1", 80, false, "p")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(checked_address("127.0.0.1", 80, true, "p").await.is_ok());
    }
}
