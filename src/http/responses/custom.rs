//! Custom tools (`{"type":"custom", name, description, format}`): free-form input instead of JSON
//! arguments. Claude has no such tool kind, so each is offered as a function with one string
//! field, `input`, whose description carries the requested format (plain text, or a Lark/regex
//! grammar the input must match). A call comes back as `{"input": "…"}` JSON; `InputDecoder`
//! decodes that JSON string as its fragments arrive, so `response.custom_tool_call_input.delta`
//! streams the text itself, not its JSON encoding. Which tools are custom is known from the
//! request (the response echoes its tools), so nothing of this reaches the domain or gRPC.

use serde_json::{Value, json};

use crate::chat::ChatError;
use crate::chat::message_json::{field, string_field};
use crate::chat::types::Tool;

use super::tools::required_string;

/// The one field of the function a custom tool is offered as.
pub const INPUT_FIELD: &str = "input";

/// A `custom` tool item → the domain tool Claude sees, and the tool as the response echoes it.
pub fn custom_tool(item: &Value, p: &str) -> Result<(Tool, Value), ChatError> {
    let name = required_string(item, "name", p)?;
    let description = string_field(item, "description", p)?;
    let (field_description, format_echo) = match field(item, "format") {
        None => (plain_text_note(), None),
        Some(format) => {
            let fp = format!("{p}.format");
            match string_field(format, "type", &fp)?.as_deref() {
                Some("text") => (plain_text_note(), Some(json!({"type": "text"}))),
                Some("grammar") => {
                    let syntax = required_string(format, "syntax", &fp)?;
                    if !matches!(syntax.as_str(), "lark" | "regex") {
                        return Err(ChatError::invalid(
                            format!("`{fp}.syntax` must be lark or regex; got `{syntax}`."),
                            format!("{fp}.syntax"),
                        ));
                    }
                    let definition = required_string(format, "definition", &fp)?;
                    let note = format!(
                        "The tool's whole input as raw text (not JSON). It must match this \
                         {syntax} grammar exactly:\n{definition}"
                    );
                    let echo =
                        json!({"type": "grammar", "syntax": syntax, "definition": definition});
                    (note, Some(echo))
                }
                other => {
                    return Err(ChatError::invalid(
                        format!(
                            "`{fp}.type` must be text or grammar; got {}.",
                            other.map_or("nothing".to_string(), |o| format!("`{o}`"))
                        ),
                        format!("{fp}.type"),
                    ));
                }
            }
        }
    };
    let mut echo = json!({"type": "custom", "name": name});
    if let Some(d) = &description {
        echo["description"] = json!(d);
    }
    if let Some(f) = format_echo {
        echo["format"] = f;
    }
    let tool = Tool {
        name,
        description,
        parameters: Some(json!({
            "type": "object",
            "properties": {
                INPUT_FIELD: {"type": "string", "description": field_description},
            },
            "required": [INPUT_FIELD],
            "additionalProperties": false,
        })),
        strict: None,
    };
    Ok((tool, echo))
}

fn plain_text_note() -> String {
    "The tool's whole input as free-form raw text (not JSON).".to_string()
}

/// The arguments of a replayed `custom_tool_call` (its `input`), as Claude wrote them.
pub fn arguments_of(input: &str) -> String {
    json!({ INPUT_FIELD: input }).to_string()
}

/// The final input of a call from its whole JSON arguments: the `input` string; JSON of another
/// shape is passed on as the text it is; `None` when the arguments are not (yet) JSON.
pub fn input_of(arguments: &str) -> Option<String> {
    match serde_json::from_str::<Value>(arguments).ok()? {
        Value::Object(map) => Some(match map.get(INPUT_FIELD) {
            Some(Value::String(s)) => s.clone(),
            _ if map.is_empty() => String::new(),
            _ => arguments.to_string(),
        }),
        _ => Some(arguments.to_string()),
    }
}

/// Decodes the `input` string of `{"input": "…"}` from the JSON fragments of a call as they
/// arrive. An escape split across fragments is held until it is whole. Arguments of another
/// shape (another key first) stop the decoding; the caller then sends the rest at the end.
#[derive(Debug, Default)]
pub struct InputDecoder {
    raw: String,
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    /// Before the opening quote of the value.
    #[default]
    Seeking,
    /// Inside the value; decoded up to this byte of `raw`.
    InString(usize),
    /// The value's closing quote was read, or the arguments have another shape.
    Stopped,
}

impl InputDecoder {
    /// Adds a fragment of the arguments; returns the newly decoded text (maybe empty).
    pub fn push(&mut self, fragment: &str) -> String {
        self.raw.push_str(fragment);
        if self.state == State::Seeking {
            self.state = match value_start(&self.raw) {
                Prefix::Matched(at) => State::InString(at),
                Prefix::NeedMore => State::Seeking,
                Prefix::Other => State::Stopped,
            };
        }
        let State::InString(mut at) = self.state else {
            return String::new();
        };
        let mut out = String::new();
        loop {
            match decode_one(self.raw.get(at..).unwrap_or("")) {
                Step::Char(c, len) => {
                    out.push(c);
                    at += len;
                }
                Step::End => {
                    self.state = State::Stopped;
                    return out;
                }
                Step::NeedMore => break,
            }
        }
        self.state = State::InString(at);
        out
    }

