use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use corral_core::scaling::Point;

use crate::app::fixtures::{self, NOW};
use crate::app::msg::{Cmd, Msg};
use crate::app::state::{App, Pane, Popup, Screen, Severity, SortKey};
use crate::app::update::Start;
use crate::app::view::{Backend, CancelReport, ClusterState, JobStatusView};
use crate::app::wizard::{SlurmReach, WizField};

fn key(app: &mut App, code: KeyCode) -> Vec<Cmd> {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn ch(app: &mut App, c: char) -> Vec<Cmd> {
    key(app, KeyCode::Char(c))
}

fn ctrl(app: &mut App, c: char) -> Vec<Cmd> {
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::CONTROL,
    )))
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        ch(app, c);
    }
}

#[test]
fn init_lists_clusters_and_attach_opens_the_cluster() {
    let mut app = fixtures::app();
    assert_eq!(app.init(Start::Home), vec![Cmd::ListClusters]);
    let mut app = fixtures::app();
    let cmds = app.init(Start::Attach("taxi".into()));
    assert_eq!(
        cmds,
        vec![
            Cmd::ListClusters,
            Cmd::Attach {
                name: "taxi".into()
            }
        ]
    );
    assert_eq!(app.screen(), Screen::Dashboard);
}

#[test]
fn home_keys() {
    let mut app = fixtures::home();
    ch(&mut app, 'j');
    assert_eq!(app.home.selected, 1);
    ch(&mut app, 'G');
    assert_eq!(app.home.selected, 2);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.home.selected, 2, "stays on the last row");
    ch(&mut app, 'g');
    assert_eq!(app.home.selected, 0);
    ch(&mut app, 'k');
    assert_eq!(app.home.selected, 0);
    // Mouse wheel moves too.
    app.update(Msg::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 0,
        row: 0,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.home.selected, 1);
    assert_eq!(ctrl(&mut app, 'r'), vec![Cmd::ListClusters]);
    // Filter: typing narrows, Esc clears.
    ch(&mut app, '/');
    typed(&mut app, "lap");
    assert_eq!(app.home.visible().len(), 1);
    ch(&mut app, 'q');
    assert!(!app.quit, "q is text while filtering");
    key(&mut app, KeyCode::Backspace);
    assert_eq!(app.home.filter, "lap");
    key(&mut app, KeyCode::Enter);
    assert!(!app.home.filtering && app.home.filter == "lap");
    ch(&mut app, '/');
    key(&mut app, KeyCode::Esc);
    assert!(app.home.filter.is_empty());
    // Enter opens: a running cluster goes to the dashboard, a pending one to Pending.
    let cmds = key(&mut app, KeyCode::Enter);
    assert_eq!(
        cmds,
        vec![Cmd::Attach {
            name: "taxi".into()
        }]
    );
    assert_eq!(app.screen(), Screen::Dashboard);
    let cmds = ch(&mut app, 'q');
    assert_eq!(
        cmds,
        vec![
            Cmd::Detach {
                name: "taxi".into()
            },
            Cmd::ListClusters
        ]
    );
    assert_eq!(app.screen(), Screen::Home);
    ch(&mut app, 'j');
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen(), Screen::Pending);
    key(&mut app, KeyCode::Esc);
    // c on an ended cluster says so; on a live one it asks.
    ch(&mut app, 'G');
    ch(&mut app, 'c');
    assert!(app.popup.is_none() && app.flash.is_some());
    ch(&mut app, 'g');
    ch(&mut app, 'c');
    assert!(matches!(app.popup, Some(Popup::ConfirmCancel { .. })));
    // Anything but y keeps it.
    assert!(ch(&mut app, 'n').is_empty());
    assert!(app.popup.is_none());
    assert!(
        app.flash
            .as_ref()
            .is_some_and(|(m, _)| m.contains("kept taxi"))
    );
    ch(&mut app, 'c');
    assert_eq!(
        ch(&mut app, 'y'),
        vec![Cmd::Cancel {
            name: "taxi".into()
        }]
    );
    assert_eq!(app.home.clusters[0].state, ClusterState::Ending);
    // ? opens help, Esc goes back, q quits from Home.
    ch(&mut app, '?');
    assert_eq!(app.screen(), Screen::Help);
    ch(&mut app, 'j');
    assert_eq!(app.help_scroll, 1);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.screen(), Screen::Home);
    assert_eq!(ch(&mut app, 'q'), vec![Cmd::Quit]);
    assert!(app.quit);
}

