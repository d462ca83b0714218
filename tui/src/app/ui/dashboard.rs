//! Dashboard: the header (`workers=<n> cores=<m>`, state, walltime left, coordinator,
//! authentication), the workers table (and a Dask cluster's Dask panel), the tasks panel (counts, progress gauge, throughput
//! sparkline) and the result of the last query.

use std::cmp::Ordering;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Gauge, Paragraph, Row, Sparkline, Table, Wrap};

use super::theme::{self, Theme};
use crate::app::state::{App, Attached, Pane, SortKey};
use crate::app::view::{ClusterState, WorkerView};

pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(a) = &app.attached else {
        return;
    };
    let bottom_h = (area.height / 2).clamp(6, 16);
    // A third header line while the cluster adapts: its range and latest decision.
    let head_h = 3 + u16::from(a.adapt.is_some());
    let [head, workers, bottom] = Layout::vertical([
        Constraint::Length(head_h),
        Constraint::Min(3),
        Constraint::Length(bottom_h),
    ])
    .areas(area);
    header(app, a, theme, frame, head);
    if super::dask::shown(a) {
        // A Dask cluster: Dask's own workers and task totals under corral's workers.
        // It takes rows from corral's workers table, which keeps its title and header.
        let dask_h = super::dask::height(a).min(workers.height.saturating_sub(3).max(4));
        let [ours, dask] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(dask_h)]).areas(workers);
        workers_table(app, a, theme, frame, ours);
        super::dask::render(a, theme, frame, dask);
    } else {
        workers_table(app, a, theme, frame, workers);
    }
    let [tasks, result] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    tasks_panel(a, theme, frame, tasks);
    result_panel(a, theme, frame, result);
}

fn pane_block(a: &Attached, pane: Pane, title: String, theme: Theme) -> Block<'static> {
    let focused = a.focus == pane;
    let title = if focused {
        Span::styled(format!(" ▸ {title} "), theme.title())
    } else {
        Span::styled(format!(" {title} "), Style::default())
    };
    let b = Block::default().borders(Borders::ALL).title(title);
    if focused {
        b.border_style(theme.accent())
    } else {
        b
    }
}

fn header(app: &App, a: &Attached, theme: Theme, frame: &mut Frame, area: Rect) {
    let mut spans = vec![Span::styled(a.name.clone(), theme.title()), Span::raw("  ")];
    let state = if a.ended.is_some() {
        ClusterState::Ended
    } else if a.ending {
        ClusterState::Ending
    } else {
        a.snapshot
            .as_ref()
            .map_or(ClusterState::Unknown, |s| s.state)
    };
    spans.push(Span::styled(
        format!("{} {}", state.symbol(), state.label()),
        theme.state(state),
    ));
    spans.push(Span::raw("  "));
    let (n, m) = a
        .snapshot
        .as_ref()
        .map_or((0, 0), |s| (s.live_workers(), s.live_cores()));
    spans.push(Span::styled(
        format!("workers={n} cores={m}"),
        theme
            .header()
            .remove_modifier(ratatui::style::Modifier::UNDERLINED),
    ));
    if let Some(s) = &a.snapshot {
        spans.push(Span::raw(format!(" (asked {})", s.workers_asked)));
        match s.walltime_end {
            // An ended cluster has no walltime left, nor "no limit": it is over.
            _ if matches!(state, ClusterState::Ended | ClusterState::Failed) => {
                spans.push(Span::styled(
                    format!("  {}", state.label()),
                    theme.state(state),
                ));
            }
            Some(end) => spans.push(Span::raw(format!(
                "  walltime left {}",
                theme::duration(end.saturating_sub(app.now))
            ))),
            None => spans.push(Span::raw("  no walltime limit")),
        }
    }
    let mut line2 = Vec::new();
    match a.snapshot.as_ref().and_then(|s| s.address.clone()) {
        Some(addr) => line2.push(Span::raw(format!("coordinator {addr}  "))),
        None => line2.push(Span::styled("coordinator not listening yet  ", theme.dim())),
    }
    let connected = a.snapshot.as_ref().is_some_and(|s| s.authenticated) && a.lost.is_none();
    if connected {
        line2.push(Span::styled("✓ authenticated", theme.ok()));
    } else {
        let why = a
            .lost
            .clone()
            .or_else(|| a.snapshot.as_ref().and_then(|s| s.not_connected.clone()))
            .unwrap_or_else(|| "connecting…".into());
        line2.push(Span::styled(
            format!("✗ not connected: {why}"),
            theme.warn(),
        ));
    }
    if let Some(e) = &a.ended {
        line2 = vec![Span::styled(e.clone(), theme.state(ClusterState::Ended))];
    }
    let mut lines = vec![Line::from(spans), Line::from(line2)];
    if let Some(ad) = &a.adapt {
        let mut l = vec![Span::styled(format!("adapts {}", ad.range), theme.title())];
        match &ad.last {
            Some((at, what)) => l.push(Span::raw(format!(
                "  {} {}, latest {} ago: {what}",
                ad.decisions,
                if ad.decisions == 1 {
                    "decision"
                } else {
                    "decisions"
                },
                theme::duration(app.now.saturating_sub(*at))
            ))),
            None => l.push(Span::styled("  no decision yet", theme.dim())),
        }
        lines.push(Line::from(l));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::LEFT | Borders::RIGHT | Borders::TOP)),
        area,
    );
}

