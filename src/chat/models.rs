//! The model map: which model ids the gateway answers to and what it passes to the CLI's
//! `--model`. OpenAI ids are mapped to CLI aliases (so they follow the CLI as Anthropic ships new
//! models), the aliases and `claude-*` ids pass through, anything else is `model_not_found`.

use std::collections::BTreeMap;

use super::error::ChatError;

/// OpenAI ids and what they mean by default. `gpt-4*` and `gpt-4o` are the capable tier, the
/// `-mini`/3.5 ids the fast tier, the reasoning ids (o1, o3, gpt-5) the strongest.
const DEFAULT_MAP: &[(&str, &str)] = &[
    ("gpt-4", "sonnet"),
    ("gpt-4-turbo", "sonnet"),
    ("gpt-4-turbo-preview", "sonnet"),
    ("gpt-4o", "sonnet"),
    ("gpt-4.1", "sonnet"),
    ("gpt-3.5-turbo", "haiku"),
    ("gpt-3.5-turbo-16k", "haiku"),
    ("gpt-4o-mini", "haiku"),
    ("gpt-4.1-mini", "haiku"),
    ("gpt-4.1-nano", "haiku"),
    ("o1", "opus"),
    ("o3", "opus"),
    ("gpt-5", "opus"),
];

/// CLI aliases that are accepted as they are.
const CLI_ALIASES: &[&str] = &["sonnet", "haiku", "opus"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: String,
    pub cli_model: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMap {
    entries: BTreeMap<String, String>,
}

impl Default for ModelMap {
    fn default() -> Self {
        let mut entries: BTreeMap<String, String> = DEFAULT_MAP
            .iter()
            .map(|(id, cli)| (id.to_string(), cli.to_string()))
            .collect();
        for alias in CLI_ALIASES {
            entries.insert(alias.to_string(), alias.to_string());
        }
        ModelMap { entries }
    }
}

impl ModelMap {
    /// The default map with `overrides` applied. `overrides` is a JSON object
    /// (`{"gpt-4o":"opus"}`), a path to a file holding one, or `id=cli` pairs separated by
    /// commas. An empty CLI model removes the id.
    pub fn with_overrides(overrides: &str) -> Result<Self, String> {
        let mut map = ModelMap::default();
        let text = overrides.trim();
        if text.is_empty() {
            return Ok(map);
        }
        let pairs: Vec<(String, String)> = if text.starts_with('{') {
            parse_json(text)?
        } else if std::path::Path::new(text).is_file() {
            let body = std::fs::read_to_string(text)
                .map_err(|e| format!("cannot read model map file {text}: {e}"))?;
            parse_json(&body).map_err(|e| format!("{text}: {e}"))?
        } else {
            text.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|pair| {
                    let (id, cli) = pair
                        .split_once('=')
                        .ok_or_else(|| format!("model map entry `{pair}` is not `id=cli_model`"))?;
                    Ok((id.trim().to_string(), cli.trim().to_string()))
                })
                .collect::<Result<_, String>>()?
        };
        for (id, cli) in pairs {
            if id.is_empty() {
                return Err("model map has an empty model id".into());
            }
            if cli.is_empty() {
                map.entries.remove(&id);
            } else {
                map.entries.insert(id, cli);
            }
        }
        Ok(map)
    }

    /// What `--model` gets for `id`, or `model_not_found`.
    pub fn resolve(&self, id: &str) -> Result<ModelInfo, ChatError> {
        if let Some(cli) = self.entries.get(id) {
            return Ok(ModelInfo {
                id: id.to_string(),
                cli_model: cli.clone(),
            });
        }
        if is_claude_id(id) {
            return Ok(ModelInfo {
                id: id.to_string(),
                cli_model: id.to_string(),
            });
        }
        Err(ChatError::model_not_found(id))
    }

    /// Every id of the map and the CLI's concrete `claude-*` ids (`cli_ids`, learned from the
    /// CLI), sorted. A learned id passes to `--model` as it is, like any `claude-*` id.
    pub fn list_with(&self, cli_ids: &[String]) -> Vec<ModelInfo> {
        let mut all = self.list();
        all.extend(
            cli_ids
                .iter()
                .filter(|id| is_claude_id(id) && !self.entries.contains_key(*id))
                .map(|id| ModelInfo {
                    id: id.clone(),
                    cli_model: id.clone(),
                }),
        );
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.dedup_by(|a, b| a.id == b.id);
        all
    }

    /// Every id of the map, sorted.
    pub fn list(&self) -> Vec<ModelInfo> {
        self.entries
            .iter()
            .map(|(id, cli)| ModelInfo {
                id: id.clone(),
                cli_model: cli.clone(),
            })
            .collect()
    }
}

