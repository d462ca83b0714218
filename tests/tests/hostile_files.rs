//! Files that are not what they seem, on a local cluster and in `corral agg`: a huge file whose
//! first line never ends, a binary file, and a planned file replaced by a FIFO mid-query. Each
//! is a clear error naming the file, in seconds; nothing hangs; the next query runs.

use std::process::{Command, Stdio};
use std::time::Duration;

use corral_tests::cluster::{Env, wait_for};

fn mkfifo(path: &std::path::Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A 1 GiB file with no newline: 2 MiB of text, then (sparse) zeros the cap never reaches.
fn endless_header(path: &std::path::Path) {
    let f = std::fs::File::create(path).expect("create");
    std::io::Write::write_all(&mut &f, &vec![b'x'; 2 << 20]).expect("write");
    f.set_len(1 << 30).expect("set_len");
}

#[test]
fn a_gigabyte_without_a_newline_and_a_binary_file_are_clear_errors() {
    let env = Env::new("hdr");
    let big = env.data().join("big.csv");
    endless_header(&big);
    let big_s = big.to_string_lossy().into_owned();
    env.up("h", 1, 1, &[]);
    for out in [
        env.run(&["query", "h", "--by", "0", &big_s]),
        env.run(&["agg", "--by", "0", &big_s]),
    ] {
        assert!(!out.success(), "{out}");
        assert!(
            out.stderr.contains("big.csv") && out.stderr.contains("does not end within 1 MiB"),
            "{out}"
        );
    }
    // A program is not a CSV file: one line, not kilobytes of its bytes.
    let out = env.run(&["agg", "--by", "0", "/bin/ls"]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("/bin/ls: not a CSV file (binary data at byte"),
        "{out}"
    );
    assert!(out.stderr.len() < 300, "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    // The cluster serves the next query.
    let ok = env.data().join("ok.csv");
    std::fs::write(&ok, "k\n1\n2\n1\n").expect("write");
    let out = env.ok(&["query", "h", "--by", "k", "--json", &ok.to_string_lossy()]);
    assert!(out.stdout.contains("\"rows\":3"), "{out}");
}

#[test]
fn a_planned_file_replaced_by_a_fifo_mid_query_fails_naming_it() {
    let env = Env::new("fifo");
    let data = env.gen_taxi("d", 1, 20_000, 0.0);
    let victim = std::fs::read_dir(&data)
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "csv"))
        .expect("a csv file");
    // Each partition takes ≥ 300 ms: the query is still running when the file is swapped.
    env.up("f", 2, 1, &[("CORRAL_WORKER_TEST_DELAY_MS", "300")]);
    let v = victim.to_string_lossy().into_owned();
    let child = env
        .corral(&[
            "query",
            "f",
            "--by",
            "payment_type",
            "--partition-bytes",
            "65536",
            &v,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("query starts");
    assert!(
        wait_for(Duration::from_secs(60), || {
            env.status("f")["snapshot"]["query"]["tasks"]["done"]
                .as_u64()
                .is_some_and(|d| d >= 2)
        }),
        "the query made no progress: {}",
        env.status("f")
    );
    std::fs::remove_file(&victim).expect("rm");
    mkfifo(&victim);
    let out = child.wait_with_output().expect("query ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&v) && stderr.contains("changed while reading"),
        "{stderr}"
    );
    // Nothing hangs: the workers are alive and the next query runs.
    std::fs::remove_file(&victim).expect("rm fifo");
    let ok = env.data().join("ok.csv");
    std::fs::write(&ok, "k\n1\n2\n1\n").expect("write");
    let out = env.ok(&["query", "f", "--by", "k", "--json", &ok.to_string_lossy()]);
    assert!(out.stdout.contains("\"rows\":3"), "{out}");
    let st = env.status("f");
    let alive = st["snapshot"]["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter(|w| w["state"] == "Alive")
        .count();
    assert_eq!(alive, 2, "{st}");
}

#[test]
fn escape_sequences_in_the_data_are_printed_escaped() {
    let env = Env::new("esc");
    let evil = env.data().join("evil.csv");
    // A header and keys that would retitle the terminal (OSC 0), write the clipboard (OSC 52)
    // and clear the screen, if printed raw.
    std::fs::write(
        &evil,
        "k\u{1b}[2J,v\n\u{1b}]0;pwned\u{7},1\n\u{1b}]52;c;Zm9v\u{7},2\nplain,3\n",
    )
    .expect("write");
    let e = evil.to_string_lossy().into_owned();
    env.up("e", 1, 1, &[]);
    let by = "k\u{1b}[2J";
    for out in [
        env.ok(&["agg", "--by", by, "--sum", "v", &e]),
        env.ok(&["query", "e", "--by", by, "--sum", "v", &e]),
    ] {
        for text in [&out.stdout, &out.stderr] {
            assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{out}");
        }
        assert!(out.stdout.contains("\\x1b]0;pwned\\x07"), "{out}");
        assert!(out.stdout.contains("\\x1b]52;c;Zm9v\\x07"), "{out}");
        assert!(out.stdout.contains("k\\x1b[2J"), "{out}");
        assert!(out.stdout.contains("plain"), "{out}");
    }
    // An error naming the column shows the escapes too.
    let out = env.run(&["agg", "--by", "nope\u{1b}]0;x\u{7}", &e]);
    assert!(!out.success(), "{out}");
    assert!(!out.stderr.contains('\u{1b}'), "{out}");
    assert!(out.stderr.contains("\\x1b[2J"), "{out}");
}
