//! `GET /v1/models` and `GET /v1/models/{id}` for Anthropic's clients: when a request carries
//! `anthropic-version` (as the Anthropic SDKs do) or `?beta=true` (as their beta clients do), the
//! same model table is answered in Anthropic's shapes — a list of
//! `{"type":"model","id","display_name","created_at"}` with `has_more`, `first_id`, `last_id`,
//! with the `claude-*` ids only (OpenAI ids and CLI aliases are not Anthropic model ids), and
//! one such object. OpenAI clients keep OpenAI's shapes.

use serde_json::{Value, json};

use crate::chat::models::ModelInfo;

/// Whether the request is an Anthropic client's: an `anthropic-version` header, or `beta=true`
/// in the query.
pub fn wants_anthropic(headers: &axum::http::HeaderMap, query: Option<&str>) -> bool {
    headers.contains_key("anthropic-version")
        || query.is_some_and(|q| {
            q.split('&')
                .any(|pair| pair.eq_ignore_ascii_case("beta=true"))
        })
}

/// One model in Anthropic's shape.
pub fn anthropic_model(id: &str, created: i64) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": rfc3339(created)})
}

/// Anthropic's model list of `models`, each created at `created` (Unix seconds).
pub fn anthropic_list(models: &[ModelInfo], created: i64) -> Value {
    let mut ids: Vec<&str> = models
        .iter()
        .flat_map(|m| [m.id.as_str(), m.cli_model.as_str()])
        .filter(|id| id.starts_with("claude-"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let data: Vec<Value> = ids.iter().map(|id| anthropic_model(id, created)).collect();
    json!({
        "data": data,
        "has_more": false,
        "first_id": ids.first(),
        "last_id": ids.last(),
    })
}

/// `secs` since the Unix epoch as an RFC 3339 UTC time (`2026-12-02T05:49:40Z`).
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_190_580), "2026-12-02T05:49:40Z");
    }

    #[test]
    fn anthropic_clients_are_known_by_header_or_query() {
        let mut headers = axum::http::HeaderMap::new();
        assert!(!wants_anthropic(&headers, None));
        assert!(!wants_anthropic(&headers, Some("beta=false")));
        assert!(wants_anthropic(&headers, Some("limit=20&beta=true")));
        headers.insert("anthropic-version", "2023-06-01".parse().expect("a value"));
        assert!(wants_anthropic(&headers, None));
    }

    #[test]
    fn only_claude_ids_in_anthropics_shape() {
        let models = [
            ModelInfo {
                id: "gpt-4o".into(),
                cli_model: "sonnet".into(),
            },
            ModelInfo {
                id: "claude-sonnet-4-5".into(),
                cli_model: "claude-sonnet-4-5".into(),
            },
            ModelInfo {
                id: "claude-haiku-4-5".into(),
                cli_model: "claude-haiku-4-5".into(),
            },
        ];
        let list = anthropic_list(&models, 0);
        assert_eq!(
            list,
            json!({"data": [
                {"type": "model", "id": "claude-haiku-4-5", "display_name": "claude-haiku-4-5",
                 "created_at": "1970-01-01T00:00:00Z"},
                {"type": "model", "id": "claude-sonnet-4-5", "display_name": "claude-sonnet-4-5",
                 "created_at": "1970-01-01T00:00:00Z"}],
                "has_more": false, "first_id": "claude-haiku-4-5", "last_id": "claude-sonnet-4-5"})
        );
    }
}
