//! `corral agg` as a user runs it: the real binary on data from `corral gen taxi` (whose
//! expected.json holds the exact answers), on hand-written fixtures, and on files that change
//! while a query runs.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use corral_core::datagen::Expected;

fn corral(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_corral"));
    // Keep the user's own config and allocation out of the test.
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env_remove("SLURM_CPUS_PER_TASK")
        .env_remove("CORRAL_AGG_TEST_DELAY_MS");
    c
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn gen_taxi(home: &Path, out: &Path, args: &[&str]) -> Expected {
    let o = corral(home)
        .args(["gen", "taxi", "-q", "--out"])
        .arg(out)
        .args(args)
        .output()
        .expect("run corral gen taxi");
    assert!(
        o.status.success(),
        "gen taxi: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&fs::read(out.join("expected.json")).expect("expected.json"))
        .expect("expected.json parses")
}

fn agg(home: &Path, args: &[&str]) -> Output {
    corral(home)
        .arg("agg")
        .args(args)
        .output()
        .expect("run corral agg")
}

fn agg_json(home: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = agg(home, &all);
    assert!(
        o.status.success(),
        "agg failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "--json writes nothing to stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("stdout is one JSON object")
}

/// key → count of the first group-by column.
fn counts(v: &serde_json::Value) -> std::collections::BTreeMap<String, u64> {
    v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["key"][0].as_str().unwrap_or("?").to_string(),
                g["count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn bad(v: &serde_json::Value, reason: &str) -> u64 {
    v["bad_rows"]["by_reason"][reason].as_u64().unwrap_or(0)
}

/// A failed run prints exactly one `corral: error:` line and exits 1.
fn assert_one_line_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    assert!(stderr.starts_with("corral: error: "), "stderr: {stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
}

/// Decimal text → hundredths, exactly.
fn cents(s: &str) -> i64 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let neg = int.starts_with('-');
    let int: i64 = int.trim_start_matches('-').parse().expect("integer part");
    let mut frac = frac.to_string();
    assert!(
        frac.len() <= 2 || frac[2..].chars().all(|c| c == '0'),
        "{s}"
    );
    frac.truncate(2);
    while frac.len() < 2 {
        frac.push('0');
    }
    let c = int * 100 + frac.parse::<i64>().expect("fraction");
    if neg { -c } else { c }
}

#[test]
fn clean_taxi_counts_equal_expected_json() {
    let home = tempdir();
    let data = home.path().join("taxi");
    let e = gen_taxi(
        home.path(),
        &data,
        &["--files", "3", "--rows", "20000", "--seed", "7"],
    );
    let glob = format!("{}/*.csv", data.display());
    let v = agg_json(home.path(), &["--by", "payment_type", &glob]);
    assert_eq!(counts(&v), e.payment_type);
    assert_eq!(v["rows"].as_u64(), Some(e.rows));
    assert_eq!(v["bad_rows"]["total"].as_u64(), Some(0));
    assert_eq!(v["bytes"].as_u64(), Some(e.bytes));
    // One file at a time gives that file's counts.
    for f in &e.files {
        let path = data.join(&f.name);
        let v = agg_json(
            home.path(),
            &["--by", "payment_type", &path.to_string_lossy()],
        );
        assert_eq!(counts(&v), f.payment_type, "{}", f.name);
    }
}

#[test]
fn dirty_taxi_counts_and_bad_rows_equal_expected_json() {
    let home = tempdir();
    let data = home.path().join("taxi");
    let e = gen_taxi(
        home.path(),
        &data,
        &["--files", "2", "--rows", "30000", "--dirty", "0.01"],
    );
    assert!(
        e.defects.embedded_newline > 0 && e.defects.too_few_fields > 0,
        "{:?}",
        e.defects
    );
    let glob = format!("{}/*.csv", data.display());
    // Small partitions split inside quoted newlines often; the plain-read path too.
    for extra in [
        &[][..],
        &["--partition-bytes", "4099", "--threads", "2"],
        &["--no-mmap", "--partition-bytes", "65536"],
    ] {
        let mut args = vec!["--by", "payment_type"];
        args.extend_from_slice(extra);
        args.push(&glob);
        let v = agg_json(home.path(), &args);
        assert_eq!(counts(&v), e.payment_type, "{extra:?}");
        assert_eq!(
            bad(&v, "wrong_field_count"),
            e.bad_rows.wrong_field_count,
            "{extra:?}"
        );
        assert_eq!(
            v["bad_rows"]["total"].as_u64(),
            Some(e.bad_rows.wrong_field_count),
            "{extra:?}"
        );
        assert_eq!(
            v["rows"].as_u64(),
            Some(e.rows - e.bad_rows.wrong_field_count)
        );
        let examples = v["bad_rows"]["examples"].as_array().expect("examples");
        assert_eq!(examples.len(), 5);
        assert!(examples.iter().all(|x| x["line"].as_u64().unwrap_or(0) > 1));
    }

    // fare_amount sums, exact to the cent. Non-numeric fares (`12.5.1`, `$12.50`) are bad
    // rows; empty and `N/A` are missing values, skipped like pandas' NaN.
    let v = agg_json(
        home.path(),
        &["--by", "payment_type", "--sum", "fare_amount", &glob],
    );
    assert_eq!(v["exact"].as_bool(), Some(true));
    let sums: std::collections::BTreeMap<String, i64> = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["key"][0].as_str().unwrap_or("?").to_string(),
                cents(g["values"][0].as_str().expect("exact sum")),
            )
        })
        .collect();
    assert_eq!(sums, e.fare_amount_sum_cents);
    // Issue 12: they are bad values of fare_amount, left out of the sum only: the rows count.
    let missing = v["missing"]["sum(fare_amount)"].as_u64().unwrap_or(0);
    let bad_values = v["bad_values"].as_array().expect("bad_values");
    let fare = bad_values
        .iter()
        .find(|b| b["column"] == "fare_amount" && b["reason"] == "non_numeric")
        .expect("fare_amount bad values");
    assert_eq!(fare["left_out_of"], serde_json::json!(["sum(fare_amount)"]));
    assert!(fare["example"]["line"].as_u64().unwrap_or(0) > 1, "{fare}");
    assert_eq!(
        fare["rows"].as_u64().unwrap_or(0) + missing,
        e.defects.non_numeric_amount
    );
    assert_eq!(bad(&v, "non_numeric"), 0);
    assert_eq!(
        counts(&v),
        e.payment_type,
        "adding a sum does not change the counts"
    );
}

