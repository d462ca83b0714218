//! Help (`?`): generated from the keymap, one section per context.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::theme::Theme;
use crate::app::keymap::{CONTEXTS, KEYMAP};
use crate::app::state::App;

/// The help text, as lines (also what the tests read).
pub fn lines(theme: Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for &ctx in CONTEXTS {
        let here: Vec<_> = KEYMAP
            .iter()
            .filter(|b| b.contexts.contains(&ctx))
            .collect();
        if here.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(Line::raw(""));
        }
        out.push(Line::styled(ctx.title(), theme.title()));
        for b in here {
            out.push(Line::from(vec![
                Span::raw("  "),
                Span::styled(format!("{:<12}", b.label), theme.key()),
                Span::raw(b.help),
            ]));
        }
    }
    out
}

pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let all = lines(theme);
    let visible = area.height.saturating_sub(2) as usize;
    let max_scroll = all.len().saturating_sub(visible);
    let scroll = app.help_scroll.min(max_scroll);
    let text: Vec<Line> = all.into_iter().skip(scroll).collect();
    frame.render_widget(
        Paragraph::new(text).block(
            Block::default()
                .borders(Borders::ALL)
                .title(Span::styled(" Keys (j/k scroll, Esc back) ", theme.title())),
        ),
        area,
    );
}