    /// All fragments so far: the call's whole JSON arguments once the call is complete.
    pub fn raw(&self) -> &str {
        &self.raw
    }
}

enum Prefix {
    Matched(usize),
    NeedMore,
    Other,
}

/// Where the value of `{"input": "` starts in `raw`, if `raw` begins so.
fn value_start(raw: &str) -> Prefix {
    let expected = ["{", "\"input\"", ":", "\""];
    let mut rest = raw;
    for token in expected {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Prefix::NeedMore;
        }
        if let Some(after) = rest.strip_prefix(token) {
            rest = after;
        } else if token.starts_with(rest) {
            return Prefix::NeedMore;
        } else {
            return Prefix::Other;
        }
    }
    Prefix::Matched(raw.len() - rest.len())
}

enum Step {
    /// A decoded character and how many bytes of JSON it took.
    Char(char, usize),
    /// The closing quote.
    End,
    NeedMore,
}

/// Decodes the first character of the JSON string text `s`.
fn decode_one(s: &str) -> Step {
    let mut chars = s.chars();
    match chars.next() {
        None => Step::NeedMore,
        Some('"') => Step::End,
        Some('\\') => match chars.next() {
            None => Step::NeedMore,
            Some('u') => decode_unicode(s),
            Some(c) => {
                let decoded = match c {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    // `\"`, `\\`, `\/`; anything else is not JSON, kept as written.
                    other => other,
                };
                Step::Char(decoded, 1 + c.len_utf8())
            }
        },
        Some(c) => Step::Char(c, c.len_utf8()),
    }
}

/// `\uXXXX`, or a surrogate pair `\uD83D\uDE00`, at the start of `s`.
fn decode_unicode(s: &str) -> Step {
    let Some(high) = hex4(s, 2) else {
        return if s.len() < 6 {
            Step::NeedMore
        } else {
            Step::Char('\u{fffd}', 2)
        };
    };
    if !(0xD800..0xDC00).contains(&high) {
        return Step::Char(char::from_u32(high).unwrap_or('\u{fffd}'), 6);
    }
    if s.len() < 12 {
        return Step::NeedMore;
    }
    match (s.get(6..8), hex4(s, 8)) {
        (Some("\\u"), Some(low)) if (0xDC00..0xE000).contains(&low) => {
            let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            Step::Char(char::from_u32(c).unwrap_or('\u{fffd}'), 12)
        }
        _ => Step::Char('\u{fffd}', 6),
    }
}

fn hex4(s: &str, at: usize) -> Option<u32> {
    let digits = s.get(at..at + 4)?;
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every way of cutting the arguments into two fragments decodes to the same text as
    /// serde_json does, and no delta is lost or doubled.
    #[test]
    fn decodes_split_fragments_like_serde() {
        let input = "line \"one\"\n\ttab \\ slash / é 😀 end";
        let args = serde_json::to_string(&json!({"input": input})).unwrap();
        let args = args.replace('é', "\\u00e9").replace('😀', "\\ud83d\\ude00");
        for cut in 0..=args.len() {
            if !args.is_char_boundary(cut) {
                continue;
            }
            let mut d = InputDecoder::default();
            let mut got = d.push(&args[..cut]);
            got.push_str(&d.push(&args[cut..]));
            assert_eq!(got, input, "cut at {cut}: {args}");
            assert_eq!(d.raw(), args);
            assert_eq!(input_of(d.raw()).unwrap(), input);
        }
    }

    #[test]
    fn decodes_byte_by_byte_with_whitespace() {
        let args = " { \"input\" :  \"a\\u0041\\\\b\" }";
        let mut d = InputDecoder::default();
        let got: String = args.chars().map(|c| d.push(&c.to_string())).collect();
        assert_eq!(got, "aA\\b");
    }

    #[test]
    fn another_shape_stops_decoding() {
        let mut d = InputDecoder::default();
        assert_eq!(d.push("{\"other\": 1, \"input\": \"x\"}"), "");
        assert_eq!(input_of(d.raw()).unwrap(), "x");
        assert_eq!(input_of("{\"input\": \"unfinished"), None);
        assert_eq!(input_of("[1]").unwrap(), "[1]");
        assert_eq!(input_of("{}").unwrap(), "");
    }

    #[test]
    fn grammar_goes_into_the_field_description() {
        let item = json!({"type": "custom", "name": "sql", "description": "Runs SQL",
            "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"SELECT\""}});
        let (tool, echo) = custom_tool(&item, "tools[0]").unwrap();
        assert_eq!(tool.name, "sql");
        let params = tool.parameters.unwrap();
        let note = params["properties"]["input"]["description"]
            .as_str()
            .unwrap();
        assert!(
            note.contains("lark grammar") && note.contains("start: \"SELECT\""),
            "{note}"
        );
        assert_eq!(params["required"], json!(["input"]));
        assert_eq!(echo["format"]["syntax"], "lark");
        let bad = json!({"type": "custom", "name": "x", "format": {"type": "grammar", "syntax": "ebnf", "definition": "d"}});
        let err = custom_tool(&bad, "tools[1]").unwrap_err();
        assert!(err.to_string().contains("tools[1].format.syntax"), "{err}");
    }
}