#[test]
fn strict_fails_on_the_first_bad_row_naming_file_and_line() {
    let home = tempdir();
    let data = home.path().join("taxi");
    gen_taxi(
        home.path(),
        &data,
        &["--files", "1", "--rows", "5000", "--dirty", "0.05"],
    );
    let glob = format!("{}/*.csv", data.display());
    let o = agg(home.path(), &["--by", "payment_type", "--strict", &glob]);
    assert_one_line_failure(&o, "yellow_tripdata_2015-01.csv:");
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad row (wrong_field_count)"));
}

#[test]
fn prints_like_pandas_value_counts() {
    let home = tempdir();
    let f = home.path().join("t.csv");
    fs::write(
        &f,
        "a,payment_type,fare\r\nx,2,1.5\r\nx,\"2\",2\r\nx,1,3\r\nx,10,4\r\nx,2,5,6\r\n",
    )
    .expect("write");
    let o = agg(home.path(), &["--by", "payment_type", &f.to_string_lossy()]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "payment_type\n2     2\n1     1\n10    1\nName: count, dtype: int64\n"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("wrong_field_count: 1"), "{stderr}");
    assert!(
        stderr.contains(":6: wrong_field_count: \"x,2,5,6\""),
        "{stderr}"
    );
    assert!(stderr.contains("GB/s"), "{stderr}");

    let o = agg(
        home.path(),
        &[
            "--by",
            "payment_type",
            "--count",
            "--sum",
            "fare",
            "--max",
            "fare",
            &f.to_string_lossy(),
        ],
    );
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "payment_type  count  sum(fare)  max(fare)\n\
         2                 2        3.5          2\n\
         1                 1          3          3\n\
         10                1          4          4\n"
    );
    // --no-header: columns by index; the header line is then a row of its own group.
    let o = agg(
        home.path(),
        &["--no-header", "--by", "1", &f.to_string_lossy()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("payment_type    1\n"));
}

