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

/// `text` cut to its first `max` characters, the rest replaced by how many
/// characters were cut (`…(99,872 more characters)`): a line quoting what a
/// registry sent stays a line, whatever it sent, and says that something was
/// left out. Cut before escaping (see [`printable_cut`]), so that an escape
/// is never cut in half.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => {
            let rest = text[at..].chars().count();
            let plural = if rest == 1 { "" } else { "s" };
            format!("{}…({} more character{plural})", &text[..at], grouped(rest))
        }
    }
}

/// [`cut`] to `max` characters, then [`printable`] on one line: how text
/// from elsewhere is quoted in a message or a log line.
pub(crate) fn printable_cut(text: &str, max: usize) -> String {
    printable(&cut(text, max), Lines::Escaped)
}

/// `n` with its thousands grouped by commas, as the count of a cut reads.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
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
    fn long_text_is_cut_and_says_how_much_was_cut() {
        let long = "a".repeat(100_000);
        assert_eq!(
            cut(&long, 128),
            format!("{}…(99,872 more characters)", "a".repeat(128))
        );
        assert_eq!(cut("short", 128), "short");
        assert_eq!(cut("exactly", 7), "exactly");
        assert_eq!(cut("one more", 7), "one mor…(1 more character)");
        // Characters, not bytes: a cut never splits one.
        assert_eq!(cut("ééé", 2), "éé…(1 more character)");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn a_cut_comes_before_the_escape_so_no_escape_is_split() {
        let text = format!("{}\u{202e}tail", "x".repeat(9));
        // The override is the tenth character: kept whole, and escaped.
        assert_eq!(
            printable_cut(&text, 10),
            format!("{}\\u{{202e}}…(4 more characters)", "x".repeat(9))
        );
        assert_eq!(
            printable_cut(&text, 9),
            format!("{}…(5 more characters)", "x".repeat(9))
        );
    }

    #[test]
    fn kept_lines_keep_newlines_and_tabs_only() {
        assert_eq!(
            printable("one\n\ttwo\r\n\u{1b}[2K", Lines::Kept),
            "one\n\ttwo\\r\n\\u{1b}[2K"
        );
    }
}
