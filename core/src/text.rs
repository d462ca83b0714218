//! Text from data files, file names and other users made safe to print on a terminal.
//!
//! A CSV file in a shared directory can hold escape sequences that retitle the terminal,
//! rewrite what is on screen, or write the clipboard (OSC 52). Everything corral prints for
//! people passes through [`terminal_safe`]: control characters (C0, DEL, C1) and the Unicode
//! bidirectional overrides are shown as escapes (`\x1b`, `\u{202e}`), everything else as is.
//! JSON output needs nothing: JSON escapes control characters itself.

use std::borrow::Cow;

/// Whether `c` would be interpreted by a terminal (or reorder the text around it) rather than
/// shown.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character and bidi override escaped; borrowed when there is none.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path made safe to print (see [`terminal_safe`]); non-UTF-8 bytes show as U+FFFD.
pub fn path_safe(p: &std::path::Path) -> String {
    terminal_safe(&p.to_string_lossy()).into_owned()
}

/// `n` and the noun, plural when `n` is not 1: `count(1, "worker")` is "1 worker",
/// `count(3, "query")` "3 queries", `count(0, "CPU")` "0 CPUs". One rule for every count
/// corral prints in words.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        return format!("1 {noun}");
    }
    let bytes = noun.as_bytes();
    let consonant_y = bytes.len() >= 2
        && bytes[bytes.len() - 1] == b'y'
        && !b"aeiou".contains(&bytes[bytes.len() - 2]);
    if consonant_y {
        format!("{n} {}ies", &noun[..noun.len() - 1])
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_only_for_one() {
        assert_eq!(count(1u32, "worker"), "1 worker");
        assert_eq!(count(0u32, "worker"), "0 workers");
        assert_eq!(count(2u64, "CPU"), "2 CPUs");
        assert_eq!(count(1u32, "query"), "1 query");
        assert_eq!(count(3u32, "query"), "3 queries");
        assert_eq!(count(2u32, "day"), "2 days");
    }

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        // OSC 0 (window title), OSC 52 (clipboard), CSI (erase screen), C1 CSI, bidi override.
        let evil = "a\u{1b}]0;pwned\u{7}b\u{1b}]52;c;Zm9v\u{7}\u{1b}[2J\u{9b}1m\u{202e}z";
        let safe = terminal_safe(evil);
        assert_eq!(
            safe,
            "a\\x1b]0;pwned\\x07b\\x1b]52;c;Zm9v\\x07\\x1b[2J\\u{9b}1m\\u{202e}z"
        );
        assert!(!safe.chars().any(unsafe_char));
        assert_eq!(terminal_safe("line\nnext\ttab\r"), "line\\nnext\\ttab\\r");
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for s in ["", "payment_type", "Zürich, 東京 — ok", "\"quoted\""] {
            assert!(matches!(terminal_safe(s), Cow::Borrowed(b) if b == s));
        }
    }
}
