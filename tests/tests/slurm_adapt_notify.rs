//! Issue 17 items 3 and 4 on the shared SLURM test bed: `corral up --adapt 1..3` grows under a
//! queue of queries and shrinks back when idle, with no more decisions than the hysteresis
//! allows; each notification (ready, query finished, walltime ending, a lost worker) is mailed
//! once through the configured `mail_command` (a real program on the test's PATH that records
//! what it was given) and reaches the TUI's terminal once as a bell + OSC 9 + OSC 777 (read
//! from the tmux pane's raw output), also after the TUI and the supervisor are restarted.
//!
//! No timed assertions: everything is awaited (generously) and then checked for what happened
//! and how often. The adaptive decisions are printed as a timeline (run with --no-capture).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corral_tests::cluster::{Env, wait_for};
use corral_tests::expect::{counts_in, expected_counts};
use corral_tests::on_slurm::OnSlurm;
use corral_tests::process;
use corral_tests::tmux::{self, Session, sh_quote};

const LONG: Duration = Duration::from_secs(240);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The site's mail program, as far as corral can tell: records its arguments and the message
/// on stdin, one record per call.
fn mail_recorder(env: &Env) -> (PathBuf, PathBuf) {
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    let out = env.path().join("mail.log");
    let script = bin.join("record-mail");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ printf 'ARGS: %s\\n' \"$*\"; cat; printf '\\n=== end ===\\n'; }} >> {}\n",
            sh_quote(&out.display().to_string())
        ),
    )
    .expect("write record-mail");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (bin, out)
}