fn cmp_workers(key: SortKey, x: &WorkerView, y: &WorkerView) -> Ordering {
    let f = |a: f64, b: f64| a.partial_cmp(&b).unwrap_or(Ordering::Equal);
    match key {
        SortKey::Node => x.node.cmp(&y.node).then(x.task.cmp(&y.task)),
        SortKey::Cpu => f(f64::from(x.cpu_pct), f64::from(y.cpu_pct)),
        SortKey::Memory => x.rss_bytes.cmp(&y.rss_bytes),
        SortKey::TasksDone => x.tasks_done.cmp(&y.tasks_done),
        SortKey::Throughput => f(x.bytes_per_s, y.bytes_per_s),
        // Oldest heartbeat first: the worker most likely in trouble.
        SortKey::Heartbeat => x.last_heartbeat.cmp(&y.last_heartbeat),
    }
}

/// The workers in table order (what `selected` indexes).
pub fn sorted_workers(a: &Attached) -> Vec<&WorkerView> {
    let mut ws: Vec<&WorkerView> = a
        .snapshot
        .as_ref()
        .map_or(Vec::new(), |s| s.workers.iter().collect());
    ws.sort_by(|x, y| {
        let o = cmp_workers(a.sort, x, y);
        if a.sort_desc { o.reverse() } else { o }
    });
    ws
}

