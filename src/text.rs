//! Text from elsewhere (a registry's error, a manifest's field, a hook's
//! output) made safe to show: the one escaper, at the floor so that every
//! module that quotes such text can use it.

/// What [`printable`] does with line breaks and tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lines {
    /// Escaped like every other control: the text is shown on one line (a
    /// value quoted inside a message).
    Escaped,
    /// Kept: the text is shown as the lines it has (a hook's output).
    Kept,
}

/// `text` with what could forge output or mislead a reader shown escaped,
/// as Rust writes it (`\r`, `\n`, `\u{1b}`, `\u{202e}`): control characters
/// (C0, DEL, C1), so text cannot forge lines or drive a terminal; line and
/// paragraph separators, which some viewers break lines at; and Unicode's
/// bidirectional embedding, override and isolate controls (U+202A–U+202E,
/// U+2066–U+2069), so text cannot reorder what is shown around it.
pub(crate) fn printable(text: &str, lines: Lines) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let kept = lines == Lines::Kept && matches!(c, '\n' | '\t');
        if !kept && misleads(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn misleads(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_forge_lines_or_escape_sequences() {
        let hostile = "denied\r\nresult: 9 done, 0 failed\u{1b}[2K";
        let shown = printable(hostile, Lines::Escaped);
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert_eq!(shown, "denied\\r\\nresult: 9 done, 0 failed\\u{1b}[2K");
        assert_eq!(
            printable("plain text: fine, ünïcode too", Lines::Escaped),
            "plain text: fine, ünïcode too"
        );
        assert_eq!(printable("a\u{2028}b", Lines::Escaped), "a\\u{2028}b");
    }

    #[test]
    fn bidirectional_controls_cannot_reorder_what_is_shown() {
        // "Trojan source": U+202E makes a terminal show what follows right
        // to left, so `exe.txt` could read as `txt.exe`.
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            let shown = printable(&format!("a{c}b"), Lines::Kept);
            assert_eq!(shown, format!("a\\u{{{:x}}}b", c as u32));
        }
        // The marks beside them are not controls of embedding or override.
        assert_eq!(printable("a\u{200E}b", Lines::Escaped), "a\u{200E}b");
    }

    #[test]
    fn kept_lines_keep_newlines_and_tabs_only() {
        assert_eq!(
            printable("one\n\ttwo\r\n\u{1b}[2K", Lines::Kept),
            "one\n\ttwo\\r\n\\u{1b}[2K"
        );
    }
}
