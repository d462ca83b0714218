//! A notice as bytes for the user's terminal: a bell, then OSC 9 (iTerm2, Windows Terminal,
//! kitty, WezTerm, foot, …) and OSC 777 (`notify;TITLE;BODY`: rxvt, VTE-based terminals,
//! WezTerm). Terminals that know neither ignore them; both travel over SSH as ordinary output.
//! The TUI writes them between frames; they move no cursor.

use super::Notice;

/// What is written: `BEL`, `ESC ] 9 ; TEXT BEL`, `ESC ] 777 ; notify ; TITLE ; BODY BEL`.
pub fn sequence(n: &Notice) -> String {
    let title = clean(&n.title);
    let body = clean(&n.body);
    // OSC 777 separates its fields with ';': none inside them.
    let (t7, b7) = (title.replace(';', ","), body.replace(';', ","));
    format!("\x07\x1b]9;{title}: {body}\x07\x1b]777;notify;{t7};{b7}\x07")
}

/// Text from cluster names, node names and SLURM: no control characters (an ESC or BEL
/// inside would end the sequence early or start another one).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Kind;

    #[test]
    fn bell_osc9_osc777_with_nothing_that_ends_them_early() {
        let n = Notice {
            key: "k".into(),
            kind: Kind::Ready,
            cluster: "c".into(),
            title: "corral: cluster c is ready".into(),
            body: "2 workers; node\x07x\x1b]".into(),
        };
        assert_eq!(
            sequence(&n),
            "\x07\x1b]9;corral: cluster c is ready: 2 workers; node x ]\x07\
             \x1b]777;notify;corral: cluster c is ready;2 workers, node x ]\x07"
        );
    }
}
