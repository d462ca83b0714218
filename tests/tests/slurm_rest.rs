//! corral over slurmrestd, on the test bed's real slurmrestd (SLURM 22.05: API v0.0.38): `up`,
//! `status`, `scale` and `down` over its unix socket and over TCP with a JWT; a run with
//! sbatch, squeue, scontrol, scancel and sacct absent from PATH (nothing falls back to them);
//! and the errors a user meets (no socket, a refused token, an expired one), one line each.
//!
//! Jobs are small (2–3 workers × 1 core) and every cluster is brought down by a guard.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use corral_tests::cluster::{Env, wait_for};
use corral_tests::on_slurm::OnSlurm;
use corral_tests::process::Output;
use corral_tests::slurm::Slurm;

/// How `corral` reaches slurmrestd in a test.
enum Via {
    Socket,
    /// TCP; the token from `scontrol token` (renewable).
    TokenCommand,
    /// TCP; this token in `SLURM_JWT`.
    Jwt(String),
}

fn bed_var(bed: &Slurm, name: &str) -> String {
    bed.var(name)
        .unwrap_or_else(|| panic!("the test bed's env ({}) has no {name}", bed.source()))
        .to_string()
}

fn rest(on: OnSlurm<'_>, via: &Via, args: &[&str]) -> Command {
    let mut c = on.corral(args);
    c.env("CORRAL_SLURM_API", "rest");
    match via {
        Via::Socket => {
            c.env(
                "CORRAL_SLURM_REST_URL",
                format!("unix://{}", bed_var(on.bed, "SLURMRESTD_SOCKET")),
            );
        }
        Via::TokenCommand => {
            c.env("CORRAL_SLURM_REST_URL", bed_var(on.bed, "SLURMRESTD_URL"))
                .env("CORRAL_SLURM_TOKEN_COMMAND", "scontrol token lifespan=900");
        }
        Via::Jwt(token) => {
            c.env("CORRAL_SLURM_REST_URL", bed_var(on.bed, "SLURMRESTD_URL"))
                .env("SLURM_JWT", token);
        }
    }
    c
}

fn run(on: OnSlurm<'_>, via: &Via, args: &[&str]) -> Output {
    on.env.run_cmd(&mut rest(on, via, args))
}

fn status(on: OnSlurm<'_>, via: &Via, name: &str) -> serde_json::Value {
    let out = run(on, via, &["status", name, "--json"]);
    serde_json::from_str(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// up (2 × 1 core), status, scale to 3 and back to 2, down: all through `via`.
fn lifecycle(on: OnSlurm<'_>, via: &Via, name: &str, api: &str) {
    let guard = on.down_on_drop(name);
    let up = run(
        on,
        via,
        &[
            "up",
            "--name",
            name,
            "--workers",
            "2",
            "--cores",
            "1",
            "--time",
            "0:15:00",
            "--yes",
        ],
    );
    assert!(up.success(), "{up}");
    assert!(up.stderr.contains("workers 2/2 connected"), "{up}");
    let ids = on.job_ids(name);
    assert_eq!(ids.len(), 1, "{up}");

    let v = status(on, via, name);
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["snapshot"]["cores"], 2, "{v}");
    let shown = v["slurm_api"].as_str().unwrap_or_default().to_string();
    assert!(shown.starts_with(api) && shown.contains("(v0.0."), "{v}");
    let text = run(on, via, &["status", name]);
    assert!(
        text.stdout.contains(&format!("SLURM through {api}")),
        "{text}"
    );
    assert!(
        text.stdout.contains(&format!("{} RUNNING", ids[0])),
        "{text}"
    );

    let bigger = run(on, via, &["scale", name, "--workers", "3"]);
    assert!(bigger.success(), "{bigger}");
    assert!(bigger.stdout.contains("2 → 3"), "{bigger}");
    assert!(
        wait_for(
            Duration::from_secs(90),
            || status(on, via, name)["snapshot"]["cores"] == 3
        ),
        "the third worker never connected: {}",
        status(on, via, name)
    );
    let smaller = run(on, via, &["scale", name, "--workers", "2"]);
    assert!(smaller.success(), "{smaller}");
    assert!(smaller.stdout.contains("3 → 2"), "{smaller}");

    let all = on.job_ids(name);
    assert_eq!(all.len(), 2, "the scale-up job is recorded");
    let down = run(on, via, &["down", name]);
    assert!(down.success(), "{down}");
    assert!(down.stdout.contains("core-hours"), "{down}");
    assert_eq!(on.still_queued(&all), Vec::<u64>::new(), "{down}");
    assert_eq!(status(on, via, name)["state"], "ended");
    drop(guard);
}

#[test]
fn slurm_rest_socket_up_status_scale_down() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let env = Env::new("slurm-rest-socket");
    let on = OnSlurm::new(&env, &bed);
    let api = format!("slurmrestd unix://{}", bed_var(&bed, "SLURMRESTD_SOCKET"));
    lifecycle(on, &Via::Socket, "rsock", &api);
}