#[test]
fn popups_never_quit() {
    let mut app = fixtures::dashboard(3);
    ch(&mut app, 'l');
    // q closes the logs popup; it does not quit.
    assert!(ch(&mut app, 'q').is_empty());
    assert!(!app.quit && app.popup.is_none());
    for open in ['l', 'r', '+', 'c'] {
        ch(&mut app, open);
        assert!(app.popup.is_some(), "{open}");
        assert!(!ctrl(&mut app, 'c').contains(&Cmd::Quit), "{open}");
        assert!(!app.quit);
        app.popup = None;
    }
    assert!(!app.quit);
    // Outside popups Ctrl-C quits.
    app.popup = None;
    assert_eq!(ctrl(&mut app, 'c'), vec![Cmd::Quit]);
}

#[test]
fn wizard_flow_to_a_slurm_submit() {
    let mut app = fixtures::home();
    let cmds = ch(&mut app, 'n');
    assert_eq!(cmds, vec![Cmd::FetchLimits]);
    assert_eq!(app.screen(), Screen::Wizard);
    assert_eq!(app.wizard.workers, "8");
    assert_eq!(app.wizard.days, "1");
    assert_eq!(app.wizard.name, "cluster-1");
    // Limits arrive: clean 8 × 2 on the default partition → an estimate is asked for.
    let cmds = app.update(Msg::Limits(Ok(fixtures::limits())));
    assert!(matches!(cmds.as_slice(), [Cmd::EstimateStart(s)] if s.workers == 8));
    assert_eq!(app.wizard.slurm, SlurmReach::Ready);
    // Only digits go into workers; the verdict follows each key.
    key(&mut app, KeyCode::Backspace);
    typed(&mut app, "x4");
    assert_eq!(app.wizard.workers, "4");
    ch(&mut app, '0');
    let checked = app.wizard.check(app.limits.as_ref(), &[]);
    assert!(
        checked
            .problem(corral_core::slurm::validate::Field::Workers)
            .is_some(),
        "40 × 2 > 64 CPUs"
    );
    key(&mut app, KeyCode::Backspace);
    // Moving on asks for the estimate of the new request, once.
    let cmds = key(&mut app, KeyCode::Tab);
    assert!(matches!(cmds.as_slice(), [Cmd::EstimateStart(s)] if s.workers == 4));
    assert!(
        key(&mut app, KeyCode::BackTab).is_empty(),
        "same request, no new estimate"
    );
    let spec = app.wizard.estimate_for.clone().expect("asked");
    app.update(Msg::StartEstimate {
        spec,
        result: Ok("now".into()),
    });
    assert_eq!(app.wizard.estimate, Some(Ok("now".into())));
    // Partition: ←/→ cycles, Enter opens the picker.
    app.wizard.focus = 4;
    assert_eq!(app.wizard.field(), WizField::Partition);
    key(&mut app, KeyCode::Right);
    assert_eq!(app.wizard.partition.as_deref(), Some("debug"));
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.popup, Some(Popup::Picker { selected: 0 })));
    ch(&mut app, 'j');
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard.partition.as_deref(), Some("small"));
    key(&mut app, KeyCode::Left);
    key(&mut app, KeyCode::Left);
    assert_eq!(app.wizard.partition, None, "back to the default");
    // Enter on Submit submits.
    app.wizard.focus = 7;
    let cmds = key(&mut app, KeyCode::Enter);
    let [Cmd::Submit { spec, backend }] = cmds.as_slice() else {
        panic!("{cmds:?}");
    };
    assert_eq!(
        (spec.workers, spec.cores_per_worker, *backend),
        (4, 2, Backend::Slurm)
    );
    assert_eq!(app.screen(), Screen::Pending);
    assert_eq!(
        app.attached.as_ref().and_then(|a| a.workers_asked),
        Some(4),
        "Pending knows the workers asked for before any snapshot"
    );
    assert!(app.wizard.submitting);
    assert!(
        ctrl(&mut app, 's').is_empty(),
        "no double submit from Pending"
    );
    let cmds = app.update(Msg::Submitted {
        name: "cluster-1".into(),
        result: Ok(Backend::Slurm),
    });
    assert_eq!(
        cmds,
        vec![
            Cmd::Attach {
                name: "cluster-1".into()
            },
            Cmd::ListClusters
        ]
    );
}

