//! Validation of gateway output against OpenAI's official schemas.
//!
//! `tests/schemas/openai.json` holds `CreateChatCompletionResponse`,
//! `CreateChatCompletionStreamResponse`, `ErrorResponse`, `ListModelsResponse`, `Model` and
//! everything they reference, as JSON Schema 2020-12 `$defs` (regenerate it with
//! `python3 tests/schemas/extract.py`). Extra fields are allowed; missing required fields, wrong
//! types and values outside an `enum` are not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use serde_json::{Value, json};

const SCHEMAS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/schemas/openai.json"
));

fn validator(schema_name: &str) -> Arc<Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    static DOC: OnceLock<Value> = OnceLock::new();
    let doc = DOC.get_or_init(|| serde_json::from_str(SCHEMAS).expect("openai.json is JSON"));
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = cache.entry(schema_name.to_owned()).or_insert_with(|| {
        assert!(
            doc["$defs"].get(schema_name).is_some(),
            "no schema named {schema_name:?} in tests/schemas/openai.json"
        );
        let schema = json!({
            "$schema": doc["$schema"],
            "$defs": doc["$defs"],
            "$ref": format!("#/$defs/{schema_name}"),
        });
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("schema {schema_name} does not compile: {e}"));
        Arc::new(validator)
    });
    Arc::clone(entry)
}

/// Validates `value` against the named OpenAI schema (e.g. `"CreateChatCompletionResponse"`);
/// panics with a readable list of every violation (instance path + message) and the JSON itself.
pub fn assert_valid(schema_name: &str, value: &Value) {
    let validator = validator(schema_name);
    let violations: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("  at {:?}: {e}", e.instance_path().as_str()))
        .collect();
    if !violations.is_empty() {
        let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
        panic!(
            "not a valid OpenAI {schema_name} ({} violations):\n{}\nJSON:\n{pretty}",
            violations.len(),
            violations.join("\n")
        );
    }
}
