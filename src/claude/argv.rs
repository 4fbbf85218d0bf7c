//! The CLI's command line, built as a pure function of what a run needs. It holds flags only:
//! prompts and system prompts go on stdin (`input.rs`), so nothing a client wrote is visible in
//! `/proc/<pid>/cmdline`.

use crate::chat::validate::Effort;

/// What a spawn needs to know, independent of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpawnSpec {
    /// Passed to `--model`: an alias or a `claude-*` id.
    pub model: String,
    /// `--bare`: strongest isolation, but only works with ANTHROPIC_API_KEY (no login).
    pub bare: bool,
    pub effort: Option<Effort>,
}

pub fn build_args(spec: &SpawnSpec) -> Vec<String> {
    let mut args: Vec<String> = [
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        // No built-in tools, no settings files or CLAUDE.md, no MCP servers from the host,
        // nothing written to ~/.claude/projects.
        "--tools",
        "",
        "--setting-sources",
        "",
        "--strict-mcp-config",
        "--no-session-persistence",
        // Permission prompts come to the host (`can_use_tool`): a client tool call then waits
        // for an answer that never comes, instead of being auto-denied and answered by Claude.
        // Always on, so every process fits every request (the warm pool relies on it).
        "--permission-prompt-tool",
        "stdio",
        "--model",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(spec.model.clone());
    if spec.bare {
        args.push("--bare".into());
    }
    if let Some(effort) = spec.effort {
        args.push("--effort".into());
        args.push(effort.as_str().into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolating_flags_are_always_there() {
        let args = build_args(&SpawnSpec {
            model: "sonnet".into(),
            bare: false,
            effort: None,
        });
        let joined = args.join(" ");
        for flag in [
            "--input-format stream-json",
            "--output-format stream-json",
            "--verbose",
            "--include-partial-messages",
            "--strict-mcp-config",
            "--no-session-persistence",
            "--model sonnet",
        ] {
            assert!(joined.contains(flag), "{flag} missing in {joined}");
        }
        let tools = args.iter().position(|a| a == "--tools").unwrap();
        assert_eq!(args[tools + 1], "");
        let sources = args.iter().position(|a| a == "--setting-sources").unwrap();
        assert_eq!(args[sources + 1], "");
        assert!(!args.iter().any(|a| a.contains("dangerously")));
        assert!(!args.contains(&"--bare".to_string()));
        let p = args
            .iter()
            .position(|a| a == "--permission-prompt-tool")
            .unwrap();
        assert_eq!(args[p + 1], "stdio");
        assert!(!args.iter().any(|a| a == "-p" || a == "--system-prompt"));
    }

    #[test]
    fn bare_and_effort_are_added_when_asked() {
        let args = build_args(&SpawnSpec {
            model: "claude-sonnet-4-5".into(),
            bare: true,
            effort: Some(Effort::High),
        });
        let p = args
            .iter()
            .position(|a| a == "--permission-prompt-tool")
            .unwrap();
        assert_eq!(args[p + 1], "stdio");
        assert!(args.contains(&"--bare".to_string()));
        let e = args.iter().position(|a| a == "--effort").unwrap();
        assert_eq!(args[e + 1], "high");
    }
}
