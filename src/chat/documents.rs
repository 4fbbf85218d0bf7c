//! Documents (Anthropic's `document` block, OpenAI's `file` part and the Responses API's
//! `input_file`): the media types Claude reads through the CLI (a base64 PDF, plain text), the
//! one rule every dialect uses to turn a media type and data into a `DocumentSource`, and the
//! size check validation applies to each. The CLI (2.1.330) passes a `document` block on its
//! stdin to the API as it is (title and context included), so nothing here is lossy.

use base64::Engine as _;

use super::error::ChatError;
use super::types::{Document, DocumentSource};

pub const PDF: &str = "application/pdf";
pub const TEXT: &str = "text/plain";

/// How the client's document data is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Base64,
    Plain,
}

/// A media type and its data as a document source: a PDF must come as base64, text as plain
/// text (Anthropic's `text` source) or base64 (an OpenAI `file_data` URL), decoded here.
/// `param` names the media type's place, for the error.
pub fn source(
    media_type: &str,
    data: String,
    encoding: Encoding,
    param: &str,
) -> Result<DocumentSource, ChatError> {
    match (media_type, encoding) {
        (PDF, Encoding::Base64) => Ok(DocumentSource::Pdf { data }),
        (TEXT, Encoding::Plain) => Ok(DocumentSource::Text { data }),
        (TEXT, Encoding::Base64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|_| {
                    ChatError::invalid_with_code(
                        format!("`{param}`: the text document's data is not valid base64."),
                        param,
                        "invalid_document",
                    )
                })?;
            let data = String::from_utf8(bytes).map_err(|_| {
                ChatError::invalid_with_code(
                    format!("`{param}`: the text document is not UTF-8 text."),
                    param,
                    "invalid_document",
                )
            })?;
            Ok(DocumentSource::Text { data })
        }
        (PDF, Encoding::Plain) => Err(ChatError::invalid_with_code(
            format!("`{param}`: a PDF document must be base64 data."),
            param,
            "invalid_document",
        )),
        (other, _) => Err(ChatError::invalid_with_code(
            format!(
                "`{param}` is `{}`, which is not supported; documents are {PDF} (base64) or \
                 {TEXT}.",
                other.chars().take(80).collect::<String>()
            ),
            param,
            "invalid_document_format",
        )),
    }
}

/// A `data:<media type>;base64,<data>` URL (OpenAI's `file_data`) as a document source.
pub fn source_of_data_url(url: &str, param: &str) -> Result<DocumentSource, ChatError> {
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(header, data)| Some((header.strip_suffix(";base64")?, data)));
    let Some((media_type, data)) = parsed else {
        return Err(ChatError::invalid_with_code(
            format!("`{param}` must be a base64 data URL (data:application/pdf;base64,…)."),
            param,
            "invalid_document",
        ));
    };
    source(media_type, data.to_string(), Encoding::Base64, param)
}

/// A document within the size limit of an image (a PDF's decoded bytes, a text's UTF-8 bytes),
/// a PDF's data valid base64: Claude's API would refuse it later, after the answer's 200.
pub fn check(document: &Document, max_bytes: usize, param: &str) -> Result<(), ChatError> {
    let (bytes, what) = match &document.source {
        DocumentSource::Pdf { data } => {
            if base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .is_err()
            {
                return Err(ChatError::invalid_with_code(
                    format!("`{param}.source.data`: the PDF data is not valid base64."),
                    format!("{param}.source.data"),
                    "invalid_document",
                ));
            }
            (data.len() / 4 * 3, "PDF")
        }
        DocumentSource::Text { data } => (data.len(), "text document"),
    };
    if bytes > max_bytes {
        return Err(ChatError::invalid_with_code(
            format!(
                "`{param}.source.data`: the {what} is {bytes} bytes; the limit is {max_bytes} \
                 bytes."
            ),
            format!("{param}.source.data"),
            "document_too_large",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_encodings_become_sources_or_clear_errors() {
        assert_eq!(
            source(PDF, "JVBERg==".into(), Encoding::Base64, "p").unwrap(),
            DocumentSource::Pdf {
                data: "JVBERg==".into()
            }
        );
        assert_eq!(
            source_of_data_url("data:text/plain;base64,aGk=", "p").unwrap(),
            DocumentSource::Text { data: "hi".into() }
        );
        for (media, enc, code) in [
            (
                "application/msword",
                Encoding::Base64,
                "invalid_document_format",
            ),
            (PDF, Encoding::Plain, "invalid_document"),
        ] {
            let e = source(media, "x".into(), enc, "p").unwrap_err();
            assert_eq!(e.code(), Some(code));
            assert_eq!(e.param(), Some("p"));
        }
        assert!(source_of_data_url("https://x/a.pdf", "p").is_err());
    }

    #[test]
    fn documents_are_bounded_like_images() {
        let doc = |source| Document {
            source,
            title: None,
            context: None,
        };
        let pdf = doc(DocumentSource::Pdf {
            data: "JVBERi0xLjQ=".into(),
        });
        assert!(check(&pdf, 100, "m").is_ok());
        let e = check(&pdf, 3, "m").unwrap_err();
        assert_eq!(e.code(), Some("document_too_large"));
        assert_eq!(e.param(), Some("m.source.data"));
        let bad = doc(DocumentSource::Pdf {
            data: "@@@@".into(),
        });
        assert_eq!(
            check(&bad, 100, "m").unwrap_err().code(),
            Some("invalid_document")
        );
        let text = doc(DocumentSource::Text {
            data: "abcd".into(),
        });
        assert!(check(&text, 3, "m").is_err());
    }
}
