//! Ctrl-C while `corral up` follows a pending job never leaves it queued without a word
//! (issue 16, item 1): without a terminal corral says the job stays queued and that
//! `corral down NAME` cancels it; in a terminal it asks, and `y` cancels it; the TUI's pending
//! screen says the same, and so does `corral up` when the TUI is quit while the job waits.
//!
//! The job is held (`sbatch --hold`, through a `bin_dir` whose `sbatch` adds it and whose other
//! commands are the real ones), so it pends on the real test bed without taking any CPU.

use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_tests::cluster::{Env, wait_for};
use corral_tests::on_slurm::OnSlurm;
use corral_tests::tmux::{self, Session, sh_quote};

/// A directory whose `sbatch` submits held jobs and whose other SLURM commands are the real ones.
fn held_bin_dir(env: &Env) -> PathBuf {
    let dir = env.path().join("held-bin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let real = |p: &str| -> Option<PathBuf> {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(p))
                .find(|c| c.is_file())
        })
    };
    let sbatch = dir.join("sbatch");
    std::fs::write(
        &sbatch,
        format!(
            "#!/bin/sh\nexec {} --hold \"$@\"\n",
            sh_quote(
                &real("sbatch")
                    .expect("sbatch on PATH")
                    .display()
                    .to_string()
            )
        ),
    )
    .expect("write sbatch");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for p in ["squeue", "scontrol", "scancel", "sinfo", "sacct", "srun"] {
        if let Some(path) = real(p) {
            let _ = std::os::unix::fs::symlink(path, dir.join(p));
        }
    }
    dir
}

fn squeue_state(on: OnSlurm<'_>, job_name: &str) -> String {
    on.bed
        .run_ok("squeue", &["-h", "-n", job_name, "-o", "%T"])
        .expect("squeue")
        .stdout
        .trim()
        .to_string()
}

fn up_args<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "up",
        "--name",
        name,
        "--workers",
        "1",
        "--cores",
        "1",
        "--time",
        "10",
        "--yes",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn slurm_ctrl_c_without_a_terminal_says_the_job_stays_queued() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let env = Env::new("slurm-int");
    let on = OnSlurm::new(&env, &bed);
    let name = format!("int{}", std::process::id());
    let _down = on.down_on_drop(&name);
    let bin = held_bin_dir(&env);
    let err_path = env.path().join("up.err");
    let mut cmd = on.corral(&up_args(&name, &["--no-tui"]));
    cmd.env("CORRAL_SLURM_BIN_DIR", &bin)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(env.path().join("up.out")).expect("up.out"))
        .stderr(std::fs::File::create(&err_path).expect("up.err"));
    let mut child = cmd.spawn().expect("corral up");
    let stderr = || std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(60), || stderr().contains("held by you")),
        "never pending: {}",
        stderr()
    );
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    let text = stderr();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(
        text.contains("stays queued") && text.contains(&format!("`corral down {name}` cancels it")),
        "{text}"
    );
    // Before submitting, a summary of the request in words, not the whole script.
    let shown = std::fs::read_to_string(env.path().join("up.out")).expect("up.out");
    assert!(shown.contains("1 worker × 1 core (1 CPU)"), "{shown}");
    assert!(
        shown.contains("--show-script") && !shown.contains("#SBATCH"),
        "{shown}"
    );
    let job_name = format!("corral-{name}");
    assert_eq!(squeue_state(on, &job_name), "PENDING");
    let down = on.run(&["down", &name]);
    assert!(down.success(), "{down}");
    assert_eq!(squeue_state(on, &job_name), "");
}

/// Starts `corral ARGS` in tmux with the bed's environment and the held `sbatch`; the pane
/// stays open after corral exits, so its last words can be read.
fn session(env: &Env, on: OnSlurm<'_>, tag: &str, size: (u16, u16), args: &[&str]) -> Session {
    let corral = corral_tests::bins::corral();
    corral_tests::bins::corral_agent();
    let vars: String = on
        .bed
        .env()
        .iter()
        .filter(|(k, _)| k != "SLURM_JWT")
        .map(|(k, v)| format!("{k}={} ", sh_quote(v)))
        .collect();
    let q = |p: &Path| sh_quote(&p.display().to_string());
    let words: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
    let cmd = format!(
        "env -u SLURM_JWT {vars}XDG_STATE_HOME={} XDG_CONFIG_HOME={} CORRAL_SLURM_BIN_DIR={} {} {}; echo EXIT=$?; sleep 600",
        q(&env.path().join("state")),
        q(&env.path().join("config")),
        q(&held_bin_dir(env)),
        q(&corral),
        words.join(" ")
    );
    Session::start(tag, size.0, size.1, &cmd)
}

#[test]
fn slurm_ctrl_c_in_a_terminal_asks_and_y_cancels_the_job() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    if !tmux::require() {
        return;
    }
    let env = Env::new("slurm-int-tty");
    let on = OnSlurm::new(&env, &bed);
    let name = format!("intt{}", std::process::id());
    let _down = on.down_on_drop(&name);
    let s = session(
        &env,
        on,
        "int-tty",
        (80, 24),
        &up_args(&name, &["--no-tui"]),
    );
    let long = Duration::from_secs(60);
    s.wait_text("held by you", long);
    s.keys(&["C-c"]);
    s.wait_text("Cancel it? [y/N]", long);
    s.keys(&["y", "Enter"]);
    let screen = s.wait_text("EXIT=130", long);
    assert!(screen.contains("cancelled"), "{screen}");
    assert_eq!(squeue_state(on, &format!("corral-{name}")), "");
}

#[test]
fn slurm_quitting_the_pending_screen_says_the_job_stays_queued() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    if !tmux::require() {
        return;
    }
    for (w, h) in [(80, 24), (160, 48)] {
        let env = Env::new("slurm-int-tui");
        let on = OnSlurm::new(&env, &bed);
        let name = format!("intq{w}x{}", std::process::id());
        let _down = on.down_on_drop(&name);
        let s = session(
            &env,
            on,
            &format!("int-tui-{w}"),
            (w, h),
            &up_args(&name, &["--no-mouse"]),
        );
        let long = Duration::from_secs(60);
        s.wait_text("held by you", long);
        let screen = s.wait_text("cancels it", long);
        assert!(
            screen.contains("stays") && screen.contains("queued"),
            "{screen}"
        );
        s.keys(&["q"]);
        s.wait_text("Clusters", long);
        s.keys(&["q"]);
        let screen = s.wait_text("EXIT=0", long);
        let flat = screen.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("stays queued")
                && flat.contains(&format!("`corral down {name}` cancels it")),
            "{screen}"
        );
        let job_name = format!("corral-{name}");
        assert_eq!(squeue_state(on, &job_name), "PENDING");
    }
}
