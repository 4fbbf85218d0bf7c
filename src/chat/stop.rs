//! Stop sequences on a stream of text: text that could still turn into a stop sequence is held
//! back across chunk boundaries and released as soon as it cannot; on a match everything from the
//! sequence on is dropped, and the match names which sequence it was (its index in the request's
//! list: Anthropic's `stop_sequence` says it). Pure, so it is tested without a process.

#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    /// The non-empty stops, each with its index in the list the request gave.
    stops: Vec<(u32, String)>,
    held: String,
}

/// What the matcher lets through for one pushed chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// Text safe to release now (possibly empty); the stream goes on.
    Continue(String),
    /// The stop sequence at this index of the request's list matched: release this text, then
    /// end the choice.
    Stopped(String, u32),
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher {
            stops: (0u32..).zip(stops).filter(|(_, s)| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome::Continue(text.to_string());
        }
        self.held.push_str(text);
        let complete = self.earliest_match();
        let partial = self.partial_start();
        match (complete, partial) {
            // A match that nothing earlier can still overtake: cut there.
            (Some((at, which)), p) if p.is_none_or(|p| at <= p) => {
                let before = self.held[..at].to_string();
                self.held.clear();
                StopOutcome::Stopped(before, which)
            }
            // Release what no stop can start in; hold the rest.
            (_, p) => {
                let release = p.unwrap_or(self.held.len());
                let out = self.held[..release].to_string();
                self.held.drain(..release);
                StopOutcome::Continue(out)
            }
        }
    }

    /// Text still held when the stream ends: cut at a stop it holds (and which one), else all
    /// of it.
    pub fn finish(&mut self) -> (String, Option<u32>) {
        let held = std::mem::take(&mut self.held);
        match self.earliest_match_in(&held) {
            Some((at, which)) => (held[..at].to_string(), Some(which)),
            None => (held, None),
        }
    }

    fn earliest_match(&self) -> Option<(usize, u32)> {
        self.earliest_match_in(&self.held)
    }

    /// Where the earliest stop in `text` starts, and which stop it is. Of two starting at one
    /// place the shorter (a prefix of the other, so it completes first whatever the chunking),
    /// then the one listed first.
    fn earliest_match_in(&self, text: &str) -> Option<(usize, u32)> {
        self.stops
            .iter()
            .filter_map(|(which, stop)| text.find(stop.as_str()).map(|at| (at, stop.len(), *which)))
            .min()
            .map(|(at, _, which)| (at, which))
    }

    /// Where the earliest suffix of `held` starts that is a proper prefix of some stop: a stop
    /// that may still complete there once more text arrives.
    fn partial_start(&self) -> Option<usize> {
        let held = self.held.as_str();
        held.char_indices().map(|(i, _)| i).find(|&i| {
            let suffix = &held[i..];
            self.stops
                .iter()
                .any(|(_, s)| s.len() > suffix.len() && s.starts_with(suffix))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], chunks: &[&str]) -> (String, bool) {
        let (out, which) = run_which(stops, chunks);
        (out, which.is_some())
    }

    /// The text let through and the stop that ended it, by its text.
    fn run_which(stops: &[&str], chunks: &[&str]) -> (String, Option<String>) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let name = |i: u32| stops[i as usize].to_string();
        let mut out = String::new();
        for chunk in chunks {
            match m.push(chunk) {
                StopOutcome::Continue(t) => out.push_str(&t),
                StopOutcome::Stopped(t, which) => {
                    out.push_str(&t);
                    return (out, Some(name(which)));
                }
            }
        }
        let (held, which) = m.finish();
        out.push_str(&held);
        (out, which.map(name))
    }

    #[test]
    fn the_match_names_the_stop_by_its_index_in_the_request() {
        // The empty stop is dropped but still counts for the indices of the others.
        assert_eq!(
            run_which(&["", "END", "x"], &["ab", "E", "ND"]),
            ("ab".into(), Some("END".into()))
        );
        assert_eq!(
            run_which(&["b", "a"], &["xxab"]),
            ("xx".into(), Some("a".into()))
        );
        // Two starting at one place: the shorter, however the text is cut.
        for chunks in [&["xabc"][..], &["xab", "c"]] {
            assert_eq!(
                run_which(&["abc", "ab"], chunks),
                ("x".into(), Some("ab".into()))
            );
        }
        // Held ("abc" may still start at "a") until the stream ends, then cut at "b".
        assert_eq!(
            run_which(&["abc", "b"], &["xab"]),
            ("xa".into(), Some("b".into()))
        );
    }

    #[test]
    fn no_stops_passes_through() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
    }

    #[test]
    fn stop_split_across_chunks_is_cut() {
        assert_eq!(
            run(&["END"], &["hello E", "N", "D and more"]),
            ("hello ".into(), true)
        );
    }

    #[test]
    fn partial_match_is_released_when_it_fails() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("hello EN"), StopOutcome::Continue("hello ".into()));
        assert_eq!(m.push("X"), StopOutcome::Continue("ENX".into()));
        assert_eq!(m.finish(), (String::new(), None));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["b", "a"], &["xxab"]), ("xx".into(), true));
    }

    #[test]
    fn held_text_is_released_at_the_end() {
        assert_eq!(run(&["END"], &["the E"]), ("the E".into(), false));
    }

    #[test]
    fn a_longer_stop_starting_earlier_wins_whatever_the_chunking() {
        let stops = ["é", "日éa"];
        assert_eq!(run(&stops, &["日日éa日éé"]), ("日".into(), true));
        assert_eq!(run(&stops, &["日日é", "a日éé"]), ("日".into(), true));
        // The longer stop does not complete: the shorter one cuts, also at the end.
        assert_eq!(run(&stops, &["日日é", "b"]), ("日日".into(), true));
        assert_eq!(run(&["ab", "b"], &["xa", "b"]), ("x".into(), true));
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        assert_eq!(run(&["é!"], &["café", "é", "!x"]), ("café".into(), true));
        assert_eq!(
            run(&["日本"], &["今日は日", "曜"]),
            ("今日は日曜".into(), false)
        );
    }
}