#[test]
fn input_errors_name_the_path() {
    let home = tempdir();
    let d = home.path().join("data");
    fs::create_dir_all(&d).expect("mkdir");
    fs::write(d.join("a.csv"), "k,v\n1,2\n").expect("write");
    fs::write(d.join("b.csv"), "k,x\n1,2\n").expect("write");
    let p = |s: &str| d.join(s).to_string_lossy().into_owned();
    assert_one_line_failure(
        &agg(home.path(), &["--by", "k", &p("missing.csv")]),
        "missing.csv: no such file",
    );
    assert_one_line_failure(
        &agg(home.path(), &["--by", "k", &d.to_string_lossy()]),
        "is a directory",
    );
    assert_one_line_failure(
        &agg(home.path(), &["--by", "k", &p("*.tsv")]),
        "matches no file",
    );
    assert_one_line_failure(
        &agg(home.path(), &["--by", "k", &p("*.csv")]),
        "b.csv: header differs",
    );
    assert_one_line_failure(
        &agg(home.path(), &["--by", "nope", &p("a.csv")]),
        "unknown column \"nope\"",
    );
    // Permission denied cannot be produced by chmod here (tests run as root, who reads
    // anything); a FIFO is the unreadable-as-a-file case we can make, and must not block.
    let fifo = d.join("fifo.csv");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        assert_one_line_failure(
            &agg(home.path(), &["--by", "k", &fifo.to_string_lossy()]),
            "not a regular file",
        );
    }
}

