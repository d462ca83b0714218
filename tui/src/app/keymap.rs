//! The one keymap: every key the TUI reacts to, where it applies, what it does and how `?`
//! explains it. Dispatch (`lookup`) and the help screen (`ui::help`) both read `KEYMAP`, so the
//! help can never disagree with what the keys do.
//!
//! Keys follow k9s/htop: arrows and j/k, g/G, Tab between panes, Esc back. `q` quits only on
//! Home; elsewhere it goes back, and inside a popup it never quits.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies: a screen, or the popup on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Every screen (not popups, not while typing a filter).
    Global,
    Home,
    /// Typing the Home filter.
    Filter,
    Wizard,
    /// The partition picker of the wizard.
    Picker,
    Pending,
    Dashboard,
    /// The query form (`r`).
    QueryForm,
    /// "Add/remove how many workers?"
    AskWorkers,
    /// "Cancel the cluster?"
    Confirm,
    Logs,
    Scaling,
    Help,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Home => "Home (clusters)",
            Context::Filter => "Home filter",
            Context::Wizard => "New cluster",
            Context::Picker => "Partition picker",
            Context::Pending => "Pending",
            Context::Dashboard => "Dashboard",
            Context::QueryForm => "Query form",
            Context::AskWorkers => "Scale: how many workers",
            Context::Confirm => "Cancel confirmation",
            Context::Logs => "Logs",
            Context::Scaling => "Scaling",
            Context::Help => "Help",
        }
    }

    /// Contexts where printable keys are text, unless bound below.
    pub fn takes_text(self) -> bool {
        matches!(
            self,
            Context::Filter | Context::Wizard | Context::QueryForm | Context::AskWorkers
        )
    }

    /// Popups: `q` and Ctrl-C never quit from here.
    pub fn is_popup(self) -> bool {
        matches!(
            self,
            Context::Filter
                | Context::Picker
                | Context::QueryForm
                | Context::AskWorkers
                | Context::Confirm
                | Context::Logs
        )
    }
}

/// What a key does. `update` gives each its meaning in the current context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Back,
    Help,
    Up,
    Down,
    Top,
    Bottom,
    Left,
    Right,
    NextPane,
    PrevPane,
    Open,
    New,
    Filter,
    Cancel,
    Confirm,
    Refresh,
    Submit,
    Query,
    Sweep,
    ScaleUp,
    ScaleDown,
    Logs,
    Detach,
    SortNext,
    SortReverse,
    Dashboard,
    DeleteChar,
}

/// A key with the modifiers that matter (Shift is ignored: it is part of `G`, `+`, `?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

/// One line of the keymap.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    /// How the keys are written in help and hints.
    pub label: &'static str,
    pub contexts: &'static [Context],
    pub action: Action,
    pub help: &'static str,
    /// The word(s) shown in the screen's bottom hint line; empty: not shown there.
    pub hint: &'static str,
}

use Context as C;

const LISTS: &[Context] = &[
    C::Home,
    C::Dashboard,
    C::Logs,
    C::Picker,
    C::Scaling,
    C::Help,
];
const FORMS: &[Context] = &[C::Wizard, C::QueryForm];

