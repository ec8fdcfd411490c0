//! Text a registry sends, made safe to print. (A URL is shown through
//! [`crate::registry::SafeUrl`], which holds only its safe form.)

/// Text a registry sent (an error message), made safe to print: control
/// characters (CR, LF, ESC and the rest) are shown escaped, so a hostile
/// registry cannot forge output lines or drive the terminal.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_text_cannot_forge_lines_or_escape_sequences() {
        let hostile = "denied\r\nresult: 9 done, 0 failed\u{1b}[2K";
        let shown = printable(hostile);
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert_eq!(shown, "denied\\r\\nresult: 9 done, 0 failed\\u{1b}[2K");
        assert_eq!(printable("plain text: fine"), "plain text: fine");
    }
}
