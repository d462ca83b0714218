//! Numbers for people: byte sizes and durations, the same everywhere corral prints them
//! (the TUI's screens and the CLI's tables); and paragraphs wrapped to the terminal.

/// `2d 04h`, `3h 05m`, `4m 10s`, `12s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `512 B`, `3.4 MB`, `1.25 GB` (decimal units, as throughput is quoted).
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e12 {
        format!("{:.2} TB", b / 1e12)
    } else if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

/// The width paragraphs printed for people are wrapped to: the terminal's, or 100 columns when
/// stdout is not one.
pub fn text_width() -> usize {
    use std::io::IsTerminal;
    let fallback = 100;
    if !std::io::stdout().is_terminal() {
        return fallback;
    }
    crossterm::terminal::size().map_or(fallback, |(w, _)| usize::from(w).max(20))
}

/// `text` wrapped at spaces to lines of at most `width` characters (a word longer than that
/// stays whole on its own line), each line after the first starting with `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    // Nothing on the line yet but the indent.
    let mut fresh = true;
    for word in text.split_whitespace() {
        if !fresh && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_string();
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(word);
        fresh = false;
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_fit_and_keep_every_word() {
        let text =
            "Security: the coordinator will listen on one UDP port (QUIC), chosen by the kernel";
        let w = wrap(text, 30, "  ");
        assert!(w.lines().all(|l| l.chars().count() <= 30), "{w}");
        assert_eq!(
            w.split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
        assert!(w.lines().skip(1).all(|l| l.starts_with("  ")), "{w}");
        assert_eq!(wrap("a-very-long-word x", 5, ""), "a-very-long-word\nx");
    }
}
