//! `encrypted_content` of reasoning items: Claude's thinking, its signature and the model, sealed
//! with ChaCha20-Poly1305 under a server key, so a stateless client can send a reasoning item
//! back and the thinking is replayed natively, while the client can neither read nor alter it.
//! The key comes from `--reasoning-key-file` (64 hex digits; the same file on every instance
//! that must accept the others' items) or is drawn at random at start, in which case sealed items
//! are valid on this instance until it restarts. The text is `cgw1.` + base64url(nonce ‖
//! ciphertext ‖ tag); the prefix is also the associated data, so a later format cannot be
//! confused with this one.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

const PREFIX: &str = "cgw1.";
const KEY_LEN: usize = 32;

/// What a reasoning item's `encrypted_content` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedThinking {
    pub thinking: String,
    pub signature: String,
    /// The Claude model that wrote it (its signature is only good for that model).
    pub model: String,
}

/// The server key; cheap to clone.
#[derive(Clone)]
pub struct SealKey(Arc<LessSafeKey>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<SealKey, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "a reasoning key is {KEY_LEN} bytes; got {}",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| "the reasoning key was refused".to_string())?;
        Ok(SealKey(Arc::new(LessSafeKey::new(key))))
    }

    /// A fresh random key: items sealed with it are valid until this process ends.
    pub fn random() -> Result<SealKey, String> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "no system randomness for the reasoning key".to_string())?;
        SealKey::from_bytes(&bytes)
    }

    /// The key in `path`: 64 hex digits (`openssl rand -hex 32`), surrounding whitespace allowed.
    pub fn from_hex_file(path: &Path) -> Result<SealKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --reasoning-key-file {}: {e}", path.display()))?;
        let hex = text.trim();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .filter(|b| b.len() == KEY_LEN && hex.len() == 2 * KEY_LEN)
            .ok_or_else(|| {
                format!(
                    "--reasoning-key-file {} must hold 64 hex digits (32 bytes, e.g. from \
                     `openssl rand -hex 32`)",
                    path.display()
                )
            })?;
        SealKey::from_bytes(&bytes)
    }

    /// The sealed text, or `None` if the system has no randomness for a nonce.
    pub fn seal(&self, content: &SealedThinking) -> Option<String> {
        let mut data = serde_json::to_vec(content).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(PREFIX.as_bytes()),
                &mut data,
            )
            .ok()?;
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&data);
        Some(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    /// The content of `sealed`, if it was sealed with this key and not altered.
    pub fn open(&self, sealed: &str) -> Option<SealedThinking> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(PREFIX)?).ok()?;
        let (nonce, data) = raw.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(PREFIX.as_bytes()), &mut data)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn content() -> SealedThinking {
        SealedThinking {
            thinking: "Let me think about this.".into(),
            signature: "sig_fake_1".into(),
            model: "claude-sonnet-5-5".into(),
        }
    }

    #[test]
    fn seal_then_open_round_trips_and_hides_the_text() {
        let key = SealKey::random().unwrap();
        let sealed = key.seal(&content()).unwrap();
        assert!(sealed.starts_with("cgw1."), "{sealed}");
        assert!(!sealed.contains("think") && !sealed.contains("sig_fake"));
        assert_eq!(key.open(&sealed).unwrap(), content());
        // A fresh nonce each time: the same content never seals to the same text.
        assert_ne!(key.seal(&content()).unwrap(), sealed);
    }

    #[test]
    fn tampered_foreign_and_garbage_texts_do_not_open() {
        let key = SealKey::random().unwrap();
        let sealed = key.seal(&content()).unwrap();
        let body = sealed.strip_prefix(PREFIX).unwrap();
        // Every single flipped character of the body is refused.
        for i in 0..body.len() {
            let mut chars: Vec<char> = body.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let tampered = format!("{PREFIX}{}", chars.iter().collect::<String>());
            assert!(key.open(&tampered).is_none(), "flipped at {i}");
        }
        assert!(key.open(&sealed[..sealed.len() - 4]).is_none(), "truncated");
        let other = SealKey::random().unwrap();
        assert!(other.open(&sealed).is_none(), "another instance's key");
        for garbage in ["", "cgw1.", "cgw1.!!", "gAAAAABoOpenAI", "cgw2.AAAA"] {
            assert!(key.open(garbage).is_none(), "{garbage}");
        }
    }

    #[test]
    fn a_key_file_holds_64_hex_digits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        let a = SealKey::from_hex_file(&path).unwrap();
        let b = SealKey::from_hex_file(&path).unwrap();
        // The same file on two instances: each opens the other's items.
        assert_eq!(b.open(&a.seal(&content()).unwrap()).unwrap(), content());
        for bad in [
            "ab".repeat(31),
            "zz".repeat(32),
            "ab".repeat(33),
            String::new(),
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = SealKey::from_hex_file(&path).unwrap_err();
            assert!(err.contains("64 hex digits"), "{err}");
        }
        let err = SealKey::from_hex_file(&dir.path().join("missing")).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}
