//! Issue 12's oracle: the five analyst questions (Q1–Q5) answered by `corral agg --sql` and by
//! a local cluster (`corral query --sql`) equal DuckDB's answers over the same generated taxi
//! files, clean and dirty: counts, sums and distinct counts exactly, means to 1e-12 relative,
//! the median within the sketch's documented bound. And the cluster's table is bit for bit the
//! one `corral agg` prints.
//!
//! DuckDB is the Python package, in the venv scripts/test makes under the target directory
//! (`CORRAL_TEST_PYTHON`, else `<target>/pyenv/bin/python`). DuckDB reads the files as RFC 4180
//! records of text fields (its sniffer gives up on the dirty ones); records with other than 19
//! fields are left out, as corral counts them as bad rows; the columns are cast to their types.

use std::path::PathBuf;
use std::process::Command;

use corral_core::aggregate::sketch::RELATIVE_ERROR;
use corral_tests::cluster::Env;
use serde_json::Value;

const QUERIES: [&str; 5] = [
    "SELECT payment_type, count(*) FROM '{glob}' GROUP BY 1",
    "SELECT passenger_count, avg(tip_amount) FROM '{glob}' GROUP BY 1",
    "SELECT hour(tpep_pickup_datetime) AS h, avg(tip_amount / total_amount) FROM '{glob}' \
     WHERE total_amount > 0 GROUP BY h ORDER BY h",
    "SELECT VendorID, payment_type, count(*), sum(total_amount) FROM '{glob}' GROUP BY 1, 2",
    "SELECT count(DISTINCT passenger_count), median(trip_distance) FROM '{glob}'",
];

/// DuckDB's answers: {"q1": rows, …, "median": [lo, hi, exact]}; decimals as normalised text.
const DUCK: &str = r#"
import duckdb, json, sys
from decimal import Decimal
glob = sys.argv[1]
cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(24))
raw = f"""read_csv('{glob}', header=false, skip=1, delim=',', quote='"', escape='"',
  strict_mode=false, null_padding=true, nullstr='\x01', columns={{{cols}}}, parallel=false,
  auto_detect=false, new_line='\\n')"""
con = duckdb.connect()
con.sql(f"""create view t as select
  try_cast(c0 as bigint) as VendorID,
  try_cast(c1 as timestamp) as tpep_pickup_datetime,
  try_cast(c3 as bigint) as passenger_count,
  try_cast(c4 as decimal(18,4)) as trip_distance,
  try_cast(c11 as bigint) as payment_type,
  try_cast(c15 as decimal(18,4)) as tip_amount,
  try_cast(rtrim(c18, chr(13)) as decimal(18,4)) as total_amount
  from {raw} where c18 is not null and c19 is null""")
def cell(v):
    if isinstance(v, Decimal):
        return format(v.normalize(), 'f')
    return v
out = {}
for i, q in enumerate(json.loads(sys.argv[2])):
    out[f"q{i+1}"] = [[cell(v) for v in r] for r in con.sql(q.replace("'{glob}'", "t")).fetchall()]
xs = [float(r[0]) for r in con.sql("select trip_distance from t where trip_distance is not null order by 1").fetchall()]
r = 0.5 * (len(xs) - 1)
out["median"] = [xs[int(r)], xs[-int(-r // 1)] if r != int(r) else xs[int(r)], float(con.sql("select median(trip_distance) from t").fetchall()[0][0])]
print(json.dumps(out))
"#;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRAL_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let bins = corral_tests::bins::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    bins.parent()
        .map(|t| t.join("pyenv/bin/python"))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn duckdb(glob: &str) -> Value {
    let py = python();
    let queries = serde_json::to_string(&QUERIES).expect("json");
    let out = Command::new(&py)
        .args(["-c", DUCK, glob, &queries])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; scripts/test makes this venv (python3 -m venv target/pyenv && \
                 target/pyenv/bin/pip install duckdb)",
                py.display()
            )
        });
    assert!(
        out.status.success(),
        "DuckDB ({}) failed: {}",
        py.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("DuckDB's answers are JSON")
}

fn table(v: &Value) -> &Value {
    &v["table"]["rows"]
}

/// A decimal's text without trailing zeros (`244.0` = `244`).
fn norm(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        other => other.as_f64().unwrap_or(f64::NAN),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
}

fn sorted(rows: &Value) -> Vec<Vec<Value>> {
    let mut v: Vec<Vec<Value>> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_array().expect("row").clone())
        .collect();
    v.sort_by_key(|r| r.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    v
}

/// Compares corral's five answers with DuckDB's; returns the median's relative error.
fn check(ours: &[Value], duck: &Value, what: &str) -> f64 {
    // Q1: exact.
    assert!(
        duck["q1"].as_array().is_some_and(|r| r.len() >= 4),
        "DuckDB read nothing: {duck}"
    );
    assert_eq!(sorted(table(&ours[0])), sorted(&duck["q1"]), "Q1 {what}");
    // Q2, Q3: the same keys (Q3 in ORDER BY order), means to 1e-12.
    for (q, ordered) in [(1, false), (2, true)] {
        let (a, b) = if ordered {
            (
                table(&ours[q]).as_array().expect("rows").clone(),
                duck[format!("q{}", q + 1)]
                    .as_array()
                    .expect("rows")
                    .clone(),
            )
        } else {
            (
                sorted(table(&ours[q]))
                    .into_iter()
                    .map(Value::from)
                    .collect(),
                sorted(&duck[format!("q{}", q + 1)])
                    .into_iter()
                    .map(Value::from)
                    .collect(),
            )
        };
        assert_eq!(a.len(), b.len(), "Q{} {what}: {a:?} vs {b:?}", q + 1);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x[0], y[0], "Q{} {what} keys", q + 1);
            assert!(
                close(num(&x[1]), num(&y[1])),
                "Q{} {what}: {x} vs DuckDB {y}",
                q + 1
            );
        }
    }
    // Q4: counts and decimal sums exactly.
    let a = sorted(table(&ours[3]));
    let b = sorted(&duck["q4"]);
    assert_eq!(a.len(), b.len(), "Q4 {what}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x[..3], y[..3], "Q4 {what}");
        assert_eq!(
            norm(x[3].as_str().expect("exact sum")),
            norm(y[3].as_str().expect("decimal")),
            "Q4 {what} sum"
        );
    }
    // Q5: distinct count exactly, the median within the sketch's bound.
    let row = &table(&ours[4])[0];
    assert_eq!(row[0], duck["q5"][0][0], "Q5 {what} distinct");
    let m = num(&row[1]);
    let (lo, hi, exact) = (
        num(&duck["median"][0]),
        num(&duck["median"][1]),
        num(&duck["median"][2]),
    );
    assert!(
        m >= lo * (1.0 - RELATIVE_ERROR) && m <= hi * (1.0 + RELATIVE_ERROR),
        "Q5 {what}: median {m} outside [{lo}, {hi}] ± {RELATIVE_ERROR}"
    );
    (m - exact).abs() / exact
}

