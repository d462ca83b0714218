//! The log view: the cluster's logs, read by an effect, scrolled here.

use super::super::keymap::Action;
use super::super::msg::Cmd;
use super::super::state::{App, Popup};

impl App {
    pub(super) fn on_logs(&mut self, name: &str, result: Result<Vec<String>, String>) -> Vec<Cmd> {
        let ours = self.attached.as_ref().is_some_and(|a| a.name == name);
        if let (true, Some(Popup::Logs { lines, loading, .. })) = (ours, &mut self.popup) {
            *loading = false;
            *lines = match result {
                Ok(l) if l.is_empty() => vec!["(no log lines yet)".into()],
                Ok(l) => l,
                Err(e) => vec![format!("cannot read the logs: {e}")],
            };
        }
        Vec::new()
    }

    pub(super) fn logs_action(&mut self, a: Action) -> Vec<Cmd> {
        if let Some(Popup::Logs { lines, scroll, .. }) = &mut self.popup {
            let last = lines.len().saturating_sub(1);
            match a {
                Action::Up => *scroll = scroll.saturating_sub(1),
                Action::Down => *scroll = (*scroll + 1).min(last),
                Action::Top => *scroll = 0,
                Action::Bottom => *scroll = last,
                Action::Back => self.popup = None,
                _ => {}
            }
        }
        Vec::new()
    }
}