/// Every mail the recorder was given, in order.
fn mails(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .split("=== end ===")
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

fn count_subject(mails: &[String], subject: &str) -> usize {
    mails
        .iter()
        .filter(|m| m.lines().any(|l| l == format!("Subject: {subject}")))
        .count()
}

/// The adaptive-scaling decisions of the supervisor's log.
fn decisions(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("supervisor.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|d| d["policy"] == "adapt")
        .collect()
}

/// `from → to` of a decision's `what` (`1 → 2 workers: …`).
fn from_to(d: &serde_json::Value) -> (u32, u32) {
    let what = d["what"].as_str().expect("what");
    let (a, rest) = what.split_once(" → ").expect("→ in what");
    let b = rest.split_whitespace().next().expect("to");
    (a.parse().expect("from"), b.parse().expect("to"))
}

fn raw(file: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(file).unwrap_or_default()).into_owned()
}

#[test]
fn slurm_adapt_grows_under_queued_queries_shrinks_when_idle_and_notifies_once() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    if !tmux::require() {
        return;
    }
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-adapt");
    let on = OnSlurm::new(&env, &bed);
    let name = format!("adq{}", std::process::id());
    let data = env.gen_taxi("adapt", 2, 20_000, 0.0);
    let (bin, mail_log) = mail_recorder(&env);
    // The user's config: mail through the recorder; warn 14 minutes before a 15-minute walltime
    // ends (so that moment comes about a minute into the test).
    let config = env.path().join("config");
    std::fs::create_dir_all(config.join("corral")).expect("mkdir config");
    std::fs::write(
        config.join("corral/config.toml"),
        "[notify]\nmail = \"someone@example.org\"\nmail_command = \"record-mail -t\"\nwalltime_minutes = 14\n",
    )
    .expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        corral_tests::expect::path_with_bins()
    );
    // Short patience for a test (the defaults are minutes); the supervisor ticks every second;
    // workers slowed so one worker cannot keep up with three queries.
    let corral = |args: &[&str]| {
        let mut c = on.corral(args);
        c.env("PATH", &path)
            .env("CORRAL_ADAPT_UP_AFTER_SECS", "3")
            .env("CORRAL_ADAPT_IDLE_AFTER_SECS", "20")
            .env("CORRAL_ADAPT_MIN_BETWEEN_SECS", "8")
            .env("CORRAL_SUPERVISOR_TICK_SECS", "1")
            .env("CORRAL_WORKER_TEST_DELAY_MS", "100");
        c
    };
    let _down = on.down_on_drop(&name);
    let dir = env.cluster_dir(&name);

    // Validation first: MAX beyond what the partition holds is refused with the range that fits.
    let too_many = env.run_cmd(&mut corral(&[
        "up", "--name", &name, "--yes", "--adapt", "1..500", "--cores", "2", "--time", "15",
    ]));
    assert_eq!(too_many.code(), Some(2), "{too_many}");
    assert!(
        too_many.stderr.contains("holds at most") && too_many.stderr.contains("use --adapt 1.."),
        "{too_many}"
    );
    let bad = env.run_cmd(&mut corral(&["up", "--name", &name, "--adapt", "3..1"]));
    assert!(!bad.success(), "{bad}");
    assert!(bad.stderr.contains("MIN is larger than MAX"), "{bad}");

    let t0 = now();
    let up = env.run_cmd(&mut corral(&[
        "up", "--name", &name, "--yes", "--adapt", "1..3", "--cores", "2", "--time", "15",
        "--no-tui",
    ]));
    assert!(up.success(), "{up}");
    assert!(
        up.stdout.contains("workers=1 cores=2"),
        "starts at MIN: {up}"
    );

    // The TUI, attached, its raw output recorded.
    let state = env.path().join("state");
    let bed_env: String = bed
        .env()
        .iter()
        .filter(|(k, _)| k != "SLURM_JWT")
        .map(|(k, v)| format!("{k}={} ", sh_quote(v)))
        .collect();
    let tui_cmd = format!(
        "env -u SLURM_JWT {bed_env}PATH={} XDG_STATE_HOME={} XDG_CONFIG_HOME={} {} attach {name} --no-mouse; sleep 600",
        sh_quote(&path),
        sh_quote(&state.display().to_string()),
        sh_quote(&config.display().to_string()),
        sh_quote(&corral_tests::bins::corral().display().to_string()),
    );
    let tui_out = env.path().join("tui1.raw");
    let session = Session::start("adapt1", 120, 36, &tui_cmd);
    session.pipe_to(&tui_out);
    session.wait_text("workers=1", LONG);

    // Three queries at once: one runs, two queue.
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let queries: Vec<_> = (0..3)
        .map(|_| {
            let mut q = corral(&[
                "query",
                &name,
                "--by",
                "payment_type",
                "--json",
                "--partition-bytes",
                "20000",
                &glob,
            ]);
            std::thread::spawn(move || process::run(&mut q, Duration::from_secs(600)))
        })
        .collect();
    // Capacity over time while they run (connected workers, from status).
    let mut capacity: Vec<(u64, u64)> = Vec::new();
    let sample = |capacity: &mut Vec<(u64, u64)>| {
        let v = on.status(&name);
        let cores = v["snapshot"]["cores"].as_u64().unwrap_or(0);
        if capacity.last().map(|c| c.1) != Some(cores / 2) {
            capacity.push((now() - t0, cores / 2));
        }
    };
    while queries.iter().any(|q| !q.is_finished()) {
        sample(&mut capacity);
        std::thread::sleep(Duration::from_millis(500));
    }
    let t_queries_done = now() - t0;
    for q in queries {
        let out = q.join().expect("query thread").expect("query ran");
        assert!(out.success(), "{out}");
        assert_eq!(counts_in(&out.stdout), expected_counts(&data));
    }

    // Idle now: the cluster goes back to MIN after the idle time.
    let shrunk = wait_for(LONG, || {
        sample(&mut capacity);
        decisions(&dir).iter().any(|d| from_to(d).1 == 1)
    });
    assert!(
        shrunk,
        "no decision back to 1 worker: {:?}",
        decisions(&dir)
    );
    assert!(
        wait_for(LONG, || {
            sample(&mut capacity);
            on.status(&name)["snapshot"]["cores"] == 2
        }),
        "the cluster did not shrink to 1 worker"
    );

    let ds = decisions(&dir);
    eprintln!("adaptive decisions of {name} (t = seconds since `corral up`):");
    for d in &ds {
        eprintln!(
            "  t={:>4}  {}  — {}",
            d["at_unix"].as_u64().unwrap_or(0).saturating_sub(t0),
            d["what"].as_str().unwrap_or(""),
            d["why"].as_str().unwrap_or("")
        );
    }
    eprintln!(
        "  (queries submitted at t≈{}, all done at t={t_queries_done})",
        capacity.first().map_or(0, |c| c.0)
    );
    eprintln!("connected workers over time: {capacity:?}");
    let moves: Vec<(u32, u32)> = ds.iter().map(from_to).collect();
    let ups = moves.iter().filter(|(a, b)| b > a).count();
    let downs = moves.iter().filter(|(a, b)| b < a).count();
    assert!(ups >= 1, "it never grew: {moves:?}");
    // 1 → 2 → 3 at most doubling each time: two ups at most, then one down; the direction
    // changes once (no flapping), and every count stays within 1..3.
    assert!(ups <= 2 && downs == 1, "{moves:?}");
    assert_eq!(moves.last().map(|m| m.1), Some(1), "{moves:?}");
    assert!(
        moves
            .iter()
            .all(|(a, b)| (1..=3).contains(a) && (1..=3).contains(b)),
        "{moves:?}"
    );
    assert!(
        moves[..moves.len() - 1].iter().all(|(a, b)| b > a),
        "a down before the last decision: {moves:?}"
    );
    assert!(
        ds[0]["why"].as_str().unwrap_or("").contains("waited"),
        "{ds:?}"
    );
    assert!(
        ds.last().expect("last")["why"]
            .as_str()
            .unwrap_or("")
            .starts_with("idle for"),
        "{ds:?}"
    );
    assert!(
        capacity.iter().any(|c| c.1 >= 2),
        "never more than 1 connected: {capacity:?}"
    );

    // The TUI showed the decisions and rang once per notice.
    session.wait_text("adapts 1..3", LONG);
    let finished = format!("corral: a query finished on cluster {name}");
    assert!(
        wait_for(LONG, || raw(&tui_out)
            .matches(&format!("\x1b]9;{finished}"))
            .count()
            >= 3),
        "the TUI did not announce three finished queries"
    );
    let t1 = raw(&tui_out);
    let ready = format!("corral: cluster {name} is ready");
    assert_eq!(
        t1.matches(&format!("\x1b]9;{ready}")).count(),
        1,
        "ready in the TUI once"
    );
    assert_eq!(t1.matches(&format!("\x1b]777;notify;{ready};")).count(), 1);
    assert_eq!(t1.matches(&format!("\x1b]9;{finished}")).count(), 3);
    assert!(
        t1.contains(&format!("\x07\x1b]9;{ready}")),
        "a bell comes first"
    );

    // A TUI started again repeats nothing it already said.
    session.keys(&["q"]);
    drop(session);
    let tui_out2 = env.path().join("tui2.raw");
    let session2 = Session::start("adapt2", 120, 36, &tui_cmd);
    session2.pipe_to(&tui_out2);
    session2.wait_text("adapts 1..3", LONG);
    let t2 = raw(&tui_out2);
    assert!(
        !t2.contains(&format!("\x1b]9;{ready}")),
        "ready again after a restart"
    );
    assert!(
        !t2.contains(&format!("\x1b]9;{finished}")),
        "queries again after a restart"
    );

    // Mail: ready once, before the queries; each query once.
    let m = mails(&mail_log);
    assert_eq!(count_subject(&m, &ready), 1, "{m:#?}");
    assert_eq!(count_subject(&m, &finished), 3, "{m:#?}");
    let first_ready = m
        .iter()
        .position(|x| x.contains(&format!("Subject: {ready}")));
    let first_query = m
        .iter()
        .position(|x| x.contains(&format!("Subject: {finished}")));
    assert!(first_ready < first_query, "{m:#?}");
    assert!(
        m[0].starts_with("ARGS: -t\nTo: someone@example.org\n"),
        "{}",
        m[0]
    );

    // The walltime warning comes once the job has under 14 minutes left, once.
    let walltime = format!("corral: cluster {name} ends in");
    assert!(
        wait_for(LONG, || mails(&mail_log)
            .iter()
            .any(|x| x.contains(&walltime))),
        "no walltime mail: {:#?}",
        mails(&mail_log)
    );
    let m = mails(&mail_log);
    let w: Vec<&String> = m.iter().filter(|x| x.contains(&walltime)).collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    let left: u64 = w[0]
        .split(&walltime)
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("minutes in the subject");
    assert!(left <= 14, "warned with {left} minutes left: {}", w[0]);

    // A restarted supervisor repeats nothing: kill it, let `scale --adapt` start another one,
    // and wait until the new one has looked at the cluster twice.
    let sup: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("supervisor.json")).expect("supervisor.json"),
    )
    .expect("json");
    let old_pid = sup["pid"].as_u64().expect("pid") as u32;
    corral_tests::cluster::kill9(old_pid);
    let before = mails(&mail_log).len();
    let again = env.run_cmd(&mut corral(&["scale", &name, "--adapt", "1..3"]));
    assert!(again.success(), "{again}");
    let log = dir.join("logs/supervisor.log");
    assert!(
        wait_for(LONG, || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches("supervisor starting")
                .count()
                >= 2
                && decisions_after_restart_ticked(&log)
        }),
        "the new supervisor did not start"
    );
    assert_eq!(mails(&mail_log).len(), before, "{:#?}", mails(&mail_log));

    // Adapting off, one worker more by hand; then that worker's process dies: one mail.
    let off = env.run_cmd(&mut corral(&["scale", &name, "--adapt", "off"]));
    assert!(
        off.success() && off.stdout.contains("adaptive scaling is off"),
        "{off}"
    );
    let two = env.run_cmd(&mut corral(&["scale", &name, "--workers", "2"]));
    assert!(two.success(), "{two}");
    assert!(
        wait_for(LONG, || on.status(&name)["snapshot"]["cores"] == 4),
        "the second worker did not connect"
    );
    let newest_job = *on.job_ids(&name).last().expect("a worker job");
    let victim = worker_pid_of_job(&dir, newest_job).expect("the new worker's process");
    let started = Instant::now();
    corral_tests::cluster::kill9(victim);
    let lost = format!("corral: cluster {name} lost a worker on");
    assert!(
        wait_for(LONG, || mails(&mail_log).iter().any(|x| x.contains(&lost))),
        "no mail about the lost worker ({:?} after the kill): {:#?}",
        started.elapsed(),
        mails(&mail_log)
    );
    // Two more looks of the supervisor: still one.
    let ticks = std::fs::read_to_string(&log).unwrap_or_default().len();
    wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&log).unwrap_or_default().len() > ticks + 200
    });
    let m = mails(&mail_log);
    assert_eq!(m.iter().filter(|x| x.contains(&lost)).count(), 1, "{m:#?}");
    assert_eq!(count_subject(&m, &ready), 1, "{m:#?}");
    drop(session2);
}

/// Whether the log shows a look by the restarted supervisor after it started (its
/// `policies` line comes on its first tick).
fn decisions_after_restart_ticked(log: &Path) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(pos) = text.rfind("supervisor starting") else {
        return false;
    };
    text[pos..].matches("policies").count() >= 1
}

/// The pid of the worker process started for SLURM job `job` (its environment names the job).
fn worker_pid_of_job(dir: &Path, job: u64) -> Option<u32> {
    let want = format!("SLURM_JOB_ID={job}");
    corral_tests::expect::processes_of(dir)
        .into_iter()
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("worker")
                && environ.split(|b| *b == 0).any(|kv| kv == want.as_bytes())
        })
}
