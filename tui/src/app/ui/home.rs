//! Home: the user's clusters, local and SLURM.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::theme::{self, Theme};
use crate::app::state::App;

pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let home = &app.home;
    let show_filter = home.filtering || !home.filter.is_empty();
    let [filter_area, table_area] = Layout::vertical([
        Constraint::Length(u16::from(show_filter)),
        Constraint::Min(1),
    ])
    .areas(area);
    if show_filter {
        let cursor = if home.filtering { "▏" } else { "" };
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(" / ", theme.key()),
                Span::raw(format!("{}{cursor}", home.filter)),
            ])),
            filter_area,
        );
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(" Clusters ", theme.title()));
    let visible = home.visible();
    if visible.is_empty() {
        let text = if !home.loaded {
            vec![Line::raw("looking for clusters…")]
        } else if let Some(e) = &home.error {
            vec![Line::styled(
                format!("cannot list clusters: {e}"),
                theme.error(),
            )]
        } else if !home.filter.is_empty() {
            vec![Line::raw(format!("no cluster matches {:?}", home.filter))]
        } else {
            vec![
                Line::raw("No clusters yet."),
                Line::raw(""),
                Line::from(vec![
                    Span::raw("Press "),
                    Span::styled("n", theme.key()),
                    Span::raw(" to create one (local, or on SLURM)."),
                ]),
            ]
        };
        frame.render_widget(
            Paragraph::new(text).block(block).wrap(Wrap { trim: true }),
            table_area,
        );
        return;
    }
    let header = Row::new([
        "",
        "NAME",
        "STATE",
        "ON",
        "JOBS",
        "WORKERS",
        "CORES",
        "LEFT",
        "LAST QUERY",
    ])
    .style(theme.header());
    let rows = visible.iter().enumerate().map(|(i, c)| {
        let selected = i == home.selected;
        let left = c
            .walltime_end
            .map(|end| theme::duration(end.saturating_sub(app.now)))
            .unwrap_or_else(|| "—".into());
        let last = c
            .last_query_at
            .map(|t| format!("{} ago", theme::duration(app.now.saturating_sub(t))))
            .unwrap_or_else(|| "—".into());
        let workers = match c.workers_connected {
            Some(k) => format!("{k}/{}", c.workers_asked),
            None => format!("?/{}", c.workers_asked),
        };
        let jobs = if c.job_ids.is_empty() {
            "—".to_string()
        } else {
            c.job_ids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let row = Row::new([
            Cell::from(if selected { "▶" } else { " " }),
            Cell::from(c.name.clone()),
            Cell::from(Span::styled(
                format!("{} {}", c.state.symbol(), c.state.label()),
                theme.state(c.state),
            )),
            Cell::from(c.backend.label()),
            Cell::from(jobs),
            Cell::from(workers),
            Cell::from(c.cores.to_string()),
            Cell::from(left),
            Cell::from(last),
        ]);
        if selected {
            row.style(theme.selected())
        } else {
            row
        }
    });
    // Only the rows that fit are built below; a user with hundreds of clusters scrolls.
    let height = table_area.height.saturating_sub(3) as usize;
    let offset = home.selected.saturating_sub(height.saturating_sub(1));
    let rows: Vec<Row> = rows.skip(offset).take(height.max(1)).collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Min(10),
            Constraint::Length(12),
            Constraint::Length(5),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(7),
            Constraint::Length(10),
        ],
    )
    .header(header)
    .block(block)
    .column_spacing(1);
    frame.render_widget(table, table_area);
}