/// Waits until process `pid` has `file` mapped or open (so it is past planning and reading).
fn wait_until_reading(pid: u32, file: &Path) {
    let name = file.to_string_lossy().into_owned();
    for _ in 0..1000 {
        let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        let fds = fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().and_then(|e| fs::read_link(e.path()).ok()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if maps.contains(&name) || fds.iter().any(|p| p == file) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("corral agg never opened {name}");
}

/// Truncates the data file while `corral agg` reads it: the query must fail with a clear
/// error naming the file, and the process must exit normally (no SIGBUS death).
fn truncate_mid_query(extra: &[&str], new_len: u64) {
    let home = tempdir();
    let data = home.path().join("taxi");
    gen_taxi(home.path(), &data, &["--files", "1", "--rows", "200000"]);
    let file = data.join("yellow_tripdata_2015-01.csv");
    let size = fs::metadata(&file).expect("stat").len();
    assert!(size > 20 << 20, "{size}");
    let mut args = vec![
        "agg",
        "--by",
        "payment_type",
        "--threads",
        "1",
        "--partition-bytes",
        "1048576",
    ];
    args.extend_from_slice(extra);
    let child = corral(home.path())
        .args(&args)
        .arg(&file)
        // Each partition pauses 100 ms: the truncation lands mid-query, every time.
        .env("CORRAL_AGG_TEST_DELAY_MS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_until_reading(child.id(), &file);
    std::thread::sleep(Duration::from_millis(150));
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(new_len)
        .expect("truncate");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not a clean exit: {:?} {stderr}",
        out.status
    );
    assert!(stderr.contains("changed while reading"), "{stderr}");
    assert!(stderr.contains("yellow_tripdata_2015-01.csv"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no result on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn truncated_while_mapped_fails_cleanly() {
    truncate_mid_query(&[], 0);
}

#[test]
fn truncated_to_half_while_mapped_fails_cleanly() {
    truncate_mid_query(&[], 10 << 20);
}

#[test]
fn truncated_while_read_fails_cleanly() {
    truncate_mid_query(&["--no-mmap"], 4096);
}

/// The same without the pause hook: a real query on a bigger file, truncated at once. The
/// query either finished first (then its answer must be exact) or fails cleanly.
#[test]
fn truncated_during_a_real_run_never_kills_the_process() {
    let home = tempdir();
    let data = home.path().join("taxi");
    let e = gen_taxi(home.path(), &data, &["--files", "1", "--rows", "400000"]);
    let file = data.join("yellow_tripdata_2015-01.csv");
    let child = corral(home.path())
        .args([
            "agg",
            "--json",
            "--by",
            "payment_type",
            "--partition-bytes",
            "1048576",
        ])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(50));
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(1000)
        .expect("truncate");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            assert_eq!(counts(&v), e.payment_type);
        }
        Some(1) => assert!(stderr.contains("changed while reading"), "{stderr}"),
        other => panic!("killed or odd exit {other:?}: {:?} {stderr}", out.status),
    }
}

/// Issue 12: a quote inside an unquoted field is a literal character (as Python's csv, pandas
/// and polars read it), so `5" screen` rows are counted, not turned into one bad row.
#[test]
fn a_literal_quote_in_an_unquoted_field_is_counted() {
    let home = tempdir();
    let f = home.path().join("items.csv");
    fs::write(
        &f,
        "id,item,n\n12,5\" screen,7\n13,5\" screen,8\n14,cable,1\n15,\"a,b\",2\n",
    )
    .expect("write");
    let v = agg_json(home.path(), &["--by", "item", f.to_str().expect("utf-8")]);
    assert_eq!(v["bad_rows"]["total"], 0, "{v}");
    let c = counts(&v);
    assert_eq!(c.get("5\" screen"), Some(&2), "{v}");
    assert_eq!(c.get("cable"), Some(&1), "{v}");
    assert_eq!(c.get("a,b"), Some(&1), "{v}");
    assert_eq!(v["rows"], 4);
}

/// Issue 12: empty input, unknown columns and text aggregated as numbers are errors that say
/// so in plain words (exit 1), not an empty table or a table of bad rows.
#[test]
fn plain_word_errors_for_empty_input_unknown_and_text_columns() {
    let home = tempdir();
    let empty = home.path().join("empty.csv");
    fs::write(&empty, "a,b\n").expect("write");
    let out = agg(home.path(), &["--by", "a", empty.to_str().expect("utf-8")]);
    assert_one_line_failure(&out, "the input has no rows");

    let f = home.path().join("t.csv");
    fs::write(&f, "payment_type,flag,fare\n1,N,2.5\n2,Y,3\n1,N,4\n").expect("write");
    let path = f.to_str().expect("utf-8");
    let out = agg(home.path(), &["--by", "payment_typ", path]);
    assert_one_line_failure(&out, "did you mean \"payment_type\"?");
    let out = agg(
        home.path(),
        &["--by", "payment_type", "--sum", "flag", path],
    );
    assert_one_line_failure(&out, "column \"flag\" holds text");
    let sql = format!("SELECT payment_type, avg(flag) FROM '{path}' GROUP BY 1");
    let out = agg(home.path(), &["--sql", &sql]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("column \"flag\" holds text"), "{stderr}");

    // A syntax error points at the token.
    let out = corral(home.path())
        .current_dir(home.path())
        .args([
            "agg",
            "--sql",
            "SELECT payment_type count(*) FROM 't.csv' GROUP BY 1",
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].contains("syntax error"), "{stderr}");
    let col = lines[2].find('^').expect("caret");
    assert!(lines[1][col..].starts_with('('), "{stderr}");
}

/// Issue 12: SQL through `corral agg`, with filters, expressions, several keys and ordering.
#[test]
fn sql_queries_answer_like_sql() {
    let home = tempdir();
    let f = home.path().join("trips.csv");
    fs::write(
        &f,
        "vendor,pay,ts,fare,tip\n\
         1,CRD,2015-01-04 13:05:09,10.00,2.00\n\
         1,CSH,2015-01-04 13:45:00,5.50,0\n\
         2,CRD,2015-01-05 08:00:00,20.00,5.00\n\
         2,CRD,2015-01-05 08:30:00,abc,1.00\n\
         1,CRD,2015-01-06 23:59:59,0,0\n",
    )
    .expect("write");
    let run = |sql: &str| {
        let o = corral(home.path())
            .current_dir(home.path())
            .args(["agg", "--json", "--sql", sql])
            .output()
            .expect("run");
        assert!(
            o.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        v
    };
    let v = run(
        "SELECT hour(ts) AS h, count(*) AS n, sum(tip) FROM 'trips.csv' WHERE pay = 'CRD' AND fare > 0 \
         GROUP BY h ORDER BY h DESC",
    );
    assert_eq!(
        v["table"]["rows"],
        serde_json::json!([[13, 1, "2.00"], [8, 1, "5.00"]]),
        "{v}"
    );
    assert_eq!(v["filtered"], 3, "{v}");
    // `abc` in fare: the WHERE could not use it; the row is counted as filtered, and said so.
    assert_eq!(v["bad_values"][0]["column"], "fare");
    assert_eq!(
        v["bad_values"][0]["left_out_of"],
        serde_json::json!(["WHERE"])
    );
    let v = run(
        "SELECT vendor, pay, count(*), count(DISTINCT dayofweek(ts)) AS days, \
         max(fare) FROM 'trips.csv' GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 3 DESC, 1",
    );
    assert_eq!(
        v["table"]["rows"],
        serde_json::json!([[1, "CRD", 2, 2, "10.00"], [2, "CRD", 2, 1, "20.00"]]),
        "{v}"
    );
    let v = run(
        "SELECT CASE WHEN tip > 0 THEN 'tipped' ELSE 'not' END AS t, count(*), \
         round(avg(epoch(ts) - epoch(date_trunc('day', ts))), 1) AS secs \
         FROM 'trips.csv' GROUP BY 1 ORDER BY t",
    );
    assert_eq!(v["table"]["columns"][2], "secs");
    assert_eq!(v["table"]["rows"][0][0], "not");
    assert_eq!(v["table"]["rows"][1][1], 3);
}
