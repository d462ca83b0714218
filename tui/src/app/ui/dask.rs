//! The Dask panel of a Dask cluster's dashboard: Dask's workers (memory, tasks processing, in
//! memory, erred) and the task stream's totals, as the scheduler reports them (read through the
//! dashboard tunnel). corral's own workers stay in the table above it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::theme::{self, Theme};
use crate::app::state::Attached;
use crate::app::view::DaskView;

/// Whether the attached cluster gets a Dask panel: it has a dashboard, or Dask was read.
pub fn shown(a: &Attached) -> bool {
    a.dask.is_some() || a.snapshot.as_ref().is_some_and(|s| s.dashboard)
}

/// The panel's height for `a` (its workers, up to a few, plus title, header and totals).
pub fn height(a: &Attached) -> u16 {
    let workers = match &a.dask {
        Some(Ok(v)) => v.workers.len().max(1),
        _ => 1,
    };
    (workers as u16).min(6) + 4
}

fn title(v: Option<&DaskView>) -> String {
    match v {
        Some(v) => format!(
            "Dask · {} · processing {} · in memory {} · erred {}",
            corral_core::text::count(v.workers.len() as u64, "worker"),
            v.counts.processing,
            v.counts.in_memory,
            v.counts.erred
        ),
        None => "Dask".into(),
    }
}

/// `task stream: 120 done · 1 erred · 3.2 s computing — read-csv 60, value-counts 60`.
fn stream_line(v: &DaskView, theme: Theme) -> Line<'static> {
    if let Some(why) = &v.metrics_missing {
        return Line::styled(format!("task stream: {why}"), theme.dim());
    }
    let t = v.task_totals();
    let mut s = format!(
        "task stream: {} done · {} erred · {} computing",
        t.done,
        t.erred,
        seconds(t.compute_seconds)
    );
    let top: Vec<String> = v
        .prefixes
        .iter()
        .take(4)
        .map(|p| {
            if p.erred > 0 {
                format!("{} {} ({} erred)", p.prefix, p.done, p.erred)
            } else {
                format!("{} {}", p.prefix, p.done)
            }
        })
        .collect();
    if !top.is_empty() {
        s.push_str(" — ");
        s.push_str(&top.join(", "));
    }
    let style = if t.erred > 0 {
        theme.warn()
    } else {
        ratatui::style::Style::default()
    };
    Line::styled(s, style)
}

/// Compute time, readable from microseconds to hours.
fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else {
        theme::duration(s as u64)
    }
}

pub fn render(a: &Attached, theme: Theme, frame: &mut Frame, area: Rect) {
    let view = match &a.dask {
        Some(Ok(v)) => Some(v.as_ref()),
        _ => None,
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(format!(" {} ", title(view)), theme.title()));
    let Some(v) = view else {
        let (text, style) = match &a.dask {
            Some(Err(e)) => (
                format!(
                    "cannot read Dask's dashboard: {}",
                    corral_core::text::terminal_safe(e)
                ),
                theme.warn(),
            ),
            _ => (
                "reading Dask's scheduler through the dashboard tunnel…".into(),
                theme.dim(),
            ),
        };
        frame.render_widget(
            Paragraph::new(Line::styled(text, style))
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows_h = inner.height.saturating_sub(2);
    let [table_area, stream_area] =
        ratatui::layout::Layout::vertical([Constraint::Length(rows_h + 1), Constraint::Length(1)])
            .areas(inner);
    let header = Row::new([
        "DASK WORKER",
        "THREADS",
        "MEMORY",
        "PROCESSING",
        "IN MEMORY",
        "ERRED",
    ])
    .style(theme.header());
    let shown = rows_h.max(1) as usize;
    // When not every worker fits, the last row is all of them together.
    let (listed, total) = if v.workers.len() > shown {
        (shown - 1, true)
    } else {
        (v.workers.len(), false)
    };
    let memory = |used: u64, limit: u64| {
        if limit > 0 {
            format!("{} / {}", theme::bytes(used), theme::bytes(limit))
        } else {
            theme::bytes(used)
        }
    };
    let mut rows: Vec<Row> = v
        .workers
        .iter()
        .take(listed)
        .map(|w| {
            let row = Row::new([
                Cell::from(corral_core::text::terminal_safe(&w.name).into_owned()),
                Cell::from(w.nthreads.to_string()),
                Cell::from(memory(w.memory_bytes, w.memory_limit)),
                Cell::from(w.processing.to_string()),
                Cell::from(w.in_memory.to_string()),
                Cell::from(w.erred.to_string()),
            ]);
            if w.erred > 0 {
                row.style(theme.warn())
            } else if w.status != "running" && !w.status.is_empty() {
                row.style(theme.dim())
            } else {
                row
            }
        })
        .collect();
    if v.workers.is_empty() {
        rows.push(Row::new([Cell::from(Span::styled(
            "no Dask worker has joined the scheduler yet",
            theme.dim(),
        ))]));
    } else if total {
        let sum =
            |f: fn(&crate::app::view::DaskWorker) -> u64| v.workers.iter().map(f).sum::<u64>();
        let label = if listed == 0 {
            format!("all {}", v.workers.len())
        } else {
            format!(
                "all {} ({} more)",
                v.workers.len(),
                v.workers.len() - listed
            )
        };
        rows.push(
            Row::new([
                Cell::from(label),
                Cell::from(sum(|w| u64::from(w.nthreads)).to_string()),
                Cell::from(memory(sum(|w| w.memory_bytes), sum(|w| w.memory_limit))),
                Cell::from(sum(|w| w.processing).to_string()),
                Cell::from(sum(|w| w.in_memory).to_string()),
                Cell::from(sum(|w| w.erred).to_string()),
            ])
            .style(theme.title()),
        );
    }
    let table = Table::new(
        rows,
        [
            Constraint::Min(14),
            Constraint::Length(7),
            Constraint::Length(19),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(5),
        ],
    )
    .header(header);
    frame.render_widget(table, table_area);
    frame.render_widget(Paragraph::new(stream_line(v, theme)), stream_area);
}
