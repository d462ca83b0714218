//! Styles and number formats shared by the screens. Colour is an extra: every state also has a
//! symbol or a word, and selection is reversed + bold, so `NO_COLOR` loses nothing.

use ratatui::style::{Color, Modifier, Style};

use crate::app::view::ClusterState;

#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn state(self, s: ClusterState) -> Style {
        let st = match s {
            ClusterState::Running => self.fg(Color::Green),
            ClusterState::Pending | ClusterState::Starting => self.fg(Color::Yellow),
            ClusterState::Ending => self.fg(Color::Magenta),
            ClusterState::Failed => self.fg(Color::Red),
            ClusterState::Ended | ClusterState::Unknown => self.fg(Color::DarkGray),
        };
        st.add_modifier(Modifier::BOLD)
    }

    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }

    pub fn dead(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    pub fn warn(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    pub fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn header(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    pub fn accent(self) -> Style {
        self.fg(Color::Cyan)
    }
}

pub use crate::human::{bytes, duration};

/// `12.3` (MB/s, one decimal).
pub fn mb_per_s(bytes_per_s: f64) -> String {
    format!("{:.1}", bytes_per_s / 1e6)
}

/// `1.2 M`, `34.5 k`, `999`.
pub fn count(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.1} G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(250), "4m 10s");
        assert_eq!(duration(3 * 3600 + 300), "3h 05m");
        assert_eq!(duration(86_400 * 2 + 3600 * 4), "2d 04h");
        assert_eq!(bytes(3_400_000), "3.4 MB");
        assert_eq!(mb_per_s(12_345_678.0), "12.3");
        assert_eq!(count(34_500.0), "34.5 k");
    }
}
