//! The new-cluster wizard: fields with their allowed range and verdict, the start estimate,
//! and the security notice the user reads before submitting.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::theme::Theme;
use crate::app::state::App;
use crate::app::view::Backend;
use crate::app::wizard::{FIELDS, SlurmReach, WizField};

pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let w = &app.wizard;
    let limits = app.limits.as_ref();
    let checked = w.check(limits, &app.cluster_names());
    let wide = area.width >= 120;
    let (form_area, side) = if wide {
        let [l, r] = Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
            .areas(area);
        (l, r)
    } else {
        let [t, b] = Layout::vertical([
            Constraint::Length(FIELDS.len() as u16 + 2),
            Constraint::Min(3),
        ])
        .areas(area);
        (t, b)
    };

    // The form: one row per field: marker, label, value (with a cursor), range, verdict mark.
    let label_w = 18usize;
    let value_w = if wide { 26usize } else { 22 };
    let mut lines = Vec::new();
    for (i, f) in FIELDS.iter().enumerate() {
        let focused = i == w.focus;
        let mut value = w.value(*f, limits);
        if focused && f.is_text() {
            value.push('▏');
        }
        let mark = match f.verdict_field() {
            Some(vf) => match checked.problem(vf) {
                Some(_) => Span::styled("✗", theme.error()),
                None => Span::styled("✓", theme.ok()),
            },
            None => Span::raw(" "),
        };
        let value_style = if *f == WizField::Submit && checked.is_clean() {
            theme.ok().add_modifier(ratatui::style::Modifier::BOLD)
        } else {
            ratatui::style::Style::default()
        };
        let mut spans = vec![
            Span::raw(if focused { "▶ " } else { "  " }),
            Span::raw(format!("{:<label_w$}", f.label())),
            Span::styled(format!("{value:<value_w$}"), value_style),
            mark,
            Span::raw(" "),
            Span::styled(w.range(*f, limits, &checked), theme.dim()),
        ];
        if focused {
            spans[1] = Span::styled(format!("{:<label_w$}", f.label()), theme.selected());
        }
        lines.push(Line::from(spans));
    }
    let title = match w.backend {
        Backend::Local => " New cluster · local ",
        Backend::Slurm => " New cluster · SLURM ",
    };
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(Span::styled(title, theme.title())),
        ),
        form_area,
    );

    // Verdict, estimate and the security notice.
    let mut lines = Vec::new();
    match &w.slurm {
        SlurmReach::Loading => {
            lines.push(Line::styled("asking SLURM for partitions…", theme.dim()))
        }
        SlurmReach::Unavailable(e) if w.backend == Backend::Slurm => lines.push(Line::styled(
            format!("SLURM is not reachable: {e}"),
            theme.error(),
        )),
        SlurmReach::Unavailable(_) => lines.push(Line::styled(
            "no SLURM here: local clusters only",
            theme.dim(),
        )),
        SlurmReach::Ready => {}
    }
    for p in &checked.problems {
        lines.push(Line::from(vec![
            Span::styled("✗ ", theme.error()),
            Span::raw(p.message.clone()),
        ]));
    }
    if checked.is_clean() {
        let text = match (w.backend, &w.estimate) {
            (Backend::Local, _) => {
                let fit = checked.spec.as_ref().map(|s| {
                    corral_core::backend::local_fit::local_fit(
                        s.workers,
                        s.cores_per_worker,
                        app.machine_cores,
                    )
                });
                match fit {
                    Some(f) if !f.fits() => {
                        lines.push(Line::styled(format!("⚠ {}", f.words()), theme.warn()));
                        String::new()
                    }
                    Some(f) => format!("✓ {}", f.words()),
                    None => String::new(),
                }
            }
            (Backend::Slurm, None) => "✓ fits the partition; estimating the start…".into(),
            (Backend::Slurm, Some(Ok(start))) => format!("✓ fits; estimated start: {start}"),
            (Backend::Slurm, Some(Err(e))) => format!("✓ fits; no start estimate ({e})"),
        };
        if !text.is_empty() {
            lines.push(Line::styled(text, theme.ok()));
        }
    }
    if let Some(e) = &w.error {
        lines.push(Line::styled(format!("submit failed: {e}"), theme.error()));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Before you submit — what will listen where",
        theme.warn(),
    ));
    let name = if w.name.is_empty() {
        "<name>"
    } else {
        w.name.as_str()
    };
    let node = match w.backend {
        Backend::Local => "this machine",
        Backend::Slurm => "the first node of the allocation",
    };
    lines.push(Line::raw(format!(
        "• Only holders of the cluster's secret can connect; it lives in {}/{name}/secret, mode 0600.",
        app.clusters_dir_display
    )));
    lines.push(Line::raw(format!(
        "• The coordinator on {node} listens on one UDP port (QUIC); workers listen nowhere."
    )));
    frame.render_widget(
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(Span::styled(" Check ", theme.title())),
            )
            .wrap(Wrap { trim: false }),
        side,
    );
}
