//! Pending: where the head job is, why it waits (in plain words), how long it has waited, and
//! workers arriving.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::theme::{self, Theme};
use crate::app::state::App;

pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(a) = &app.attached else {
        return;
    };
    let label = |s: &str| {
        Span::styled(
            format!("{s:<10}"),
            theme
                .header()
                .remove_modifier(ratatui::style::Modifier::UNDERLINED),
        )
    };
    let mut lines = Vec::new();
    lines.push(Line::from(vec![
        label("Cluster"),
        Span::styled(a.name.clone(), theme.title()),
        Span::raw(format!(" ({})", a.backend.label())),
    ]));
    let since = a
        .job
        .as_ref()
        .and_then(|j| j.submitted_at)
        .unwrap_or(a.since);
    match &a.job {
        Some(j) => {
            lines.push(Line::from(vec![
                label("Job"),
                Span::raw(j.job_id.to_string()),
            ]));
            let st = if j.state == "PENDING" {
                theme.warn()
            } else {
                theme.ok()
            };
            lines.push(Line::from(vec![
                label("State"),
                Span::styled(j.state.clone(), st),
            ]));
            if !j.reason_code.is_empty() && j.reason_code != "None" || j.state == "PENDING" {
                let style = if j.never_starts {
                    theme.error()
                } else {
                    Style::default()
                };
                lines.push(Line::from(vec![
                    label("Reason"),
                    Span::styled(j.reason.clone(), style),
                ]));
            }
            if j.never_starts {
                lines.push(Line::from(vec![
                    label(""),
                    Span::styled(
                        "this job can never start as submitted: press c to cancel it, then ask for less",
                        theme.error(),
                    ),
                ]));
            }
        }
        None => {
            let what = if app.wizard.submitting {
                "submitting…"
            } else {
                "asking where the job is…"
            };
            lines.push(Line::from(vec![
                label("State"),
                Span::styled(what, theme.warn()),
            ]));
        }
    }
    lines.push(Line::from(vec![
        label("Waited"),
        Span::raw(theme::duration(app.now.saturating_sub(since))),
    ]));
    // Before the first snapshot, the count asked for is still known: from the wizard's spec,
    // or the cluster's Home row (which may arrive after the attach).
    let asked = a.workers_asked.or_else(|| {
        app.home
            .clusters
            .iter()
            .find(|c| c.name == a.name)
            .map(|c| c.workers_asked)
    });
    let (k, n) = match &a.snapshot {
        Some(s) => (s.live_workers().to_string(), s.workers_asked.to_string()),
        None => ("0".into(), asked.map_or("?".into(), |n| n.to_string())),
    };
    lines.push(Line::from(vec![
        label("Workers"),
        Span::raw(format!("{k}/{n} connected")),
    ]));
    if let Some(ended) = &a.ended {
        lines.push(Line::raw(""));
        lines.push(Line::styled(ended.clone(), theme.error()));
    }
    if let Some(lost) = &a.lost {
        lines.push(Line::raw(""));
        lines.push(Line::styled(format!("not watching: {lost}"), theme.warn()));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!(
            "The dashboard opens by itself once the cluster runs. q detaches: the job stays \
             queued and starts later, holding its CPUs; c cancels it now, `corral down {}` later.",
            a.name
        ),
        theme.dim(),
    ));
    frame.render_widget(
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(Span::styled(" Waiting to start ", theme.title())),
            )
            .wrap(Wrap { trim: false }),
        area,
    );
}

use ratatui::style::Style;
