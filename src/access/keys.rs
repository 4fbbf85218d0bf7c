//! Gateway API keys: the secret type the configuration holds (it never prints itself), the key
//! file format (one key per line, `#` comments), and the key set that recognises a presented key
//! in constant time. Keys are kept only as SHA-256 digests, so every comparison is between two
//! 32-byte values whatever the keys' lengths, and every configured key is compared, with no early
//! exit, before the answer is known.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// A secret key from the command line or the environment. `Debug` and `Display` hide it, so a
/// logged configuration never shows one.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A key with whitespace inside cannot travel in an `Authorization: Bearer` header, nor can
    /// anything but ASCII. The error does not show the key.
    pub fn check(&self) -> Result<(), String> {
        if self.0.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("an API key cannot contain whitespace or control characters".into());
        }
        if !self.0.is_ascii() {
            return Err("an API key must be ASCII (it travels in an HTTP header)".into());
        }
        Ok(())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = std::convert::Infallible;

    /// Surrounding whitespace is dropped. Never fails: clap would print a refused value, and a
    /// malformed key is still a secret; `check` refuses it at start without showing it. An empty
    /// key is ignored by `KeySet` (an empty `GATEWAY_API_KEYS=` means no keys).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ApiKey(s.trim().to_string()))
    }
}

/// The keys in a key file: one per line; blank lines and `#` comments (whole-line or trailing)
/// are skipped. Errors name the line but never show the key.
pub fn parse_key_file(text: &str) -> Result<Vec<ApiKey>, String> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let key = ApiKey(line.to_string());
        key.check().map_err(|e| format!("line {}: {e}", i + 1))?;
        keys.push(key);
    }
    Ok(keys)
}

/// Reads `path` with `parse_key_file`. A file holding no key is an error: the operator asked
/// for keys, and starting an open gateway instead would be the wrong surprise.
pub fn read_key_file(path: &Path) -> Result<Vec<ApiKey>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --api-keys-file {shown}: {e}"))?;
    let keys = parse_key_file(&text).map_err(|e| format!("--api-keys-file {shown}: {e}"))?;
    if keys.is_empty() {
        return Err(format!("--api-keys-file {shown} holds no key"));
    }
    Ok(keys)
}

type KeyDigest = [u8; 32];

fn digest(key: &[u8]) -> KeyDigest {
    Sha256::digest(key).into()
}

/// The configured keys, as digests. A key's index (its place among the distinct keys) is its
/// identity for rate limiting; the key itself is not kept.
#[derive(Default)]
pub struct KeySet {
    digests: Vec<KeyDigest>,
}

impl KeySet {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a ApiKey>) -> Self {
        let mut digests: Vec<KeyDigest> = Vec::new();
        for key in keys.into_iter().filter(|k| !k.is_empty()) {
            let d = digest(key.expose().as_bytes());
            if !digests.contains(&d) {
                digests.push(d);
            }
        }
        KeySet { digests }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// The index of the configured key equal to `presented`, if any. Constant time in the
    /// presented key's content: it is hashed, and compared with every configured digest.
    pub fn find(&self, presented: &str) -> Option<usize> {
        let wanted = digest(presented.as_bytes());
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, d) in self.digests.iter().enumerate() {
            let equal = d.ct_eq(&wanted);
            found |= equal;
            index = u64::conditional_select(&index, &(i as u64), equal);
        }
        bool::from(found).then_some(index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<ApiKey> {
        list.iter().map(|k| k.parse().unwrap()).collect()
    }

    #[test]
    fn keys_never_print_themselves() {
        let key: ApiKey = "sk-secret".parse().unwrap();
        assert!(!format!("{key:?}").contains("secret"));
        assert!(" a b ".parse::<ApiKey>().unwrap().check().is_err());
        assert!("sk-é".parse::<ApiKey>().unwrap().check().is_err());
        assert!("sk-ok".parse::<ApiKey>().unwrap().check().is_ok());
        assert_eq!(" ab\n".parse::<ApiKey>().unwrap().expose(), "ab");
    }

    #[test]
    fn key_files_have_comments_and_blank_lines() {
        let parsed = parse_key_file("# team keys\n\nsk-one\n  sk-two   # ci\n#sk-off\n").unwrap();
        assert_eq!(parsed, keys(&["sk-one", "sk-two"]));
        let err = parse_key_file("sk-one\nsk two\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(!err.contains("two"), "the error shows the key: {err}");
    }

    #[test]
    fn an_empty_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "# nothing yet\n").unwrap();
        assert!(read_key_file(&path).unwrap_err().contains("holds no key"));
        assert!(read_key_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_set_finds_each_distinct_key() {
        let list = keys(&["k-a", "", "k-b", "k-a", "k-c"]);
        let set = KeySet::new(&list);
        assert_eq!(set.len(), 3);
        assert_eq!(set.find("k-a"), Some(0));
        assert_eq!(set.find("k-b"), Some(1));
        assert_eq!(set.find("k-c"), Some(2));
        assert_eq!(set.find("k-"), None);
        assert_eq!(set.find(""), None);
        assert!(KeySet::new(&keys(&[""])).is_empty());
    }
}