#[test]
fn slurm_rest_tcp_with_a_renewed_token_up_status_scale_down() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let env = Env::new("slurm-rest-tcp");
    let on = OnSlurm::new(&env, &bed);
    let api = format!("slurmrestd {}", bed_var(&bed, "SLURMRESTD_URL"));
    lifecycle(on, &Via::TokenCommand, "rtcp", &api);
}

#[test]
fn slurm_rest_tcp_with_slurm_jwt_up_and_down() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let env = Env::new("slurm-rest-jwt");
    let on = OnSlurm::new(&env, &bed);
    let via = Via::Jwt(bed_var(&bed, "SLURMRESTD_TOKEN"));
    let _guard = on.down_on_drop("rjwt");
    let up = run(
        on,
        &via,
        &[
            "up",
            "--name",
            "rjwt",
            "--workers",
            "2",
            "--cores",
            "1",
            "--time",
            "0:15:00",
            "--yes",
        ],
    );
    assert!(up.success(), "{up}");
    assert_eq!(status(on, &via, "rjwt")["state"], "running");
    let ids = on.job_ids("rjwt");
    let down = run(on, &via, &["down", "rjwt"]);
    assert!(down.success(), "{down}");
    assert_eq!(on.still_queued(&ids), Vec::<u64>::new());
}

/// A directory with every program of the system's PATH except SLURM's client tools (`srun`
/// stays: the job script runs it on the nodes, and the job's PATH is the submitter's).
fn path_without_slurm_tools(dir: &Path) -> String {
    const ABSENT: [&str; 6] = ["sbatch", "squeue", "scontrol", "scancel", "sacct", "sinfo"];
    std::fs::create_dir_all(dir).expect("mkdir");
    for sys in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let Ok(entries) = std::fs::read_dir(sys) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let target = dir.join(&name);
            if ABSENT.iter().any(|a| name == *a) || target.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), &target);
        }
    }
    let bins = corral_tests::bins::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    format!("{}:{}", bins.display(), dir.display())
}