fn workers_table(app: &App, a: &Attached, theme: Theme, frame: &mut Frame, area: Rect) {
    let ws = sorted_workers(a);
    let dead = ws.iter().filter(|w| !w.alive && !w.left).count();
    let left = ws.iter().filter(|w| w.left).count();
    let mut title = format!("Workers ({})", ws.len());
    if dead > 0 {
        title.push_str(&format!(" · {dead} dead"));
    }
    if left > 0 {
        title.push_str(&format!(" · {left} left"));
    }
    title.push_str(&format!(
        " · sort: {}{}",
        a.sort.label(),
        if a.sort_desc { " ▼" } else { " ▲" }
    ));
    let block = pane_block(a, Pane::Workers, title, theme);
    if ws.is_empty() {
        let text = match &a.snapshot {
            None => "waiting for the first report from the coordinator…".to_string(),
            Some(_) => "no worker has connected yet".to_string(),
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let header = Row::new([
        "",
        "NODE",
        "TASK",
        "CORES",
        "CPU %",
        "MEMORY",
        "DONE",
        "MB/s",
        "HEARTBEAT",
    ])
    .style(theme.header());
    // Build only the rows that are visible: a 1,000-worker cluster must stay cheap to draw.
    let height = area.height.saturating_sub(3).max(1) as usize;
    let offset = a
        .selected
        .saturating_sub(height - 1)
        .min(ws.len().saturating_sub(1));
    let rows: Vec<Row> = ws
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .map(|(i, w)| {
            let selected = i == a.selected && a.focus == Pane::Workers;
            let age = app.now.saturating_sub(w.last_heartbeat);
            let status = if w.alive {
                Cell::from(Span::styled("●", theme.ok()))
            } else if w.left {
                Cell::from("○")
            } else {
                Cell::from("✗")
            };
            let row = Row::new([
                status,
                Cell::from(w.node.clone()),
                Cell::from(w.task.map_or("—".into(), |t| t.to_string())),
                Cell::from(w.cores.to_string()),
                Cell::from(format!("{:.0}", w.cpu_pct)),
                Cell::from(theme::bytes(w.rss_bytes)),
                Cell::from(w.tasks_done.to_string()),
                Cell::from(theme::mb_per_s(w.bytes_per_s)),
                Cell::from(if w.alive {
                    format!("{} ago", theme::duration(age))
                } else if w.left {
                    format!("left {}", theme::duration(age))
                } else {
                    format!("dead {}", theme::duration(age))
                }),
            ]);
            // Only a lost worker is an alarm; one that left on purpose is just greyed.
            let row = if w.alive {
                row
            } else if w.left {
                row.style(theme.dim())
            } else {
                row.style(theme.dead())
            };
            if selected {
                row.style(theme.selected())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Min(8),
            Constraint::Length(4),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(11),
        ],
    )
    .header(header)
    .block(block);
    frame.render_widget(table, area);
}

fn tasks_panel(a: &Attached, theme: Theme, frame: &mut Frame, area: Rect) {
    let block = pane_block(a, Pane::Tasks, "Tasks".into(), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [counts, gauge, rates, spark] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(inner);
    let t = a.snapshot.as_ref().map(|s| s.tasks).unwrap_or_default();
    let failed_style = if t.failed > 0 {
        theme.error()
    } else {
        Style::default()
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw(format!(
                "queued {}  running {}  done {}  ",
                t.queued, t.running, t.done
            )),
            Span::styled(format!("failed {}", t.failed), failed_style),
        ])),
        counts,
    );
    match &a.progress {
        Some(p) => {
            let label = format!(
                "{} {}/{} ({:.0} %)",
                if a.query_running {
                    "running"
                } else {
                    "last query"
                },
                p.partitions_done,
                p.partitions_total,
                p.ratio() * 100.0
            );
            frame.render_widget(
                Gauge::default()
                    .gauge_style(theme.accent())
                    .ratio(p.ratio())
                    .label(label)
                    .use_unicode(true),
                gauge,
            );
            frame.render_widget(
                Paragraph::new(format!(
                    "{} rows/s  {} MB/s  {} rows  {}",
                    theme::count(p.rows_per_s),
                    theme::mb_per_s(p.bytes_per_s),
                    theme::count(p.rows as f64),
                    theme::bytes(p.bytes)
                )),
                rates,
            );
        }
        None if a.query_running => frame.render_widget(
            Paragraph::new("query submitted, waiting for progress…"),
            gauge,
        ),
        None => frame.render_widget(
            Paragraph::new(Line::styled("no query running — press r", theme.dim())),
            gauge,
        ),
    }
    if spark.height > 0 {
        // The newest samples that fit, right-aligned like htop's graphs.
        let w = spark.width as usize;
        let data = &a.throughput[a.throughput.len().saturating_sub(w)..];
        let peak = data.iter().copied().max().unwrap_or(0);
        frame.render_widget(
            Sparkline::default()
                .block(Block::default().title(Span::styled(
                    format!("throughput (peak {} MB/s)", theme::mb_per_s(peak as f64)),
                    theme.dim(),
                )))
                .data(data)
                .style(theme.accent()),
            spark,
        );
    }
}

fn result_panel(a: &Attached, theme: Theme, frame: &mut Frame, area: Rect) {
    let block = pane_block(a, Pane::Result, "Result".into(), theme);
    let r = match &a.result {
        None => {
            let text = if a.query_running {
                "running…"
            } else {
                "no result yet: press r to run a query (e.g. group by payment_type, count)"
            };
            frame.render_widget(
                Paragraph::new(Line::styled(text, theme.dim()))
                    .block(block)
                    .wrap(Wrap { trim: true }),
                area,
            );
            return;
        }
        Some(Err(e)) => {
            frame.render_widget(
                Paragraph::new(Line::styled(format!("query failed: {e}"), theme.error()))
                    .block(block)
                    .wrap(Wrap { trim: true }),
                area,
            );
            return;
        }
        Some(Ok(r)) => r,
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let bad_lines = if r.bad_rows.is_empty() {
        1
    } else {
        r.bad_rows.len().min(3) as u16 + 1
    };
    let layout = result_columns(&r.columns, &r.rows, inner.width);
    let shown = layout.widths.len();
    // Totals on two short lines (never one cut at the pane's edge), the columns left out.
    let note = u16::from(shown < r.columns.len());
    let [table_area, summary] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(bad_lines + 2 + note)])
            .areas(inner);
    let header = Row::new(
        r.columns
            .iter()
            .zip(&layout.widths)
            .map(|(c, w)| Cell::from(abbreviate(c, *w))),
    )
    .style(theme.header());
    let height = table_area.height.saturating_sub(1) as usize;
    let rows: Vec<Row> = r
        .rows
        .iter()
        .skip(a.result_scroll)
        .take(height)
        .map(|row| {
            Row::new(
                row.iter()
                    .zip(&layout.widths)
                    .map(|(c, w)| Cell::from(abbreviate(c, *w))),
            )
        })
        .collect();
    let widths: Vec<Constraint> = layout
        .widths
        .iter()
        .map(|w| Constraint::Length(*w as u16))
        .collect();
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .column_spacing(layout.spacing),
        table_area,
    );
    let mut lines = vec![
        Line::raw(format!(
            "{} rows · {} · {}",
            r.good_rows,
            corral_core::text::count(r.files as u64, "file"),
            theme::bytes(r.bytes),
        )),
        Line::raw(format!(
            "{:.2} s on {} / {}",
            r.seconds,
            corral_core::text::count(r.workers, "worker"),
            corral_core::text::count(r.cores, "core")
        )),
    ];
    if shown < r.columns.len() {
        lines.push(Line::styled(
            format!(
                "+{}: corral query --json",
                corral_core::text::count((r.columns.len() - shown) as u64, "column")
            ),
            theme.warn(),
        ));
    }
    if r.bad_rows.is_empty() {
        lines.push(Line::styled("no bad rows", theme.dim()));
    } else {
        let total: u64 = r.bad_rows.iter().map(|(_, n)| n).sum();
        lines.push(Line::styled(format!("bad rows: {total}"), theme.warn()));
        for (reason, n) in r.bad_rows.iter().take(3) {
            lines.push(Line::raw(format!("  {reason}: {n}")));
        }
    }
    frame.render_widget(Paragraph::new(lines), summary);
}

