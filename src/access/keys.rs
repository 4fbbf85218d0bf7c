//! Gateway API keys: the secret type the configuration holds (it never prints itself), the key
//! file format, and the key set that recognises a presented key in constant time and names the
//! tenant it belongs to. Keys are kept only as SHA-256 digests, so every comparison is between two
//! 32-byte values whatever the keys' lengths, and every configured key is compared, with no early
//! exit, before the answer is known.
//!
//! A key file holds one key per line, `#` comments, and optional fields after the key (keys
//! contain no whitespace): `KEY role=admin name=alice`. `role` is `user` (the default) or `admin`
//! (sees every tenant's sessions); `name` is the tenant id the key acts for. Without a name the
//! tenant id is `key-` and 16 hex digits of a SHA-256 digest of the key (domain-separated from the
//! lookup digest): stable across restarts, and not the key. Two keys with one name are one tenant
//! (rotate a key by listing the new one under the old one's name). Budgets of the usage ledger
//! follow as `budget.<requests|tokens|usd>.<day|month>=LIMIT` fields (`usage::budget`); they
//! belong to the key's tenant. `priority=low` marks a key whose requests are refused first when
//! the Claude account's usage window runs high (`--quota-low-priority-threshold`);
//! `priority=normal` is the default.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::chat::Tenant;
use crate::chat::tenant::valid_id;
use crate::usage::budget::Budget;

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

/// A configured key and what it grants: the tenant it acts for (named, or derived from the key)
/// and whether that tenant is an admin.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyEntry {
    pub key: ApiKey,
    /// The `name=` of the key file; `None` derives the tenant id from the key.
    pub name: Option<String>,
    pub admin: bool,
    /// The `budget.…=` fields of the key file.
    pub budgets: Vec<Budget>,
    /// `priority=low`: refused while the account's usage is above the low-priority threshold.
    pub low_priority: bool,
}

impl KeyEntry {
    /// A key of `--api-keys`: an unnamed ordinary tenant.
    pub fn user(key: ApiKey) -> Self {
        KeyEntry {
            key,
            name: None,
            admin: false,
            budgets: Vec::new(),
            low_priority: false,
        }
    }

    /// A key of `--admin-api-keys`.
    pub fn admin(key: ApiKey) -> Self {
        KeyEntry {
            admin: true,
            ..KeyEntry::user(key)
        }
    }

    /// The tenant this key acts for.
    pub fn tenant(&self) -> Tenant {
        let id = match &self.name {
            Some(name) => name.clone(),
            None => derived_tenant_id(&self.key),
        };
        // Names are checked when parsed and derived ids are always valid; the fallback is the
        // least privileged tenant, never another one.
        Tenant::new(&id, self.admin).unwrap_or_default()
    }
}

/// `key-` and the first 8 bytes, in hex, of SHA-256 over a fixed prefix and the key: not the
/// lookup digest, so a stored tenant id is no key digest either.
fn derived_tenant_id(key: &ApiKey) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"claude-gateway tenant id\0");
    hasher.update(key.expose().as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("key-{hex}")
}

/// `key:` and 32 hex digits of SHA-256 over another fixed prefix and the key: a stable name for
/// the key's shared rate-limit budget that is neither the key, its lookup digest nor its tenant
/// id (two keys of one tenant keep a budget each, as in memory).
fn limit_id(key: &ApiKey) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"claude-gateway rate limit\0");
    hasher.update(key.expose().as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("key:{hex}")
}

/// What one key file line's fields after the key say.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    admin: bool,
    budgets: Vec<Budget>,
    low_priority: bool,
}

/// One key file line's fields after the key.
fn parse_fields<'a>(fields: impl Iterator<Item = &'a str>) -> Result<Fields, String> {
    let Fields {
        mut name,
        mut admin,
        mut budgets,
        mut low_priority,
    } = Fields::default();
    for field in fields {
        if let Some((key, value)) = field.split_once('=')
            && let Some(budget) = Budget::from_field(key, value)
        {
            budgets.push(budget?);
            continue;
        }
        match field.split_once('=') {
            Some(("priority", "low")) => low_priority = true,
            Some(("priority", "normal")) => low_priority = false,
            Some(("priority", other)) => {
                return Err(format!("priority must be `normal` or `low`, not `{other}`"));
            }
            Some(("role", "admin")) => admin = true,
            Some(("role", "user")) => admin = false,
            Some(("role", other)) => {
                return Err(format!("role must be `user` or `admin`, not `{other}`"));
            }
            Some(("name", value)) => {
                // `anonymous` is the tenant of a gateway without keys, which may read the
                // operator's endpoints: no key may take its name.
                if !valid_id(value)
                    || value.starts_with("key-")
                    || value == crate::chat::tenant::ANONYMOUS
                {
                    return Err(format!(
                        "name `{value}` is not a tenant name: 1 to 128 ASCII letters, digits, \
                         `_`, `-`, `.` or `@`, not starting with `key-`, and not `{}`",
                        crate::chat::tenant::ANONYMOUS
                    ));
                }
                name = Some(value.to_owned());
            }
            // The field may be a second key pasted by mistake: never show it.
            _ => {
                return Err(
                    "unknown field after the key (expected role=…, name=…, priority=… or \
                     budget.…=…)"
                        .into(),
                );
            }
        }
    }
    Ok(Fields {
        name,
        admin,
        budgets,
        low_priority,
    })
}