#[test]
fn wizard_refuses_a_bad_request_and_points_at_the_field() {
    let mut app = fixtures::wizard();
    assert!(ctrl(&mut app, 's').is_empty());
    assert_eq!(app.screen(), Screen::Wizard);
    assert_eq!(app.wizard.field(), WizField::Workers);
    let (msg, sev) = app.flash.clone().expect("flash");
    assert_eq!(sev, Severity::Error);
    assert!(msg.contains("at most 4 workers"), "{msg}");
    // A taken name is refused too.
    app.wizard.workers = "4".into();
    app.wizard.name = "taxi".into();
    ctrl(&mut app, 's');
    assert_eq!(app.wizard.field(), WizField::Name);
    // Esc goes back home.
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.screen(), Screen::Home);
}

#[test]
fn without_slurm_the_wizard_offers_local_and_submit_failure_returns_to_it() {
    let mut app = fixtures::home();
    ch(&mut app, 'n');
    app.update(Msg::Limits(Err("sinfo not found".into())));
    assert_eq!(app.wizard.backend, Backend::Local);
    app.wizard.focus = 6;
    key(&mut app, KeyCode::Right);
    assert_eq!(app.wizard.backend, Backend::Slurm);
    assert!(ctrl(&mut app, 's').is_empty(), "SLURM unreachable: refused");
    app.wizard.focus = 6;
    key(&mut app, KeyCode::Left);
    let cmds = ctrl(&mut app, 's');
    assert!(matches!(
        cmds.as_slice(),
        [Cmd::Submit {
            backend: Backend::Local,
            ..
        }]
    ));
    app.update(Msg::Submitted {
        name: "cluster-1".into(),
        result: Err("cannot start".into()),
    });
    assert_eq!(app.screen(), Screen::Wizard);
    assert_eq!(app.wizard.error.as_deref(), Some("cannot start"));
    assert!(app.attached.is_none());
}

#[test]
fn pending_follows_the_job_then_opens_the_dashboard() {
    let mut app = fixtures::pending();
    let status = JobStatusView {
        job_id: 1060,
        state: "RUNNING".into(),
        reason_code: "None".into(),
        reason: "None".into(),
        never_starts: false,
        submitted_at: Some(NOW - 10),
    };
    app.update(Msg::JobStatus {
        name: "big-join".into(),
        status: status.clone(),
    });
    assert_eq!(
        app.attached.as_ref().and_then(|a| a.job.clone()),
        Some(status)
    );
    let mut snap = fixtures::snapshot(4);
    snap.name = "big-join".into();
    app.update(Msg::Snapshot(snap));
    assert_eq!(app.screen(), Screen::Dashboard);
    // A job that ended outside corral is said so.
    let mut app = fixtures::pending();
    app.update(Msg::JobStatus {
        name: "big-join".into(),
        status: JobStatusView {
            job_id: 1060,
            state: "CANCELLED".into(),
            reason_code: String::new(),
            reason: String::new(),
            never_starts: false,
            submitted_at: None,
        },
    });
    assert!(
        app.attached
            .as_ref()
            .and_then(|a| a.ended.clone())
            .is_some_and(|e| e.contains("CANCELLED"))
    );
    // Messages about another cluster are ignored.
    let before = app.clone();
    app.update(Msg::Snapshot(fixtures::snapshot(2)));
    assert_eq!(app, before);
    // Enter opens the dashboard early; l reads logs.
    let mut app = fixtures::pending();
    assert_eq!(
        ch(&mut app, 'l'),
        vec![Cmd::ReadLogs {
            name: "big-join".into()
        }]
    );
    app.update(Msg::Logs {
        name: "big-join".into(),
        result: Ok(vec!["a".into(), "b".into()]),
    });
    assert!(
        matches!(&app.popup, Some(Popup::Logs { lines, loading: false, .. }) if lines.len() == 2)
    );
    ch(&mut app, 'j');
    assert!(matches!(&app.popup, Some(Popup::Logs { scroll: 1, .. })));
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen(), Screen::Dashboard);
}