/// How the Result pane lays out its columns.
#[derive(Debug, PartialEq, Eq)]
pub struct ResultColumns {
    /// The widths of the columns shown, from the left (the rest do not fit).
    pub widths: Vec<usize>,
    pub spacing: u16,
}

/// Widest a text column gets before its values are shortened (numbers never are).
const TEXT_MAX: usize = 30;

/// Columns as wide as their values — a number is never cut; headers are abbreviated to their
/// column and text values past [`TEXT_MAX`] shortened. Spacing shrinks to 1 before columns
/// are left out from the right.
pub fn result_columns(columns: &[String], rows: &[Vec<String>], width: u16) -> ResultColumns {
    let width = usize::from(width);
    let value_w = |i: usize| {
        let mut numeric = true;
        let w = rows
            .iter()
            .filter_map(|row| row.get(i))
            .map(|c| {
                numeric &= c.parse::<f64>().is_ok() || c.is_empty();
                c.chars().count()
            })
            .max()
            .unwrap_or(0);
        if numeric { w } else { w.min(TEXT_MAX) }
    };
    let values: Vec<usize> = (0..columns.len()).map(value_w).collect();
    // Whole headers first; then headers abbreviated to their values (a few characters at least).
    let whole: Vec<usize> = values
        .iter()
        .zip(columns)
        .map(|(w, c)| (*w).max(c.chars().count()))
        .collect();
    let short: Vec<usize> = values
        .iter()
        .zip(columns)
        .map(|(w, c)| (*w).max(c.chars().count().min(4)))
        .collect();
    for (widths, spacing) in [(&whole, 2u16), (&whole, 1), (&short, 2), (&short, 1)] {
        let total: usize =
            widths.iter().sum::<usize>() + usize::from(spacing) * widths.len().saturating_sub(1);
        if total <= width {
            return ResultColumns {
                widths: widths.clone(),
                spacing,
            };
        }
    }
    let all = short;
    let mut widths = Vec::new();
    let mut used = 0;
    for w in all {
        let need = if widths.is_empty() { w } else { w + 1 };
        if used + need > width && !widths.is_empty() {
            break;
        }
        used += need;
        widths.push(w);
    }
    ResultColumns { widths, spacing: 1 }
}

/// `text` in at most `width` characters, ending in `…` when shortened.
fn abbreviate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}