#[test]
fn slurm_rest_without_the_tools_on_path_auto_takes_slurmrestd() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let env = Env::new("slurm-rest-notools");
    let on = OnSlurm::new(&env, &bed);
    let path = path_without_slurm_tools(&env.path().join("nobin"));
    let corral = |args: &[&str]| {
        // api stays "auto": only the URL is configured, and sbatch is nowhere on PATH.
        let mut c = on.corral(args);
        c.env("PATH", &path).env(
            "CORRAL_SLURM_REST_URL",
            format!("unix://{}", bed_var(&bed, "SLURMRESTD_SOCKET")),
        );
        on.env.run_cmd(&mut c)
    };
    let which = corral(&["agg", "--help"]);
    assert!(which.success(), "{which}");
    let sh = on.env.run_cmd(
        Command::new("sh")
            .args([
                "-c",
                "command -v sbatch squeue scontrol scancel sacct || true",
            ])
            .env("PATH", &path),
    );
    assert_eq!(sh.stdout.trim(), "", "the tools are gone from PATH");

    let _guard = on.down_on_drop("notools");
    let up = corral(&[
        "up",
        "--name",
        "notools",
        "--workers",
        "2",
        "--cores",
        "1",
        "--time",
        "0:15:00",
        "--yes",
    ]);
    assert!(up.success(), "{up}");
    let st = corral(&["status", "notools", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap_or_default();
    assert_eq!(v["state"], "running", "{st}");
    assert!(
        v["slurm_api"]
            .as_str()
            .unwrap_or_default()
            .starts_with("slurmrestd unix://"),
        "{st}"
    );
    let ids = on.job_ids("notools");
    let down = corral(&["down", "notools"]);
    assert!(down.success(), "{down}");
    assert_eq!(on.still_queued(&ids), Vec::<u64>::new(), "{down}");
}

/// The error is one line on stderr (after `corral: error: `) containing every one of `words`.
fn one_line_saying(out: &Output, words: &[&str]) {
    assert!(!out.success(), "{out}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("corral: error:"))
        .unwrap_or_else(|| panic!("no error line: {out}"));
    for w in words {
        assert!(line.contains(w), "{w:?} not in {line:?}");
    }
}

#[test]
fn slurm_rest_errors_say_what_to_do() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let env = Env::new("slurm-rest-errors");
    let on = OnSlurm::new(&env, &bed);
    let up = [
        "up",
        "--name",
        "never",
        "--workers",
        "1",
        "--cores",
        "1",
        "--time",
        "0:05:00",
        "--yes",
    ];

    let mut c = on.corral(&up);
    c.env("CORRAL_SLURM_API", "rest").env(
        "CORRAL_SLURM_REST_URL",
        "unix:///nonexistent/slurmrestd.sock",
    );
    one_line_saying(
        &on.env.run_cmd(&mut c),
        &["/nonexistent/slurmrestd.sock", "does not exist", "rest_url"],
    );

    let refused = run(on, &Via::Jwt("not.a-valid.token".into()), &up);
    one_line_saying(
        &refused,
        &[
            "did not accept corral's credentials",
            "SLURM_JWT",
            "token_command",
        ],
    );

    // A token whose claims say it expired (`exp` 1 s after the epoch): refused before sending.
    let expired = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjEsImlhdCI6MCwic3VuIjoicm9vdCJ9.c2ln";
    let out = run(on, &Via::Jwt(expired.into()), &up);
    one_line_saying(&out, &["SLURM_JWT expired", "scontrol token"]);

    let mut c = on.corral(&up);
    c.env("CORRAL_SLURM_API", "rest")
        .env("CORRAL_SLURM_REST_URL", bed_var(&bed, "SLURMRESTD_URL"))
        .env_remove("SLURM_JWT");
    one_line_saying(
        &on.env.run_cmd(&mut c),
        &["no token", "SLURM_JWT", "token_command"],
    );

    assert!(
        !env.cluster_dir("never").join("jobs.json").exists(),
        "nothing was submitted"
    );
}

/// The limits validation reads are the same over slurmrestd as from `scontrol`, and a request
/// that does not fit is refused over REST with the same words.
#[tokio::test]
async fn slurm_rest_reads_the_limits_scontrol_reads() {
    use corral_core::config::{SlurmApi, SlurmConfig};
    use corral_core::model::{ClusterSpec, Walltime};
    use corral_core::slurm::validate::Field;
    use corral_core::slurm::{Slurm, SlurmCli, SlurmRest, lifecycle};

    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let cli = SlurmCli::new(&SlurmConfig::default()).with_env(bed.env().iter().cloned());
    let rest = SlurmRest::new(&SlurmConfig {
        api: SlurmApi::Rest,
        rest_url: format!("unix://{}", bed_var(&bed, "SLURMRESTD_SOCKET")),
        ..SlurmConfig::default()
    });
    let over_rest = rest.partitions().await.expect("GET partitions");
    let from_scontrol = cli.partitions().await.expect("scontrol show partition");
    assert_eq!(over_rest, from_scontrol);
    assert!(rest.describe().contains("(v0.0."), "{}", rest.describe());
    let shape = |nodes: Vec<corral_core::slurm::Node>| {
        nodes
            .into_iter()
            .map(|n| (n.name, n.cpus, n.real_memory_mb, n.partitions))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shape(rest.nodes().await.expect("GET nodes")),
        shape(cli.nodes().await.expect("scontrol show node"))
    );

    let dir = corral_tests::shared_tempdir("rest-limits");
    let spec = ClusterSpec {
        name: corral_tests::unique_name("rest-limits"),
        workers: 16,
        cores_per_worker: 2,
        mem_per_worker_mb: None,
        walltime: Walltime { minutes: 60 },
        partition: Some("small".into()),
        account: None,
        supervise: Default::default(),
        dask: None,
    };
    let refused = lifecycle::check(&rest, &spec, dir.path(), &["/usr/bin/true".to_string()])
        .await
        .expect("check runs");
    assert_eq!(
        refused.verdict.problem(Field::Workers),
        Some(
            "small allows 8 CPUs per node and 1 node: at most 4 workers × 2 cores there, or use partition debug"
        )
    );
}

/// `my_jobs` over slurmrestd lists the caller's jobs only — another user's job on the same
/// SLURM is not among them — and the same jobs as `squeue --me` through the tools.
#[tokio::test]
async fn slurm_rest_my_jobs_lists_only_mine_as_squeue_me_does() {
    use corral_core::config::{SlurmApi, SlurmConfig};
    use corral_core::slurm::{Slurm as _, SlurmCli, SlurmRest};
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let name = corral_tests::unique_name("rest-mine");
    let held = |extra: &[&str]| {
        let mut args = vec!["--hold", "-J", name.as_str(), "--wrap", "true"];
        args.extend_from_slice(extra);
        bed.sbatch(&args).expect("sbatch --hold")
    };
    let mine = held(&[]);
    // root may submit as another user: a stranger's job on the same SLURM.
    let theirs = held(&["--uid=nobody", "--gid=nogroup"]);
    let _cancel = (bed.cancel_on_drop(mine), bed.cancel_on_drop(theirs));
    let socket = bed_var(&bed, "SLURMRESTD_SOCKET");
    let rest = SlurmRest::with_env_token(
        &SlurmConfig {
            api: SlurmApi::Rest,
            rest_url: format!("unix://{socket}"),
            ..SlurmConfig::default()
        },
        None,
    );
    let cli = SlurmCli::new(&SlurmConfig::default()).with_env(bed.env().iter().cloned());
    let ours = |jobs: Vec<corral_core::slurm::QueuedJob>| {
        let mut ids: Vec<u64> = jobs
            .iter()
            .map(|j| j.id.0)
            .filter(|id| [mine, theirs].contains(id))
            .collect();
        ids.sort_unstable();
        ids
    };
    let over_rest = ours(rest.my_jobs().await.expect("my_jobs over slurmrestd"));
    let over_cli = ours(cli.my_jobs().await.expect("squeue --me"));
    assert_eq!(over_rest, vec![mine], "over slurmrestd");
    assert_eq!(over_cli, over_rest, "the tools and slurmrestd disagree");
}