#[test]
fn dashboard_keys() {
    let mut app = fixtures::dashboard(9);
    // Tab cycles panes; j/k move in the focused one.
    ch(&mut app, 'j');
    assert_eq!(app.attached.as_ref().map(|a| a.selected), Some(1));
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.attached.as_ref().map(|a| a.focus), Some(Pane::Result));
    ch(&mut app, 'G');
    assert_eq!(app.attached.as_ref().map(|a| a.result_scroll), Some(4));
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.attached.as_ref().map(|a| a.focus), Some(Pane::Tasks));
    // Sorting.
    ch(&mut app, 'o');
    ch(&mut app, 'O');
    let a = app.attached.as_ref().expect("attached");
    assert_eq!((a.sort, a.sort_desc), (SortKey::Cpu, true));
    // r: the form, pre-filled with the last query; Enter runs it.
    ch(&mut app, 'r');
    assert!(matches!(&app.popup, Some(Popup::QueryForm(f)) if f.group_by == "payment_type"));
    let cmds = key(&mut app, KeyCode::Enter);
    assert_eq!(
        cmds,
        vec![Cmd::RunQuery {
            name: "taxi".into(),
            query: fixtures::taxi_query()
        }]
    );
    // A bad form stays open with the problem.
    ch(&mut app, 'r');
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    typed(&mut app, ", median(x)");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert!(matches!(&app.popup, Some(Popup::QueryForm(f)) if f.error.is_some()));
    key(&mut app, KeyCode::Esc);
    assert!(app.popup.is_none());
    // SQL in the form runs as SQL, and becomes the form's history (←).
    ch(&mut app, 'r');
    key(&mut app, KeyCode::Tab);
    let sql = "SELECT payment_type, count(*) FROM 'x.csv' GROUP BY 1";
    typed(&mut app, sql);
    let cmds = key(&mut app, KeyCode::Enter);
    assert!(
        matches!(&cmds[..], [Cmd::RunQuery { query, .. }] if query.select.as_ref().is_some_and(|s| s.sql == sql)),
        "{cmds:?}"
    );
    ch(&mut app, 'r');
    assert!(matches!(&app.popup, Some(Popup::QueryForm(f)) if f.sql == sql && f.history == [sql]));
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Left);
    assert!(matches!(&app.popup, Some(Popup::QueryForm(f)) if f.sql == sql));
    key(&mut app, KeyCode::Esc);
    // + asks how many; digits only; Enter scales.
    ch(&mut app, '+');
    typed(&mut app, "x2");
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        vec![Cmd::Scale {
            name: "taxi".into(),
            delta: 2
        }]
    );
    ch(&mut app, '-');
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "nothing typed");
    typed(&mut app, "1");
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        vec![Cmd::Scale {
            name: "taxi".into(),
            delta: -1
        }]
    );
    // c shows the core-hours used; y cancels.
    ch(&mut app, 'c');
    assert!(
        matches!(app.popup, Some(Popup::ConfirmCancel { core_hours: Some(h), .. }) if h == 12.5)
    );
    assert_eq!(
        ch(&mut app, 'y'),
        vec![Cmd::Cancel {
            name: "taxi".into()
        }]
    );
    assert!(app.attached.as_ref().is_some_and(|a| a.ending));
    assert!(app.tick_interval().is_some());
    app.update(Msg::Cancelled {
        name: "taxi".into(),
        result: Ok(CancelReport {
            core_hours: 12.6,
            how: "cancelled".into(),
        }),
    });
    let a = app.attached.as_ref().expect("attached");
    assert!(
        a.ended
            .as_ref()
            .is_some_and(|e| e.contains("12.60 core-hours"))
    );
    // s: the sweep of the last query over 1, 2, 4, 8, 16 cores (16 live cores).
    let mut app = fixtures::dashboard(9);
    let cmds = ch(&mut app, 's');
    assert_eq!(app.screen(), Screen::Scaling);
    assert!(cmds.contains(&Cmd::Sweep {
        name: "taxi".into(),
        query: fixtures::taxi_query(),
        cores: vec![1, 2, 4, 8, 16]
    }));
    assert!(ch(&mut app, 's').is_empty(), "a sweep is running");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.screen(), Screen::Dashboard);
}

