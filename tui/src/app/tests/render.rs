use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};

use crate::app::fixtures;
use crate::app::state::{App, Popup};
use crate::app::ui;

fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    t.draw(|f| ui::render(app, f)).expect("draw");
    t
}

fn text(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// Snapshots `app` at both sizes the design names.
fn snap(name: &str, app: &App) {
    for (w, h) in [(80, 24), (160, 48)] {
        let t = draw(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

#[test]
fn home() {
    snap("home", &fixtures::home());
    snap("home_empty", &fixtures::app());
    let mut filtered = fixtures::home();
    filtered.home.filtering = true;
    filtered.home.filter = "ta".into();
    snap("home_filter", &filtered);
}

#[test]
fn wizard() {
    // 16 × 2 on `small` does not fit: the verdict names the limit and another partition.
    let app = fixtures::wizard();
    snap("wizard_refused", &app);
    let t = text(&draw(&app, 160, 48));
    assert!(
        t.contains("at most 4 workers ×") && t.contains("✗ 1–4"),
        "{t}"
    );
    assert!(
        t.contains("UDP") && t.contains("0600") && t.contains("listen nowhere"),
        "{t}"
    );
    let mut ok = fixtures::wizard();
    ok.wizard.partition = None;
    ok.wizard.estimate_for = ok.wizard.check(ok.limits.as_ref(), &[]).spec;
    ok.wizard.estimate = Some(Ok("2026-01-01T00:00:05 on n[1-2]".into()));
    snap("wizard_clean", &ok);
    let mut picker = fixtures::wizard();
    picker.popup = Some(Popup::Picker { selected: 1 });
    snap("wizard_picker", &picker);
}

#[test]
fn the_local_wizard_checks_this_machines_cores() {
    // 8 × 2 on a 2-core machine: said, with what fits; never "✓ fits: 16 cores".
    let mut app = fixtures::wizard();
    app.wizard.backend = crate::app::view::Backend::Local;
    app.wizard.workers = "8".into();
    app.wizard.cores = "2".into();
    snap("wizard_local_too_big", &app);
    for (w, h) in [(80, 24), (160, 48)] {
        let t = text(&draw(&app, w, h));
        let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(!t.contains("✓ fits"), "{t}");
        assert!(flat.contains("this machine has 2"), "{t}");
    }
    app.wizard.workers = "2".into();
    app.wizard.cores = "1".into();
    let t = text(&draw(&app, 160, 48));
    assert!(t.contains("✓ fits: 2 of this machine's 2 cores"), "{t}");
}

#[test]
fn every_value_in_the_result_pane_is_whole_at_80x24() {
    // Sums of money are wide; the pane must never show `14173588.` for `14173588.50`.
    let mut app = fixtures::dashboard(9);
    let wide = crate::app::view::ResultView {
        columns: vec![
            "payment_type".into(),
            "count".into(),
            "sum(fare_amount)".into(),
            "avg(tip_amount)".into(),
            "sum(total_amount)".into(),
        ],
        rows: vec![
            vec![
                "1".into(),
                "1247831".into(),
                "14173588.50".into(),
                "2.7634091875".into(),
                "18123456.75".into(),
            ],
            vec![
                "2".into(),
                "731905".into(),
                "8120455.25".into(),
                "0.0000000000".into(),
                "9876543.21".into(),
            ],
        ],
        ..fixtures::result()
    };
    if let Some(a) = app.attached.as_mut() {
        a.result = Some(Ok(wide.clone()));
    }
    snap("dashboard_wide_result", &app);
    for (w, h) in [(80, 24), (160, 48)] {
        let t = text(&draw(&app, w, h));
        let shown: Vec<&str> = wide
            .rows
            .iter()
            .flatten()
            .map(String::as_str)
            .filter(|v| t.contains(v))
            .collect();
        // Every value of a column shown is whole; a column that does not fit is left out
        // whole, and the pane says so.
        for row in &wide.rows {
            for (i, v) in row.iter().enumerate() {
                let col_shown = wide.rows.iter().any(|r| shown.contains(&r[i].as_str()));
                if col_shown {
                    assert!(t.contains(v.as_str()), "{v} is cut at {w}x{h}:\n{t}");
                }
            }
        }
        if shown.len() < wide.rows.len() * wide.columns.len() {
            assert!(t.contains(": corral query --json"), "{t}");
        }
        // The totals are whole too.
        for part in [
            "0.41 s on 9 workers / 18 cores",
            "1995601 rows · 4 files · 287.0 MB",
        ] {
            assert!(t.contains(part), "{part} is cut at {w}x{h}:\n{t}");
        }
    }
}

#[test]
fn pending() {
    let app = fixtures::pending();
    snap("pending", &app);
    let t = text(&draw(&app, 80, 24));
    assert!(
        t.contains("waiting for CPUs") && t.contains("3m 14s"),
        "{t}"
    );
    // No snapshot yet, but the Home row says how many workers were asked for.
    assert!(t.contains("Workers   0/32 connected"), "{t}");
    // Submitted from the wizard: its spec says so before any row exists.
    let mut submitted = fixtures::pending();
    submitted.home.clusters.clear();
    if let Some(a) = submitted.attached.as_mut() {
        a.workers_asked = Some(16);
    }
    let t = text(&draw(&submitted, 80, 24));
    assert!(t.contains("Workers   0/16 connected"), "{t}");
}

#[test]
fn dashboard() {
    let app = fixtures::dashboard(9);
    snap("dashboard", &app);
    let t = text(&draw(&app, 160, 48));
    assert!(
        t.contains("workers=8 cores=16"),
        "dead workers do not count: {t}"
    );
    assert!(
        t.contains("✓ authenticated") && t.contains("10.0.0.1:40123"),
        "{t}"
    );
    let mut confirm = fixtures::dashboard(9);
    confirm.popup = Some(Popup::ConfirmCancel {
        name: "taxi".into(),
        core_hours: Some(12.5),
    });
    snap("dashboard_confirm_cancel", &confirm);
    let mut form = fixtures::dashboard(9);
    form.popup = Some(Popup::QueryForm(
        crate::app::query_form::QueryForm::from_query(&fixtures::taxi_query()),
    ));
    snap("dashboard_query_form", &form);
    let mut ask = fixtures::dashboard(9);
    ask.popup = Some(Popup::AskWorkers {
        add: true,
        input: "4".into(),
    });
    snap("dashboard_scale", &ask);
    // `corral demo`: the title bar says that quitting stops the demo's own cluster.
    let mut demo = fixtures::dashboard(9);
    demo.stops_on_quit = Some("taxi".into());
    snap("dashboard_demo", &demo);
    let t = text(&draw(&demo, 80, 24));
    assert!(t.contains("quitting stops taxi"), "{t}");
    let mut logs = fixtures::dashboard(9);
    logs.popup = Some(Popup::Logs {
        lines: vec![
            "── logs/head-1041.err ──".into(),
            "n3: worker 2 lost".into(),
        ],
        scroll: 0,
        loading: false,
    });
    snap("dashboard_logs", &logs);
}

#[test]
fn a_dask_cluster_shows_dasks_workers_and_task_totals() {
    let app = fixtures::dask_dashboard();
    snap("dashboard_dask", &app);
    for (w, h) in [(80, 24), (160, 48)] {
        let t = text(&draw(&app, w, h));
        assert!(
            t.contains("Dask · 3 workers · processing 9 · in memory 60 · erred 1"),
            "{w}x{h}: {t}"
        );
        assert!(
            t.contains("task stream: 96 done · 1 erred · 33.8 s computing"),
            "{w}x{h}: {t}"
        );
        // corral's own workers are still listed above.
        assert!(t.contains("Workers (3)"), "{w}x{h}: {t}");
    }
    let t = text(&draw(&app, 160, 48));
    assert!(t.contains("tls://10.0.0.2:40021"), "{t}");
    let row = t
        .lines()
        .find(|l| l.contains("tls://10.0.0.2:40021"))
        .expect("worker row");
    // threads, memory / limit, processing, in memory, erred.
    for cell in ["2", "398.5 MB / 4.29 GB", "4", "20", "1"] {
        assert!(row.contains(cell), "{cell:?} not in {row:?}");
    }
    // At 80x24 not every Dask worker fits: the last row is all of them together.
    let t = text(&draw(&app, 80, 24));
    assert!(
        t.lines()
            .any(|l| l.contains("all 3") && l.contains("1.20 GB / 12.88 GB") && l.contains(" 60 ")),
        "{t}"
    );
    // Before the first read, and when the scheduler cannot be read: said, not blank.
    let mut reading = fixtures::dask_dashboard();
    if let Some(a) = reading.attached.as_mut() {
        a.dask = None;
    }
    assert!(text(&draw(&reading, 80, 24)).contains("reading Dask's scheduler"));
    let mut failed = fixtures::dask_dashboard();
    if let Some(a) = failed.attached.as_mut() {
        a.dask = Some(Err("GET /json/identity.json: connection refused".into()));
    }
    let t = text(&draw(&failed, 160, 48));
    assert!(
        t.contains("cannot read Dask's dashboard: GET /json/identity.json"),
        "{t}"
    );
    // A cluster that is not a Dask cluster has no Dask panel.
    assert!(!text(&draw(&fixtures::dashboard(3), 160, 48)).contains("Dask"));
}

#[test]
fn scaling_and_help() {
    let app = fixtures::scaling();
    snap("scaling", &app);
    let t = text(&draw(&app, 160, 48));
    assert!(
        t.contains("beyond 8 cores each doubling saves < 15 %"),
        "{t}"
    );
    let mut help = fixtures::home();
    help.nav.push(crate::app::state::Screen::Help);
    snap("help", &help);
}

#[test]
fn a_sweep_short_of_cores_says_why_instead_of_run_a_sweep() {
    let mut app = fixtures::scaling();
    if let Some(a) = app.attached.as_mut() {
        // 2-core workers and a query of 2 partitions: every run computed on 2 cores.
        a.sweep.points = [1.2, 1.1, 1.1, 1.1]
            .into_iter()
            .map(|seconds| corral_core::scaling::Point { cores: 2, seconds })
            .collect();
        a.sweep.shortfall =
            Some("this query has only 2 partitions; it cannot use more than 2 cores".into());
    }
    let t = text(&draw(&app, 160, 48));
    assert!(
        t.contains("this query has only 2 partitions; it cannot use more than 2 cores"),
        "{t}"
    );
    assert!(!t.contains("run a sweep"), "{t}");
}

#[test]
fn too_small() {
    let t = draw(&fixtures::dashboard(9), 59, 20);
    insta::assert_snapshot!("too_small", t.backend());
    assert!(text(&t).contains("terminal too small"));
    assert!(!text(&draw(&fixtures::dashboard(9), 60, 15)).contains("too small"));
}

/// The row of the dashboard's workers table that shows task `task` (dead worker fixture: 2).
fn row_of(t: &Terminal<TestBackend>, needle: &str) -> u16 {
    let buf = t.backend().buffer();
    (0..buf.area.height)
        .find(|&y| {
            let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
            line.contains(needle)
        })
        .unwrap_or_else(|| panic!("no row contains {needle:?}"))
}

#[test]
fn a_dead_worker_is_red_and_marked_and_stays_listed() {
    let app = fixtures::dashboard(9);
    let t = draw(&app, 160, 48);
    let y = row_of(&t, "dead 42s");
    let buf = t.backend().buffer();
    // Column 1 is the status column, right after the border.
    assert_eq!(buf[(1, y)].symbol(), "✗");
    assert_eq!(buf[(3, y)].fg, Color::Red, "the dead row is red");
    assert!(buf[(3, y)].modifier.contains(Modifier::BOLD));
    let alive = row_of(&t, "1s ago");
    assert_eq!(buf[(1, alive)].symbol(), "●");
    assert_ne!(buf[(3, alive)].fg, Color::Red);
}

#[test]
fn without_colour_selection_and_state_still_show() {
    let mut app = fixtures::home();
    app.color = false;
    let t = draw(&app, 80, 24);
    let buf = t.backend().buffer();
    let y = row_of(&t, "taxi");
    assert_eq!(buf[(1, y)].symbol(), "▶", "selection has a symbol");
    assert!(buf[(3, y)].modifier.contains(Modifier::REVERSED));
    assert!(text(&t).contains("● running") && text(&t).contains("◌ pending"));
    for yy in 0..buf.area.height {
        for x in 0..buf.area.width {
            assert_eq!(buf[(x, yy)].fg, Color::Reset, "no colour at {x},{yy}");
        }
    }
    // With colour the running state is green.
    let t = draw(&fixtures::home(), 80, 24);
    let y = row_of(&t, "big-join");
    let buf = t.backend().buffer();
    let x = (0..80)
        .find(|&x| buf[(x, y)].symbol() == "◌")
        .expect("pending symbol");
    assert_eq!(buf[(x, y)].fg, Color::Yellow);
}

#[test]
fn an_ended_cluster_says_ended_and_keeps_its_workers_listed() {
    let mut app = fixtures::dashboard(4);
    if let Some(a) = app.attached.as_mut() {
        a.query_running = false;
    }
    app.update(crate::app::msg::Msg::Snapshot(fixtures::ended_snapshot()));
    snap("dashboard_ended", &app);
    for (w, h) in [(80, 24), (160, 48)] {
        let t = text(&draw(&app, w, h));
        assert!(t.contains("○ ended"), "{t}");
        assert!(!t.contains("no walltime limit"), "{t}");
        assert!(t.contains("Workers (4) · 1 dead · 3 left"), "{t}");
    }
    let t = draw(&app, 160, 48);
    let text = text(&t);
    assert!(
        text.contains("workers=0 cores=0 (asked 4)  ended"),
        "{text}"
    );
    // Listed, but none marked alive.
    let y = row_of(&t, "left 1s");
    assert_eq!(t.backend().buffer()[(1, y)].symbol(), "○");
    assert!(!text.contains('●'), "{text}");
}

#[test]
fn a_thousand_workers_render_only_what_fits() {
    let mut app = fixtures::dashboard(1000);
    if let Some(a) = app.attached.as_mut() {
        a.selected = 999;
    }
    let t = text(&draw(&app, 80, 24));
    assert!(
        t.contains("Workers (1000)") && t.contains("workers=999 cores=1998"),
        "{t}"
    );
}

#[test]
fn a_worker_that_left_on_purpose_is_listed_greyed_not_as_an_alarm() {
    let mut app = fixtures::dashboard(9);
    if let Some(w) = app
        .attached
        .as_mut()
        .and_then(|a| a.snapshot.as_mut())
        .and_then(|s| s.workers.iter_mut().find(|w| w.alive))
    {
        w.alive = false;
        w.left = true;
    }
    let t = draw(&app, 160, 48);
    let y = row_of(&t, "left 1s");
    let buf = t.backend().buffer();
    assert_eq!(buf[(1, y)].symbol(), "○");
    assert_ne!(buf[(3, y)].fg, Color::Red, "leaving is not an alarm");
    let title = text(&t);
    assert!(title.contains("1 left"), "{title}");
}

#[test]
fn an_adapting_cluster_shows_its_range_and_latest_decision() {
    let mut app = fixtures::dashboard(2);
    let a = app.attached.as_mut().expect("attached");
    a.adapt = Some(crate::app::view::AdaptView {
        range: "1..3".into(),
        decisions: 2,
        last: Some((
            fixtures::NOW - 40,
            "2 → 3 workers: submitted worker job 45 (272 partitions waited 8 s with 2 workers connected)"
                .into(),
        )),
    });
    let t = text(&draw(&app, 160, 48));
    assert!(
        t.contains(
            "adapts 1..3  2 decisions, latest 40s ago: 2 → 3 workers: submitted worker job 45"
        ),
        "{t}"
    );
    let a = app.attached.as_mut().expect("attached");
    a.adapt.as_mut().expect("adapt").last = None;
    let t = text(&draw(&app, 80, 24));
    assert!(t.contains("adapts 1..3  no decision yet"), "{t}");
}