/// Every binding, in the order help shows them. The first match for a context wins.
pub const KEYMAP: &[Binding] = &[
    // Home
    Binding {
        keys: &[k('n')],
        label: "n",
        contexts: &[C::Home],
        action: Action::New,
        help: "new cluster (wizard)",
        hint: "new",
    },
    Binding {
        keys: &[code(KeyCode::Enter)],
        label: "Enter",
        contexts: &[C::Home],
        action: Action::Open,
        help: "open the selected cluster (attach)",
        hint: "open",
    },
    Binding {
        keys: &[k('c')],
        label: "c",
        contexts: &[C::Home, C::Dashboard, C::Pending],
        action: Action::Cancel,
        help: "cancel the cluster (asks first, shows core-hours used)",
        hint: "cancel",
    },
    Binding {
        keys: &[k('/')],
        label: "/",
        contexts: &[C::Home],
        action: Action::Filter,
        help: "filter clusters by name",
        hint: "filter",
    },
    Binding {
        keys: &[ctrl('r'), code(KeyCode::F(5))],
        label: "Ctrl-R/F5",
        contexts: &[C::Home],
        action: Action::Refresh,
        help: "refresh the cluster list",
        hint: "",
    },
    Binding {
        keys: &[k('q')],
        label: "q",
        contexts: &[C::Home],
        action: Action::Quit,
        help: "quit (clusters keep running)",
        hint: "quit",
    },
    Binding {
        keys: &[code(KeyCode::Enter)],
        label: "Enter",
        contexts: &[C::Filter],
        action: Action::Confirm,
        help: "keep the filter",
        hint: "keep",
    },
    Binding {
        keys: &[code(KeyCode::Esc)],
        label: "Esc",
        contexts: &[C::Filter],
        action: Action::Back,
        help: "clear the filter",
        hint: "clear",
    },
    // Wizard
    Binding {
        keys: &[code(KeyCode::Tab), code(KeyCode::Down)],
        label: "Tab/↓",
        contexts: FORMS,
        action: Action::Down,
        help: "next field",
        hint: "next",
    },
    Binding {
        keys: &[code(KeyCode::BackTab), code(KeyCode::Up)],
        label: "S-Tab/↑",
        contexts: FORMS,
        action: Action::Up,
        help: "previous field",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::Left)],
        label: "←",
        contexts: &[C::Wizard, C::QueryForm],
        action: Action::Left,
        help: "previous choice (partition, local/SLURM); earlier SQL query",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::Right)],
        label: "→",
        contexts: &[C::Wizard, C::QueryForm],
        action: Action::Right,
        help: "next choice (partition, local/SLURM); later SQL query",
        hint: "",
    },
    Binding {
        keys: &[ctrl('s')],
        label: "Ctrl-S",
        contexts: &[C::Wizard, C::QueryForm],
        action: Action::Submit,
        help: "submit",
        hint: "submit",
    },
    Binding {
        keys: &[code(KeyCode::Enter)],
        label: "Enter",
        contexts: &[C::Wizard],
        action: Action::Open,
        help: "on Submit: submit; on partition: pick from a list; else next field",
        hint: "next/submit",
    },
    Binding {
        keys: &[code(KeyCode::Enter)],
        label: "Enter",
        contexts: &[C::QueryForm],
        action: Action::Submit,
        help: "run the query",
        hint: "run",
    },
    Binding {
        keys: &[code(KeyCode::Enter)],
        label: "Enter",
        contexts: &[C::Picker],
        action: Action::Confirm,
        help: "choose this partition",
        hint: "choose",
    },
    // Pending
    Binding {
        keys: &[code(KeyCode::Enter), k('d')],
        label: "Enter/d",
        contexts: &[C::Pending],
        action: Action::Dashboard,
        help: "open the dashboard now",
        hint: "dashboard",
    },
    // Dashboard
    Binding {
        keys: &[k('r')],
        label: "r",
        contexts: &[C::Dashboard],
        action: Action::Query,
        help: "run a query (files, group-by, aggregates)",
        hint: "query",
    },
    Binding {
        keys: &[k('s')],
        label: "s",
        contexts: &[C::Dashboard],
        action: Action::Sweep,
        help: "scaling: sweep the last query over 1, 2, 4, … cores",
        hint: "scaling",
    },
    Binding {
        keys: &[k('+')],
        label: "+",
        contexts: &[C::Dashboard],
        action: Action::ScaleUp,
        help: "add workers (asks how many)",
        hint: "more",
    },
    Binding {
        keys: &[k('-')],
        label: "-",
        contexts: &[C::Dashboard],
        action: Action::ScaleDown,
        help: "remove workers (asks how many)",
        hint: "fewer",
    },
    Binding {
        keys: &[k('l')],
        label: "l",
        contexts: &[C::Dashboard, C::Pending],
        action: Action::Logs,
        help: "logs (job output and errors, worker warnings)",
        hint: "logs",
    },
    Binding {
        keys: &[k('o')],
        label: "o",
        contexts: &[C::Dashboard],
        action: Action::SortNext,
        help: "sort workers by the next column",
        hint: "",
    },
    Binding {
        keys: &[k('O')],
        label: "O",
        contexts: &[C::Dashboard],
        action: Action::SortReverse,
        help: "reverse the sort",
        hint: "",
    },
    Binding {
        keys: &[k('q')],
        label: "q",
        contexts: &[C::Dashboard, C::Pending],
        action: Action::Detach,
        help: "detach (the cluster keeps running; attach again from Home)",
        hint: "detach",
    },
    Binding {
        keys: &[code(KeyCode::Tab)],
        label: "Tab",
        contexts: &[C::Dashboard],
        action: Action::NextPane,
        help: "next pane",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::BackTab)],
        label: "S-Tab",
        contexts: &[C::Dashboard],
        action: Action::PrevPane,
        help: "previous pane",
        hint: "",
    },
    // Scaling
    Binding {
        keys: &[k('s')],
        label: "s",
        contexts: &[C::Scaling],
        action: Action::Sweep,
        help: "run the sweep again",
        hint: "run again",
    },
    // Confirm
    Binding {
        keys: &[k('y'), k('Y')],
        label: "y",
        contexts: &[C::Confirm],
        action: Action::Confirm,
        help: "yes, cancel it (any other key keeps it)",
        hint: "cancel it (other keys keep it)",
    },
    // Ask workers
    Binding {
        keys: &[code(KeyCode::Enter)],
        label: "Enter",
        contexts: &[C::AskWorkers],
        action: Action::Confirm,
        help: "scale by that many workers",
        hint: "scale",
    },
    // Lists
    Binding {
        keys: &[code(KeyCode::Up), k('k')],
        label: "↑/k",
        contexts: LISTS,
        action: Action::Up,
        help: "up",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::Down), k('j')],
        label: "↓/j",
        contexts: LISTS,
        action: Action::Down,
        help: "down",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::Home), k('g')],
        label: "g",
        contexts: LISTS,
        action: Action::Top,
        help: "first",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::End), k('G')],
        label: "G",
        contexts: LISTS,
        action: Action::Bottom,
        help: "last",
        hint: "",
    },
    Binding {
        keys: &[k('q')],
        label: "q",
        contexts: &[C::Logs, C::Scaling, C::Help],
        action: Action::Back,
        help: "back",
        hint: "",
    },
    // Text
    Binding {
        keys: &[code(KeyCode::Backspace)],
        label: "Backspace",
        contexts: &[C::Filter, C::Wizard, C::QueryForm, C::AskWorkers],
        action: Action::DeleteChar,
        help: "delete the last character",
        hint: "",
    },
    // Everywhere
    Binding {
        keys: &[code(KeyCode::Esc)],
        label: "Esc",
        contexts: &[
            C::Global,
            C::Wizard,
            C::Picker,
            C::QueryForm,
            C::AskWorkers,
            C::Logs,
        ],
        action: Action::Back,
        help: "back / close",
        hint: "back",
    },
    Binding {
        keys: &[k('?')],
        label: "?",
        contexts: &[C::Global],
        action: Action::Help,
        help: "this help",
        hint: "help",
    },
    Binding {
        keys: &[ctrl('c')],
        label: "Ctrl-C",
        contexts: &[C::Global],
        action: Action::Quit,
        help: "quit (clusters keep running)",
        hint: "",
    },
];