#[test]
fn sweep_needs_a_query_first() {
    let mut app = fixtures::dashboard(3);
    if let Some(a) = app.attached.as_mut() {
        a.last_query = None;
    }
    assert!(ch(&mut app, 's').is_empty());
    assert_eq!(app.screen(), Screen::Dashboard);
    assert!(
        app.flash
            .as_ref()
            .is_some_and(|(m, _)| m.contains("run a query first"))
    );
}

#[test]
fn every_message_updates_what_it_should() {
    let mut app = fixtures::dashboard(3);
    app.update(Msg::Resize(100, 40));
    assert_eq!(
        app.update(Msg::Tick),
        Vec::new(),
        "the dashboard tick only redraws"
    );
    let mut home = fixtures::home();
    assert_eq!(home.update(Msg::Tick), vec![Cmd::ListClusters]);
    home.update(Msg::Clusters(Ok(Vec::new())));
    assert!(home.home.clusters.is_empty() && home.home.selected == 0);
    home.update(Msg::Clusters(Err("denied".into())));
    assert_eq!(home.home.error.as_deref(), Some("denied"));
    // Snapshots feed the sparkline (bounded) and the progress.
    for _ in 0..300 {
        app.update(Msg::Snapshot(fixtures::snapshot(3)));
    }
    let a = app.attached.as_ref().expect("attached");
    assert_eq!(a.throughput.len(), crate::app::state::THROUGHPUT_SAMPLES);
    assert!(a.progress.is_some() && a.lost.is_none());
    app.update(Msg::Detached {
        name: "taxi".into(),
        reason: "connection lost".into(),
    });
    assert_eq!(
        app.attached
            .as_ref()
            .and_then(|a| a.lost.clone())
            .as_deref(),
        Some("connection lost")
    );
    let p = fixtures::snapshot(1).query.expect("progress");
    app.update(Msg::QueryProgress {
        name: "taxi".into(),
        progress: p.clone(),
    });
    assert_eq!(
        app.attached.as_ref().and_then(|a| a.progress.clone()),
        Some(p)
    );
    app.update(Msg::QueryDone {
        name: "taxi".into(),
        result: Err("file vanished".into()),
    });
    let a = app.attached.as_ref().expect("attached");
    assert!(!a.query_running && matches!(a.result, Some(Err(_))));
    assert_eq!(app.flash.as_ref().map(|f| f.1), Some(Severity::Error));
    app.update(Msg::Scaled {
        name: "taxi".into(),
        result: Ok("job 7 submitted".into()),
    });
    assert!(
        app.flash
            .as_ref()
            .is_some_and(|(m, s)| m.contains("job 7") && *s == Severity::Info)
    );
    app.update(Msg::Cancelled {
        name: "taxi".into(),
        result: Err("scancel failed".into()),
    });
    assert!(
        app.flash
            .as_ref()
            .is_some_and(|(m, _)| m.contains("cancel failed"))
    );
    app.update(Msg::SweepPoint {
        name: "taxi".into(),
        step: sweep_step(1, 1, 3.0),
    });
    app.update(Msg::History {
        name: "taxi".into(),
        points: vec![Point {
            cores: 2,
            seconds: 1.6,
        }],
    });
    app.update(Msg::SweepDone {
        name: "taxi".into(),
        result: Err("not available yet: x".into()),
    });
    let sw = &app.attached.as_ref().expect("attached").sweep;
    assert_eq!(
        (sw.points.len(), sw.history.len(), sw.running),
        (1, 1, false)
    );
    assert!(sw.error.is_some());
    app.update(Msg::Error("not available yet: y".into()));
    assert_eq!(
        app.flash,
        Some(("not available yet: y".into(), Severity::Error))
    );
    // An ended snapshot marks the cluster ended.
    let mut s = fixtures::snapshot(1);
    s.state = ClusterState::Ended;
    app.update(Msg::Snapshot(s));
    assert!(app.attached.as_ref().is_some_and(|a| a.ended.is_some()));
}