#[test]
fn five_questions_equal_duckdb_through_agg_and_a_local_cluster() {
    let env = Env::new("sqlq");
    let clean = env.gen_taxi("clean", 2, 20_000, 0.0);
    let dirty = env.gen_taxi("dirty", 2, 20_000, 0.05);
    env.up("oracle", 3, 1, &[]);
    for data in [&clean, &dirty] {
        let glob = data.join("*.csv").to_string_lossy().into_owned();
        let duck = duckdb(&glob);
        let run = |args: &[&str]| -> Vec<Value> {
            QUERIES
                .iter()
                .map(|q| {
                    let sql = q.replace("{glob}", &glob);
                    let mut a = args.to_vec();
                    a.extend(["--json", "--sql", &sql]);
                    serde_json::from_str(&env.ok(&a).stdout).expect("JSON")
                })
                .collect()
        };
        let agg = run(&["agg"]);
        let err = check(&agg, &duck, &format!("agg on {}", data.display()));
        eprintln!("median relative error on {}: {err:.2e}", data.display());
        // Small partitions: every worker computes, and the merge must still match bit for bit.
        let cluster = run(&["query", "oracle", "--partition-bytes", "200000"]);
        for (i, (a, c)) in agg.iter().zip(&cluster).enumerate() {
            assert_eq!(a["table"], c["table"], "Q{} cluster vs agg", i + 1);
            assert_eq!(a["bad_rows"], c["bad_rows"], "Q{} bad rows", i + 1);
        }
        assert!(
            cluster[0]["workers"].as_u64().unwrap_or(0) >= 2,
            "{}",
            cluster[0]
        );
        if data == &dirty {
            assert!(agg[0]["bad_rows"]["total"].as_u64().unwrap_or(0) > 0);
        }
    }
}

/// The same five questions through a cluster on the real SLURM test bed: 3 workers in 3 SLURM
/// tasks, small partitions so every worker computes; every table bit for bit `corral agg`'s,
/// and `agg` equals DuckDB (checked again here, so this test stands on its own).
#[test]
fn five_questions_equal_duckdb_through_a_slurm_cluster() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("sqlq-slurm");
    let on = corral_tests::on_slurm::OnSlurm::new(&env, &bed);
    let clean = env.gen_taxi("clean", 2, 20_000, 0.0);
    let dirty = env.gen_taxi("dirty", 2, 20_000, 0.05);
    let name = format!("sqlq{}", std::process::id());
    let _down = on.down_on_drop(&name);
    let up = on.run(&[
        "up",
        "--name",
        &name,
        "--yes",
        "--workers",
        "3",
        "--cores",
        "1",
        "--time",
        "0:20:00",
    ]);
    assert!(up.success(), "{up}");
    assert!(up.stdout.contains("workers=3"), "{up}");
    for data in [&clean, &dirty] {
        let glob = data.join("*.csv").to_string_lossy().into_owned();
        let duck = duckdb(&glob);
        let json = |out: corral_tests::process::Output| -> Value {
            assert!(out.success(), "{out}");
            serde_json::from_str(&out.stdout).expect("JSON")
        };
        for (i, q) in QUERIES.iter().enumerate() {
            let sql = q.replace("{glob}", &glob);
            let agg = json(env.run(&["agg", "--json", "--sql", &sql]));
            let slurm = json(on.run(&[
                "query",
                &name,
                "--partition-bytes",
                "200000",
                "--json",
                "--sql",
                &sql,
            ]));
            assert_eq!(
                agg["table"],
                slurm["table"],
                "Q{} SLURM cluster vs agg",
                i + 1
            );
            assert_eq!(agg["bad_rows"], slurm["bad_rows"], "Q{} bad rows", i + 1);
            assert_eq!(
                slurm["workers"],
                3,
                "Q{}: every worker computes: {slurm}",
                i + 1
            );
            if i == 0 {
                // agg against DuckDB, all five at once, on the first pass over this data set.
                let all: Vec<Value> = QUERIES
                    .iter()
                    .map(|q| {
                        let sql = q.replace("{glob}", &glob);
                        json(env.run(&["agg", "--json", "--sql", &sql]))
                    })
                    .collect();
                check(&all, &duck, &format!("agg on {}", data.display()));
            }
        }
    }
    let down = on.run(&["down", &name]);
    assert!(down.success(), "{down}");
}
