//! Token counting with tiktoken (cl100k_base), for estimates when Claude reported no numbers
//! (a run cut early) and for input limits. Claude's tokenizer differs, so these are estimates and
//! are always labelled as such.

/// Tokens in `text`, by cl100k_base.
pub fn count(text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::cl100k_base_singleton()
        .encode_with_special_tokens(text)
        .len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_tokens() {
        assert_eq!(super::count(""), 0);
        assert_eq!(super::count("hello world"), 2);
    }
}
