//! Popups drawn over the current screen: cancel confirmation, "how many workers", the query
//! form, logs and the partition picker.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::centered;
use super::theme::Theme;
use crate::app::query_form::QFIELDS;
use crate::app::state::{App, Popup};
use crate::app::wizard::describe_partition;

fn frame_popup(frame: &mut Frame, area: Rect, title: &str, theme: Theme, lines: Vec<Line>) {
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.accent())
                    .title(Span::styled(format!(" {title} "), theme.title())),
            )
            .wrap(Wrap { trim: false }),
        area,
    );
}

pub fn render(app: &App, popup: &Popup, theme: Theme, frame: &mut Frame, body: Rect) {
    match popup {
        Popup::ConfirmCancel { name, core_hours } => {
            let used = match core_hours {
                Some(h) => format!("It has used {h:.2} core-hours so far."),
                None => "Core-hours used so far: not known yet.".into(),
            };
            let lines = vec![
                Line::raw(format!("Cancel cluster {name}?")),
                Line::raw("Every job of it is cancelled; running queries stop."),
                Line::raw(used),
                Line::raw(""),
                Line::from(vec![
                    Span::styled("y", theme.key()),
                    Span::raw(": cancel it    "),
                    Span::styled("any other key", theme.key()),
                    Span::raw(": keep it running"),
                ]),
            ];
            frame_popup(frame, centered(body, 56, 7), "Cancel?", theme, lines);
        }
        Popup::AskWorkers { add, input } => {
            let q = if *add {
                "Add how many workers?"
            } else {
                "Remove how many workers?"
            };
            let lines = vec![
                Line::from(vec![
                    Span::raw(format!("{q} ")),
                    Span::styled(format!("{input}▏"), theme.selected()),
                ]),
                Line::raw(""),
                Line::from(vec![
                    Span::styled("Enter", theme.key()),
                    Span::raw(": scale    "),
                    Span::styled("Esc", theme.key()),
                    Span::raw(": never mind"),
                ]),
            ];
            let title = if *add { "Scale up" } else { "Scale down" };
            frame_popup(frame, centered(body, 44, 5), title, theme, lines);
        }
        Popup::QueryForm(form) => {
            let mut lines = Vec::new();
            for (i, f) in QFIELDS.iter().enumerate() {
                let focused = i == form.focus;
                let label = Span::styled(
                    format!("{:<15}", f.label()),
                    if focused {
                        theme.selected()
                    } else {
                        theme.title()
                    },
                );
                let cursor = if focused { "▏" } else { "" };
                lines.push(Line::from(vec![
                    Span::raw(if focused { "▶ " } else { "  " }),
                    label,
                    Span::raw(format!(" {}{cursor}", form.value(*f))),
                ]));
                // Only the focused field's hint: the form fits 80×24 with four fields.
                if focused {
                    lines.push(Line::styled(
                        format!("                  {}", f.hint()),
                        theme.dim(),
                    ));
                }
            }
            lines.push(Line::raw(""));
            if let Some(e) = &form.error {
                // A SQL error's caret line sits under the query: keep its lines.
                for (i, l) in e.lines().enumerate() {
                    let mark = if i == 0 { "✗ " } else { "  " };
                    lines.push(Line::styled(format!("{mark}{l}"), theme.error()));
                }
            }
            lines.push(Line::from(vec![
                Span::styled("Enter", theme.key()),
                Span::raw(": run    "),
                Span::styled("Tab", theme.key()),
                Span::raw(": next field    "),
                Span::styled("Esc", theme.key()),
                Span::raw(": close"),
            ]));
            let w = body.width.saturating_sub(4).min(90);
            let h = 3
                + 2 * QFIELDS.len() as u16
                + form.error.as_ref().map_or(0, |e| e.lines().count() as u16);
            frame_popup(frame, centered(body, w, h), "Query", theme, lines);
        }
        Popup::Logs {
            lines,
            scroll,
            loading,
        } => {
            let area = centered(
                body,
                body.width.saturating_sub(4),
                body.height.saturating_sub(2),
            );
            let text: Vec<Line> = if *loading {
                vec![Line::styled("reading logs…", theme.dim())]
            } else {
                lines
                    .iter()
                    .skip(*scroll)
                    .take(area.height as usize)
                    .map(|l| Line::raw(l.clone()))
                    .collect()
            };
            frame_popup(frame, area, "Logs (j/k, g/G, Esc)", theme, text);
        }
        Popup::Picker { selected } => {
            let parts = app.limits.as_ref().map_or(&[][..], |l| &l.partitions[..]);
            let mut lines: Vec<Line> = parts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let text = format!(
                        "{} {}",
                        if i == *selected { "▶" } else { " " },
                        describe_partition(p)
                    );
                    if i == *selected {
                        Line::styled(text, theme.selected())
                    } else {
                        Line::raw(text)
                    }
                })
                .collect();
            if lines.is_empty() {
                lines.push(Line::raw("no partitions known"));
            }
            lines.push(Line::styled("* default partition", theme.dim()));
            let h = (lines.len() as u16 + 2).min(body.height);
            let w = body.width.saturating_sub(4).min(100);
            frame_popup(frame, centered(body, w, h), "Partition", theme, lines);
        }
    }
}
