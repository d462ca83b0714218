//! Scaling: runtime against cores with the ideal (linear) curve, speedup and efficiency per
//! point, and the knee in words (`corral_core::scaling::analyze`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Row, Table, Wrap,
};

use corral_core::scaling::{self, Point};

use super::theme::Theme;
use crate::app::state::App;

pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(a) = &app.attached else {
        return;
    };
    let sw = &a.sweep;
    let all: Vec<Point> = sw.history.iter().chain(sw.points.iter()).copied().collect();
    let analysis = scaling::analyze(&all, scaling::DEFAULT_THRESHOLD);
    let [top, bottom] = Layout::vertical([Constraint::Min(6), Constraint::Length(3)]).areas(area);
    let wide = area.width >= 120;
    let [chart_area, table_area] = if wide {
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(top)
    } else {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top)
    };

    let measured: Vec<(f64, f64)> = analysis
        .points
        .iter()
        .map(|p| (f64::from(p.cores), p.seconds))
        .collect();
    let ideal: Vec<(f64, f64)> = match analysis.points.first() {
        Some(first) => {
            let max_c = analysis.points.last().map_or(first.cores, |p| p.cores);
            // t(c) = t0 · c0 / c, sampled densely so the curve reads as a curve.
            (0..=64)
                .map(|i| {
                    let c = f64::from(first.cores)
                        + (f64::from(max_c) - f64::from(first.cores)) * f64::from(i) / 64.0;
                    (c, first.seconds * f64::from(first.cores) / c)
                })
                .collect()
        }
        None => Vec::new(),
    };
    let max_c = analysis.points.last().map_or(1.0, |p| f64::from(p.cores));
    let max_t = analysis
        .points
        .iter()
        .map(|p| p.seconds)
        .fold(0.0, f64::max)
        .max(0.001);
    let datasets = vec![
        Dataset::default()
            .name("ideal")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.dim())
            .data(&ideal),
        Dataset::default()
            .name("measured")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(theme.accent())
            .data(&measured),
    ];
    let title = match (&sw.query, sw.running) {
        (_, true) => format!(
            " Runtime vs cores · sweeping {}/{} ",
            sw.points.len(),
            sw.planned.len()
        ),
        _ => " Runtime vs cores ".to_string(),
    };
    let chart = Chart::new(datasets)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(Span::styled(title, theme.title())),
        )
        .x_axis(
            Axis::default()
                .title("cores")
                .bounds([0.0, max_c * 1.05])
                .labels(["0".to_string(), format!("{}", max_c as u64)]),
        )
        .y_axis(
            Axis::default()
                .title("s")
                .bounds([0.0, max_t * 1.1])
                .labels(["0".to_string(), format!("{max_t:.1}")]),
        );
    frame.render_widget(chart, chart_area);

    let header = Row::new(["CORES", "SECONDS", "SPEEDUP", "IDEAL", "EFFIC.", "SAVED/2×"])
        .style(theme.header());
    let rows: Vec<Row> = analysis
        .points
        .iter()
        .map(|p| {
            let saved = p
                .saving_per_doubling
                .map_or("—".into(), |s| format!("{:.0} %", s * 100.0));
            let row = Row::new([
                p.cores.to_string(),
                format!("{:.2}", p.seconds),
                format!("{:.2}×", p.speedup),
                format!("{:.0}×", p.ideal_speedup),
                format!("{:.0} %", p.efficiency * 100.0),
                saved,
            ]);
            if Some(p.cores) == analysis.knee {
                row.style(theme.ok().add_modifier(ratatui::style::Modifier::BOLD))
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(8),
        ],
    )
    .header(header)
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(Span::styled(" Points ", theme.title())),
    );
    frame.render_widget(table, table_area);

    let mut lines = vec![Line::from(vec![
        Span::styled("Recommendation: ", theme.title()),
        Span::raw(crate::sweep::recommendation(
            &analysis,
            sw.shortfall.as_deref(),
        )),
    ])];
    if let Some(e) = &sw.error {
        lines.push(Line::styled(format!("sweep: {e}"), theme.error()));
    } else if sw.running {
        lines.push(Line::styled(
            format!("running on {:?} cores…", sw.planned),
            theme.dim(),
        ));
    } else if !sw.history.is_empty() {
        lines.push(Line::styled(
            format!(
                "{} earlier run(s) from the ledger included",
                sw.history.len()
            ),
            theme.dim(),
        ));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), bottom);
}
