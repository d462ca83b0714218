//! `render(&App, &mut Frame)`: pure drawing. It reads the app and the frame size and nothing
//! else (no clock, no files), so a snapshot of a state is the same on every machine.
//!
//! - `theme`: styles and number formats; colour is never the only carrier of meaning.
//! - one module per screen (`home`, `wizard`, `pending`, `dashboard`, `scaling`, `help`),
//!   `dask` (a Dask cluster's panel of the dashboard), and `popup` for what is drawn on top.

mod dashboard;
mod dask;
mod help;
mod home;
mod pending;
mod popup;
mod scaling;
pub mod theme;
mod wizard;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::keymap;
use super::state::{App, Screen, Severity};
use theme::Theme;

/// Below this the screens cannot be laid out legibly.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 15;

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let theme = Theme { color: app.color };
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = vec![
            Line::styled("terminal too small", theme.error()),
            Line::raw(format!(
                "{}×{}: corral needs at least {MIN_WIDTH}×{MIN_HEIGHT}",
                area.width, area.height
            )),
        ];
        let y = area.height.saturating_sub(2) / 2;
        let inner = Rect::new(area.x, area.y + y, area.width, area.height.min(2));
        frame.render_widget(
            Paragraph::new(text)
                .alignment(Alignment::Center)
                .wrap(Wrap { trim: true }),
            inner,
        );
        return;
    }
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    title_bar(app, theme, frame, top);
    match app.screen() {
        Screen::Home => home::render(app, theme, frame, body),
        Screen::Wizard => wizard::render(app, theme, frame, body),
        Screen::Pending => pending::render(app, theme, frame, body),
        Screen::Dashboard => dashboard::render(app, theme, frame, body),
        Screen::Scaling => scaling::render(app, theme, frame, body),
        Screen::Help => help::render(app, theme, frame, body),
    }
    if let Some(p) = &app.popup {
        popup::render(app, p, theme, frame, body);
    }
    hint_bar(app, theme, frame, bottom);
}

fn screen_title(app: &App) -> String {
    let cluster = app.attached.as_ref().map_or("", |a| a.name.as_str());
    match app.screen() {
        Screen::Home => "clusters".into(),
        Screen::Wizard => "new cluster".into(),
        Screen::Pending => format!("{cluster} · waiting to start"),
        Screen::Dashboard => format!("{cluster} · dashboard"),
        Screen::Scaling => format!("{cluster} · scaling"),
        Screen::Help => "help".into(),
    }
}

fn title_bar(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let line = Line::from(vec![
        Span::styled(" corral ", theme.title()),
        Span::raw("· "),
        Span::raw(screen_title(app)),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let mut right = Vec::new();
    if let Some(name) = &app.stops_on_quit {
        right.push(Span::styled(format!("quitting stops {name}"), theme.warn()));
        right.push(Span::raw(" · "));
    }
    right.extend([Span::styled("?", theme.key()), Span::raw(" help ")]);
    let right = Line::from(right);
    frame.render_widget(Paragraph::new(right).alignment(Alignment::Right), area);
}

/// The bottom line: a flash message if there is one, else the keys of what has focus.
fn hint_bar(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    if let Some((text, sev)) = &app.flash {
        let style = match sev {
            Severity::Info => theme.accent(),
            Severity::Error => theme.error(),
        };
        frame.render_widget(
            Paragraph::new(Line::styled(format!(" {text}"), style)),
            area,
        );
        return;
    }
    let mut spans = vec![Span::raw(" ")];
    for b in keymap::bindings_for(app.context()).filter(|b| !b.hint.is_empty()) {
        spans.push(Span::styled(b.label, theme.key()));
        spans.push(Span::raw(format!(" {}  ", b.hint)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A rectangle of `w`×`h` centred in `r` (clamped to it).
pub fn centered(r: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(r.width);
    let h = h.min(r.height);
    Rect::new(r.x + (r.width - w) / 2, r.y + (r.height - h) / 2, w, h)
}
