//! `corral gen taxi` as a user runs it: the real binary, real files, real failures.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use corral_core::datagen::{Expected, HEADER};

fn corral(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_corral"));
    // Keep the user's own config out of the test.
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env_remove("SLURM_CPUS_PER_TASK");
    c
}

fn gen_taxi(home: &Path, out: &Path, args: &[&str]) -> Output {
    corral(home)
        .args(["gen", "taxi", "--out"])
        .arg(out)
        .args(args)
        .output()
        .expect("run corral")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn expected(dir: &Path) -> Expected {
    serde_json::from_slice(&fs::read(dir.join("expected.json")).expect("expected.json"))
        .expect("expected.json parses")
}

/// A failed run prints exactly one `corral: error:` line and exits non-zero.
fn assert_one_line_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    assert!(stderr.starts_with("corral: error: "), "stderr: {stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
}

#[test]
fn writes_monthly_files_and_expected_json() {
    let home = tempdir();
    let out = home.path().join("data/new");
    let o = gen_taxi(
        home.path(),
        &out,
        &["--files", "3", "--rows", "5000", "--quiet"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    assert_eq!(
        names(&out),
        [
            "expected.json",
            "yellow_tripdata_2015-01.csv",
            "yellow_tripdata_2015-02.csv",
            "yellow_tripdata_2015-03.csv"
        ]
    );
    let exp = expected(&out);
    assert_eq!(
        (exp.generator.as_str(), exp.format, exp.seed),
        ("corral gen taxi", 1, 42)
    );
    assert_eq!(exp.rows, 15_000);
    assert_eq!(exp.payment_type.values().sum::<u64>(), 15_000);
    let mut bytes = 0;
    for f in &exp.files {
        let raw = fs::read_to_string(out.join(&f.name)).expect("csv");
        assert!(raw.starts_with(HEADER));
        assert_eq!(raw.lines().count() as u64, f.rows + 1);
        assert_eq!(raw.len() as u64, f.bytes);
        let month = &f.name["yellow_tripdata_".len()..][..7];
        let mut counted = std::collections::BTreeMap::<String, u64>::new();
        for line in raw.lines().skip(1) {
            let v: Vec<&str> = line.split(',').collect();
            assert_eq!(v.len(), 19);
            assert!(v[1].starts_with(month), "{line}");
            *counted.entry(v[11].to_string()).or_default() += 1;
        }
        assert_eq!(counted, f.payment_type);
        bytes += f.bytes;
    }
    assert_eq!(bytes, exp.bytes);
}

#[test]
fn the_same_seed_gives_the_same_bytes_whatever_the_threads() {
    let home = tempdir();
    let (a, b, c) = (
        home.path().join("a"),
        home.path().join("b"),
        home.path().join("c"),
    );
    let args = [
        "--files", "2", "--rows", "20000", "--dirty", "0.05", "--quiet",
    ];
    for (dir, threads) in [(&a, "1"), (&b, "4")] {
        let mut all = args.to_vec();
        all.extend(["--threads", threads]);
        let o = gen_taxi(home.path(), dir, &all);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(names(&a), names(&b));
    for name in names(&a) {
        assert!(
            fs::read(a.join(&name)).ok() == fs::read(b.join(&name)).ok(),
            "{name} differs"
        );
    }
    let mut other = args.to_vec();
    other.extend(["--seed", "43"]);
    assert!(gen_taxi(home.path(), &c, &other).status.success());
    assert_ne!(
        fs::read(a.join("yellow_tripdata_2015-01.csv")).ok(),
        fs::read(c.join("yellow_tripdata_2015-01.csv")).ok()
    );
}

#[test]
fn bad_arguments_get_one_line_and_write_nothing() {
    let home = tempdir();
    let out = home.path().join("out");
    for (args, needle) in [
        (&["--rows", "-1"][..], "--rows"),
        (&["--rows", "lots"][..], "--rows"),
        (&["--files", "0"][..], "--files"),
        (&["--files", "-3"][..], "--files"),
        (&["--dirty", "2"][..], "--dirty"),
        (&["--dirty", "-0.1"][..], "--dirty"),
        (&["--dirty", "NaN"][..], "--dirty"),
        (&["--seed", "-5"][..], "--seed"),
        (&["--threads", "0"][..], "--threads"),
    ] {
        let o = gen_taxi(home.path(), &out, args);
        assert_one_line_failure(&o, needle);
        assert!(!out.exists(), "{args:?} created {out:?}");
    }
}

#[test]
fn an_unusable_out_is_refused_in_one_line() {
    let home = tempdir();
    let file = home.path().join("plain-file");
    fs::write(&file, b"not a directory").expect("write");
    assert_one_line_failure(
        &gen_taxi(home.path(), &file, &["--rows", "10"]),
        "not a directory",
    );
    assert_one_line_failure(
        &gen_taxi(home.path(), &file.join("sub"), &["--rows", "10"]),
        "cannot create output directory",
    );

    let locked = home.path().join("locked");
    fs::create_dir(&locked).expect("mkdir");
    let mut perms = fs::metadata(&locked).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o500);
    fs::set_permissions(&locked, perms).expect("chmod");
    // root ignores permission bits; there is nothing to test then.
    if fs::write(locked.join("probe"), b"").is_err() {
        let o = gen_taxi(home.path(), &locked, &["--rows", "10"]);
        assert_one_line_failure(&o, "cannot write");
        assert!(names(&locked).is_empty());
    }
}

/// A file-size limit stands in for a full disk: the write fails with EFBIG part-way.
#[test]
fn a_full_disk_leaves_no_file_that_looks_complete() {
    let home = tempdir();
    let out = home.path().join("out");
    // An earlier complete run: its expected.json must not survive to vouch for new files.
    let o = gen_taxi(home.path(), &out, &["--rows", "100", "--quiet"]);
    assert!(o.status.success());
    fs::remove_file(out.join("yellow_tripdata_2015-01.csv")).expect("rm");

    let o = Command::new("sh")
        .arg("-c")
        // SIGXFSZ ignored so write() returns EFBIG instead of killing the process.
        .arg("trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_corral"))
        .args(["gen", "taxi", "--files", "2", "--rows", "50000", "--out"])
        .arg(&out)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .output()
        .expect("run sh");
    assert_one_line_failure(&o, "cannot write");
    assert_eq!(names(&out), Vec::<String>::new());
}

#[test]
fn existing_files_are_replaced() {
    let home = tempdir();
    let out = home.path().join("out");
    assert!(
        gen_taxi(home.path(), &out, &["--rows", "3000", "--quiet"])
            .status
            .success()
    );
    let o = gen_taxi(
        home.path(),
        &out,
        &["--rows", "1000", "--seed", "7", "--json"],
    );
    assert!(o.status.success());
    let printed: Expected = serde_json::from_slice(&o.stdout).expect("--json prints expected.json");
    let exp = expected(&out);
    assert_eq!(printed, exp);
    assert_eq!((exp.rows, exp.seed), (1000, 7));
    let raw = fs::read_to_string(out.join("yellow_tripdata_2015-01.csv")).expect("csv");
    assert_eq!(raw.lines().count(), 1001);
    assert_eq!(names(&out).len(), 2);
}

#[test]
fn dirty_rows_are_counted_and_the_summary_goes_to_stdout() {
    let home = tempdir();
    let out = home.path().join("out");
    let o = gen_taxi(home.path(), &out, &["--rows", "20000", "--dirty", "0.1"]);
    assert!(o.status.success());
    // Not a terminal: no progress drawn.
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("wrote 1 file (20000 rows"), "{stdout}");
    let exp = expected(&out);
    let d = &exp.defects;
    assert!((1_600..2_400).contains(&d.total()), "{d:?}");
    assert_eq!(
        exp.bad_rows.wrong_field_count,
        d.too_few_fields + d.too_many_fields
    );
    assert_eq!(
        exp.payment_type.values().sum::<u64>() + exp.bad_rows.wrong_field_count,
        exp.rows
    );
}