/// The keys in a key file: one per line, optionally followed by `role=user|admin` and
/// `name=TENANT`; blank lines and `#` comments (whole-line or trailing) are skipped. Errors name
/// the line but never show the key.
pub fn parse_key_file(text: &str) -> Result<Vec<KeyEntry>, String> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else {
            continue;
        };
        let key = ApiKey(key.to_string());
        key.check().map_err(|e| format!("line {}: {e}", i + 1))?;
        let Fields {
            name,
            admin,
            budgets,
            low_priority,
        } = parse_fields(words).map_err(|e| format!("line {}: {e}", i + 1))?;
        keys.push(KeyEntry {
            key,
            name,
            admin,
            budgets,
            low_priority,
        });
    }
    Ok(keys)
}

/// Reads `path` with `parse_key_file`. A file holding no key is an error: the operator asked
/// for keys, and starting an open gateway instead would be the wrong surprise.
pub fn read_key_file(path: &Path) -> Result<Vec<KeyEntry>, String> {
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

/// The configured keys, as digests, each with its tenant. A key's index (its place among the
/// distinct keys) is its identity for this process's rate limiting; its `limit_id` the one
/// every gateway with that key shares (`--rate-limit-store`). The key itself is not kept.
#[derive(Default)]
pub struct KeySet {
    digests: Vec<KeyDigest>,
    tenants: Vec<Tenant>,
    limit_ids: Vec<String>,
    /// The key file's budgets, by tenant id.
    budgets: std::collections::HashMap<String, Vec<Budget>>,
    low_priority: Vec<bool>,
}

impl KeySet {
    /// A key listed twice is one key: an admin if either listing says so, named by the first
    /// listing that names it.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a KeyEntry>) -> Self {
        let mut merged: Vec<(KeyDigest, KeyEntry)> = Vec::new();
        for entry in keys.into_iter().filter(|k| !k.key.is_empty()) {
            let d = digest(entry.key.expose().as_bytes());
            match merged.iter_mut().find(|(known, _)| *known == d) {
                Some((_, known)) => {
                    known.admin |= entry.admin;
                    known.low_priority |= entry.low_priority;
                    if known.name.is_none() {
                        known.name = entry.name.clone();
                    }
                }
                None => merged.push((d, entry.clone())),
            }
        }
        let limit_ids = merged.iter().map(|(_, e)| limit_id(&e.key)).collect();
        let mut budgets = std::collections::HashMap::<String, Vec<Budget>>::new();
        for (_, entry) in merged.iter().filter(|(_, e)| !e.budgets.is_empty()) {
            // Two keys of one tenant: the later line's budget of a metric and window wins.
            let known = budgets.entry(entry.tenant().id().to_owned()).or_default();
            *known = crate::usage::budget::merge(known, &entry.budgets);
        }
        let low_priority = merged.iter().map(|(_, e)| e.low_priority).collect();
        let (digests, tenants) = merged.into_iter().map(|(d, e)| (d, e.tenant())).unzip();
        KeySet {
            digests,
            tenants,
            limit_ids,
            budgets,
            low_priority,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// The key file's budgets, by tenant id.
    pub fn budgets(&self) -> &std::collections::HashMap<String, Vec<Budget>> {
        &self.budgets
    }

    /// The tenant of the key `find` returned.
    pub fn tenant(&self, index: usize) -> Option<&Tenant> {
        self.tenants.get(index)
    }

    /// Whether the key `find` returned is `priority=low`.
    pub fn is_low_priority(&self, index: usize) -> bool {
        self.low_priority.get(index).copied().unwrap_or(false)
    }

    /// The rate-limit identity of the key `find` returned, the same on every gateway that has
    /// the key (whatever its place in their lists).
    pub fn limit_id(&self, index: usize) -> Option<&str> {
        self.limit_ids.get(index).map(String::as_str)
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

    fn keys(list: &[&str]) -> Vec<KeyEntry> {
        list.iter()
            .map(|k| KeyEntry::user(k.parse().unwrap()))
            .collect()
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
        // Fields after the key are optional: today's files stay valid.
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

    #[test]
    fn key_files_name_tenants_and_admins() {
        let parsed = parse_key_file(
            "sk-a role=admin name=alice\nsk-b name=bob # team b\nsk-c role=user\nsk-d\n",
        )
        .unwrap();
        let set = KeySet::new(&parsed);
        let tenant = |key| set.tenant(set.find(key).unwrap()).unwrap().clone();
        assert_eq!(tenant("sk-a"), Tenant::new("alice", true).unwrap());
        assert_eq!(tenant("sk-b"), Tenant::new("bob", false).unwrap());
        // Unnamed: a digest-derived id, stable, that shows nothing of the key.
        let c = tenant("sk-c");
        assert!(!c.is_admin());
        assert!(c.id().starts_with("key-") && c.id().len() == 20, "{c}");
        assert!(!c.id().contains("sk-c"));
        assert_eq!(c, KeyEntry::user("sk-c".parse().unwrap()).tenant());
        assert_ne!(c, tenant("sk-d"));
        // The shared rate-limit identity: the same whatever the key's place, and none of the
        // key, its tenant id or its lookup digest.
        let other = KeySet::new(&keys(&["sk-z", "sk-c"]));
        let id = set.limit_id(set.find("sk-c").unwrap()).unwrap();
        assert_eq!(Some(id), other.limit_id(other.find("sk-c").unwrap()));
        assert!(id.starts_with("key:") && id.len() == 36, "{id}");
        assert!(!id.contains("sk-c") && !id.contains(&c.id()[4..]));
        let lookup: String = digest(b"sk-c").iter().map(|b| format!("{b:02x}")).collect();
        assert!(!lookup.contains(&id[4..]));
        assert_ne!(Some(id), set.limit_id(set.find("sk-d").unwrap()));
        for (line, why) in [
            ("sk-x role=root", "role must be"),
            ("sk-x name=a/b", "not a tenant name"),
            ("sk-x name=key-1234", "not a tenant name"),
            ("sk-x name=anonymous", "not a tenant name"),
            ("sk-x sk-y", "unknown field"),
            ("sk-x budget.usd.week=1", "window is day or month"),
            ("sk-x budget.requests.day=many", "must be a number"),
        ] {
            let err = parse_key_file(line).unwrap_err();
            assert!(
                err.starts_with("line 1:") && err.contains(why),
                "{line}: {err}"
            );
            assert!(!err.contains("sk-x") && !err.contains("sk-y"), "{err}");
        }
    }

    #[test]
    fn key_files_give_tenants_budgets() {
        use crate::usage::budget::{Metric, Window};
        let parsed = parse_key_file(
            "sk-a name=alice budget.requests.day=100 budget.usd.month=5.5\nsk-b name=bob\n",
        )
        .unwrap();
        let set = KeySet::new(&parsed);
        let alice = &set.budgets()["alice"];
        assert_eq!(alice.len(), 2);
        assert_eq!(
            alice[0],
            Budget::new(Metric::Requests, Window::Day, 100.0).unwrap()
        );
        assert_eq!(alice[1].limit, 5.5);
        assert!(!set.budgets().contains_key("bob"));
    }

    #[test]
    fn a_key_listed_twice_merges_its_grants() {
        let user = KeyEntry::user("k".parse().unwrap());
        let admin = KeyEntry::admin("k".parse().unwrap());
        let named = KeyEntry {
            name: Some("carol".into()),
            ..user.clone()
        };
        let set = KeySet::new([&user, &admin, &named]);
        assert_eq!(set.len(), 1);
        assert_eq!(set.tenant(0), Tenant::new("carol", true).as_ref());
    }

    #[test]
    fn priority_low_marks_a_key() {
        let parsed =
            parse_key_file("sk-a priority=low name=batch\nsk-b priority=normal\n").unwrap();
        assert!(parsed[0].low_priority);
        assert!(!parsed[1].low_priority);
        let set = KeySet::new(&parsed);
        assert!(set.is_low_priority(0) && !set.is_low_priority(1));
        let err = parse_key_file("sk-a priority=urgent").unwrap_err();
        assert!(err.contains("priority must be"), "{err}");
    }
}