/// `claude-` followed by letters, digits, dots, dashes (and the CLI's `[1m]` context suffix).
pub fn is_claude_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("claude-") else {
        return false;
    };
    let rest = rest.strip_suffix("[1m]").unwrap_or(rest);
    !rest.is_empty()
        && rest.len() <= 100
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

fn parse_json(text: &str) -> Result<Vec<(String, String)>, String> {
    let map: BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|e| format!("model map is not a JSON object of strings: {e}"))?;
    Ok(map.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_map_openai_ids_to_aliases() {
        let map = ModelMap::default();
        for id in ["gpt-4", "gpt-4-turbo", "gpt-4-turbo-preview", "gpt-4o"] {
            assert_eq!(map.resolve(id).map(|m| m.cli_model), Ok("sonnet".into()));
        }
        for id in ["gpt-3.5-turbo", "gpt-3.5-turbo-16k", "gpt-4o-mini"] {
            assert_eq!(map.resolve(id).map(|m| m.cli_model), Ok("haiku".into()));
        }
        for id in [
            "sonnet",
            "haiku",
            "opus",
            "claude-sonnet-4-5",
            "claude-opus-4-1",
        ] {
            assert_eq!(map.resolve(id).map(|m| m.cli_model), Ok(id.into()));
        }
    }

    #[test]
    fn unknown_ids_are_model_not_found() {
        let map = ModelMap::default();
        for id in ["gpt-9", "", "claude-", "claude-x y", "llama"] {
            assert!(matches!(
                map.resolve(id),
                Err(ChatError::ModelNotFound { .. })
            ));
        }
    }

    #[test]
    fn overrides_in_all_three_forms() {
        let map = ModelMap::with_overrides("gpt-4o=opus, my-model=haiku,gpt-4=").unwrap();
        assert_eq!(map.resolve("gpt-4o").unwrap().cli_model, "opus");
        assert_eq!(map.resolve("my-model").unwrap().cli_model, "haiku");
        assert!(map.resolve("gpt-4").is_err());
        let map = ModelMap::with_overrides(r#"{"x":"sonnet"}"#).unwrap();
        assert_eq!(map.resolve("x").unwrap().cli_model, "sonnet");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), r#"{"from-file":"opus"}"#).unwrap();
        let map = ModelMap::with_overrides(file.path().to_str().unwrap()).unwrap();
        assert_eq!(map.resolve("from-file").unwrap().cli_model, "opus");
        assert!(ModelMap::with_overrides("nonsense").is_err());
    }

    #[test]
    fn learned_cli_ids_are_listed_beside_the_map() {
        let map = ModelMap::default();
        let learned = ["claude-sonnet-5-5".to_string(), "not claude".to_string()];
        let listed = map.list_with(&learned);
        let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
        assert!(
            ids.contains(&"claude-sonnet-5-5") && ids.contains(&"gpt-4o"),
            "{ids:?}"
        );
        assert!(!ids.contains(&"not claude"));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, once each");
        let learned = listed.iter().find(|m| m.id == "claude-sonnet-5-5").unwrap();
        assert_eq!(learned.cli_model, "claude-sonnet-5-5");
        assert_eq!(map.list_with(&[]), map.list());
    }
}