#[test]
fn an_ended_cluster_keeps_its_last_workers_listed_not_alive() {
    let mut app = fixtures::dashboard(4);
    app.update(Msg::Snapshot(fixtures::ended_snapshot()));
    let a = app.attached.as_ref().expect("attached");
    assert!(a.ended.is_some());
    let s = a.snapshot.as_ref().expect("snapshot");
    assert_eq!(s.state, ClusterState::Ended);
    assert_eq!(s.workers.len(), 4, "the last workers seen stay listed");
    assert_eq!(s.live_workers(), 0);
    // The three alive ones ended with the cluster; the one lost before stays lost.
    let left: Vec<bool> = s.workers.iter().map(|w| w.left).collect();
    assert_eq!(left, [true, true, false, true]);
    // The watcher repeats itself: the workers stay.
    app.update(Msg::Snapshot(fixtures::ended_snapshot()));
    let s = app.attached.as_ref().and_then(|a| a.snapshot.as_ref());
    assert_eq!(s.map(|s| (s.workers.len(), s.live_workers())), Some((4, 0)));

    // Cancelled from here: the workers are no longer alive either.
    let mut app = fixtures::dashboard(4);
    app.update(Msg::Cancelled {
        name: "taxi".into(),
        result: Ok(CancelReport {
            core_hours: 1.0,
            how: "cancelled".into(),
        }),
    });
    let s = app.attached.as_ref().and_then(|a| a.snapshot.as_ref());
    assert_eq!(s.map(|s| (s.workers.len(), s.live_workers())), Some((4, 0)));
}

#[test]
fn a_finished_query_fills_the_tasks_gauge() {
    // A fast query: the last progress seen had no partition done.
    let mut app = fixtures::dashboard(4);
    let mut seen = fixtures::snapshot(1).query.expect("progress");
    seen.partitions_done = 0;
    seen.partitions_total = 2;
    seen.rows = 0;
    seen.bytes = 0;
    app.update(Msg::QueryProgress {
        name: "taxi".into(),
        progress: seen,
    });
    let mut r = fixtures::result();
    r.partitions = 2;
    app.update(Msg::QueryDone {
        name: "taxi".into(),
        result: Ok(r.clone()),
    });
    let a = app.attached.as_ref().expect("attached");
    assert!(!a.query_running);
    let p = a.progress.as_ref().expect("progress");
    assert_eq!((p.partitions_done, p.partitions_total), (2, 2));
    assert!((p.ratio() - 1.0).abs() < 1e-9);
    // Every row read, the bad ones too (as progress counts them), and the bytes.
    assert_eq!(p.rows, 1_995_601 + 3 + 1);
    assert_eq!(p.bytes, 287_000_000);
    assert!((p.rows_per_s - p.rows as f64 / 0.41).abs() < 1.0, "{p:?}");
    assert!((p.bytes_per_s - 287e6 / 0.41).abs() < 1.0, "{p:?}");

    // No progress at all before the result: the gauge still shows it whole.
    let mut app = fixtures::dashboard(4);
    if let Some(a) = app.attached.as_mut() {
        a.progress = None;
    }
    app.update(Msg::QueryDone {
        name: "taxi".into(),
        result: Ok(r),
    });
    let p = app.attached.as_ref().and_then(|a| a.progress.clone());
    assert_eq!(
        p.map(|p| (p.partitions_done, p.partitions_total)),
        Some((2, 2))
    );

    // A failed query leaves the progress where it stopped.
    let mut app = fixtures::dashboard(4);
    app.update(Msg::QueryDone {
        name: "taxi".into(),
        result: Err("file vanished".into()),
    });
    let p = app.attached.as_ref().and_then(|a| a.progress.clone());
    assert_eq!(
        p.map(|p| (p.partitions_done, p.partitions_total)),
        Some((342, 478))
    );
}

/// A sweep run asked for `asked` cores that computed on `cores` (a query of 2 partitions).
fn sweep_step(asked: u32, cores: u32, seconds: f64) -> crate::sweep::Step {
    crate::sweep::Step {
        point: Point { cores, seconds },
        asked,
        workers: cores,
        tasks: 2,
        rows: 100,
        bytes: 1000,
    }
}

#[test]
fn a_sweep_short_of_cores_says_the_query_has_too_few_partitions() {
    let mut app = fixtures::dashboard(4);
    ch(&mut app, 's');
    assert_eq!(app.screen(), Screen::Scaling);
    for (asked, cores) in [(1, 1), (2, 2), (4, 2), (8, 2)] {
        app.update(Msg::SweepPoint {
            name: "taxi".into(),
            step: sweep_step(asked, cores, 1.0),
        });
    }
    let sw = &app.attached.as_ref().expect("attached").sweep;
    assert_eq!(
        sw.shortfall.as_deref(),
        Some("this query has only 2 partitions; it cannot use more than 2 cores")
    );
    // The next sweep starts without it.
    app.update(Msg::SweepDone {
        name: "taxi".into(),
        result: Ok(()),
    });
    ch(&mut app, 's');
    let sw = &app.attached.as_ref().expect("attached").sweep;
    assert!(sw.running && sw.shortfall.is_none(), "{sw:?}");
}

