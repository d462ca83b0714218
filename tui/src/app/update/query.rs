//! The query form and running a query on the attached cluster.

use corral_core::aggregate::Query;

use super::super::keymap::Action;
use super::super::msg::Cmd;
use super::super::query_form::{HISTORY, QFIELDS};
use super::super::state::{App, Pane, Popup, Severity};
use super::super::view::ResultView;

impl App {
    pub(super) fn on_query_done(
        &mut self,
        name: &str,
        result: Result<ResultView, String>,
    ) -> Vec<Cmd> {
        if let Some(a) = self.attached_mut(name) {
            a.query_running = false;
            a.result_scroll = 0;
            match &result {
                // The gauge shows the finished query, not the last progress seen
                // (a fast query may finish before any progress reports a partition).
                Ok(r) => a.progress = Some(r.final_progress()),
                Err(e) => {
                    self.flash = Some((format!("query failed: {e}"), Severity::Error));
                }
            }
            if let Some(a) = self.attached_mut(name) {
                a.result = Some(result);
            }
        }
        Vec::new()
    }

    pub(super) fn query_form_action(&mut self, action: Action) -> Vec<Cmd> {
        let Some(Popup::QueryForm(form)) = &mut self.popup else {
            return Vec::new();
        };
        match action {
            Action::Down => form.focus = (form.focus + 1).min(QFIELDS.len() - 1),
            Action::Up => form.focus = form.focus.saturating_sub(1),
            Action::Left => form.browse(true),
            Action::Right => form.browse(false),
            Action::DeleteChar => {
                form.text_mut().pop();
            }
            Action::Back => self.popup = None,
            Action::Submit => match form.parse() {
                Err(e) => form.error = Some(e),
                Ok(query) => {
                    self.popup = None;
                    return self.run_query(query);
                }
            },
            _ => {}
        }
        Vec::new()
    }

    /// Runs `query` on the attached cluster; the tasks pane follows it.
    pub(super) fn run_query(&mut self, query: Query) -> Vec<Cmd> {
        if self.attached.is_none() {
            return Vec::new();
        }
        if let Some(sel) = &query.select {
            self.sql_history.retain(|s| *s != sel.sql);
            self.sql_history.push(sel.sql.clone());
            let over = self.sql_history.len().saturating_sub(HISTORY);
            self.sql_history.drain(..over);
        }
        let Some(a) = self.attached.as_mut() else {
            return Vec::new();
        };
        a.last_query = Some(query.clone());
        a.query_running = true;
        a.progress = None;
        a.result = None;
        a.focus = Pane::Tasks;
        vec![Cmd::RunQuery {
            name: a.name.clone(),
            query,
        }]
    }
}