fn matches(key: &Key, ev: &KeyEvent) -> bool {
    let ev_ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
    if key.ctrl != ev_ctrl {
        return false;
    }
    match (key.code, ev.code) {
        // Terminals disagree on whether Ctrl-letter arrives upper- or lower-case.
        (KeyCode::Char(a), KeyCode::Char(b)) if key.ctrl => a.eq_ignore_ascii_case(&b),
        (a, b) => a == b,
    }
}

/// The action of `ev` in `context`: the context's own bindings first, then the global ones
/// (which never apply inside a popup, so nothing there can quit).
pub fn lookup(context: Context, ev: &KeyEvent) -> Option<Action> {
    let find = |ctx: Context| {
        KEYMAP
            .iter()
            .find(|b| b.contexts.contains(&ctx) && b.keys.iter().any(|key| matches(key, ev)))
            .map(|b| b.action)
    };
    find(context).or_else(|| {
        if context.is_popup() {
            None
        } else {
            find(Context::Global)
        }
    })
}

/// The bindings of `context` (own first, then global ones unless it is a popup).
pub fn bindings_for(context: Context) -> impl Iterator<Item = &'static Binding> {
    let own = KEYMAP.iter().filter(move |b| b.contexts.contains(&context));
    let global = KEYMAP.iter().filter(move |b| {
        !context.is_popup()
            && b.contexts.contains(&Context::Global)
            && !b.contexts.contains(&context)
    });
    own.chain(global)
}

/// Every context in the order the help screen lists them.
pub const CONTEXTS: &[Context] = &[
    C::Global,
    C::Home,
    C::Filter,
    C::Wizard,
    C::Picker,
    C::Pending,
    C::Dashboard,
    C::QueryForm,
    C::AskWorkers,
    C::Confirm,
    C::Logs,
    C::Scaling,
    C::Help,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn q_quits_only_on_home_and_never_in_a_popup() {
        let q = ev(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(lookup(C::Home, &q), Some(Action::Quit));
        assert_eq!(lookup(C::Dashboard, &q), Some(Action::Detach));
        assert_eq!(lookup(C::Help, &q), Some(Action::Back));
        for popup in [
            C::Confirm,
            C::AskWorkers,
            C::QueryForm,
            C::Picker,
            C::Filter,
        ] {
            assert_ne!(lookup(popup, &q), Some(Action::Quit), "{popup:?}");
            let cc = ev(KeyCode::Char('c'), KeyModifiers::CONTROL);
            assert_eq!(lookup(popup, &cc), None, "{popup:?}");
        }
    }

    #[test]
    fn shift_is_ignored_and_ctrl_is_not() {
        let big_g = ev(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(lookup(C::Home, &big_g), Some(Action::Bottom));
        let ctrl_s = ev(KeyCode::Char('S'), KeyModifiers::CONTROL);
        assert_eq!(lookup(C::Wizard, &ctrl_s), Some(Action::Submit));
        let s = ev(KeyCode::Char('s'), KeyModifiers::NONE);
        assert_eq!(lookup(C::Wizard, &s), None, "plain s is text in the wizard");
    }

    #[test]
    fn every_context_has_help_and_a_way_back_or_out() {
        for &ctx in CONTEXTS {
            assert!(bindings_for(ctx).next().is_some(), "{ctx:?}");
        }
        for ctx in [
            C::Wizard,
            C::Picker,
            C::QueryForm,
            C::AskWorkers,
            C::Logs,
            C::Help,
        ] {
            let esc = ev(KeyCode::Esc, KeyModifiers::NONE);
            assert_eq!(lookup(ctx, &esc), Some(Action::Back), "{ctx:?}");
        }
    }
}