#[test]
fn idle_screens_do_not_tick() {
    let mut app = fixtures::home();
    ch(&mut app, 'n');
    assert_eq!(app.tick_interval(), None, "the wizard waits for keys");
    ch(&mut app, '?');
    assert_eq!(app.tick_interval(), None);
    assert!(fixtures::pending().tick_interval().is_some());
}

#[test]
fn demo_opens_the_dashboard_with_the_query_running_and_owns_the_cluster() {
    let mut app = fixtures::app();
    let query = fixtures::taxi_query();
    let cmds = app.init(Start::Demo {
        name: "demo".into(),
        query: query.clone(),
    });
    assert_eq!(
        cmds,
        vec![
            Cmd::ListClusters,
            Cmd::Attach {
                name: "demo".into()
            },
            Cmd::RunQuery {
                name: "demo".into(),
                query: query.clone()
            },
        ]
    );
    assert_eq!(app.screen(), Screen::Dashboard);
    assert_eq!(app.stops_on_quit.as_deref(), Some("demo"));
    let a = app.attached.as_ref().expect("attached");
    assert_eq!(a.backend, Backend::Local);
    assert!(a.query_running);
    assert_eq!(a.focus, Pane::Tasks);
    assert_eq!(a.last_query.as_ref(), Some(&query));
    // `r` offers the running query again; `s` can sweep it.
    ch(&mut app, 'r');
    assert!(matches!(app.popup, Some(Popup::QueryForm(_))));
    // A plain attach owns nothing: quitting leaves clusters running.
    let mut plain = fixtures::app();
    plain.init(Start::Attach("taxi".into()));
    assert_eq!(plain.stops_on_quit, None);
}

fn pending_job(state: &str) -> JobStatusView {
    JobStatusView {
        job_id: 1070,
        state: state.into(),
        reason_code: "Priority".into(),
        reason: "waiting for higher-priority jobs".into(),
        never_starts: false,
        submitted_at: Some(NOW - 5),
    }
}

#[test]
fn attaching_to_a_job_that_still_waits_shows_pending_then_the_dashboard() {
    // `corral up` hands over right after sbatch: the state is not known yet.
    let mut app = fixtures::app();
    app.init(Start::Attach("fresh".into()));
    assert_eq!(app.screen(), Screen::Dashboard);
    app.update(Msg::JobStatus {
        name: "fresh".into(),
        status: pending_job("PENDING"),
    });
    assert_eq!(app.screen(), Screen::Pending);
    // Running with the coordinator connected: the dashboard opens by itself.
    let mut snap = fixtures::snapshot(4);
    snap.name = "fresh".into();
    app.update(Msg::Snapshot(snap));
    assert_eq!(app.screen(), Screen::Dashboard);
    // A connected cluster stays on its dashboard whatever a stale job status says.
    app.update(Msg::JobStatus {
        name: "fresh".into(),
        status: pending_job("PENDING"),
    });
    assert_eq!(app.screen(), Screen::Dashboard);
    // Another cluster's status changes nothing.
    let mut other = fixtures::app();
    other.init(Start::Attach("fresh".into()));
    other.update(Msg::JobStatus {
        name: "elsewhere".into(),
        status: pending_job("PENDING"),
    });
    assert_eq!(other.screen(), Screen::Dashboard);
}

#[test]
fn a_notice_is_flashed_and_its_escapes_go_to_the_terminal() {
    let mut app = fixtures::dashboard(2);
    let cmds = app.update(Msg::Notice {
        name: "taxi".into(),
        title: "corral: cluster taxi is ready".into(),
        body: "2 workers with 4 cores connected".into(),
        alert: "\x07\x1b]9;x\x07".into(),
    });
    assert_eq!(cmds, vec![Cmd::Alert("\x07\x1b]9;x\x07".into())]);
    assert_eq!(
        app.flash,
        Some((
            "corral: cluster taxi is ready: 2 workers with 4 cores connected".into(),
            Severity::Info
        ))
    );
}
