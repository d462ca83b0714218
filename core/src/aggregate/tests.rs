//! Engine tests: the csv crate is the oracle for record boundaries, field counts and keys.

use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroUsize;

use proptest::prelude::*;

use super::*;
use crate::mmap::Isa;

fn threads(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// A field as written: quoted when it must be (or when asked to be).
fn write_field(out: &mut Vec<u8>, value: &str, quote: bool) {
    let must = value.contains([',', '"', '\n', '\r']);
    if must || quote {
        out.push(b'"');
        out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

#[derive(Debug, Clone)]
struct Table {
    ncols: usize,
    bom: bool,
    crlf_header: bool,
    /// Rows: fields (value, quoted?), CRLF?
    rows: Vec<(Vec<(String, bool)>, bool)>,
    final_newline: bool,
}

impl Table {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.bom {
            out.extend_from_slice(b"\xEF\xBB\xBF");
        }
        let header: Vec<String> = (0..self.ncols).map(|i| format!("c{i}")).collect();
        out.extend_from_slice(header.join(",").as_bytes());
        out.extend_from_slice(if self.crlf_header { b"\r\n" } else { b"\n" });
        for (i, (fields, crlf)) in self.rows.iter().enumerate() {
            for (j, (v, q)) in fields.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                write_field(&mut out, v, *q);
            }
            if i + 1 < self.rows.len() || self.final_newline {
                out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
        }
        out
    }
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(vec!["1", "2", "3", "", "x", "N"]).prop_map(str::to_string),
        1 => proptest::collection::vec(
            proptest::sample::select(vec!['a', '1', ',', '"', '\n', '\r', ' ', 'é']),
            0..6
        )
        .prop_map(|v| v.into_iter().collect()),
    ]
}

fn table() -> impl Strategy<Value = Table> {
    (1usize..5, any::<bool>(), any::<bool>(), any::<bool>()).prop_flat_map(
        |(ncols, bom, crlf_header, final_newline)| {
            let row = (
                // Mostly the right field count; sometimes one more or fewer.
                prop_oneof![8 => Just(ncols), 1 => Just(ncols + 1), 1 => Just(ncols.saturating_sub(1).max(1))],
                any::<bool>(),
            )
                .prop_flat_map(|(n, crlf)| (proptest::collection::vec((value(), any::<bool>()), n), Just(crlf)));
            proptest::collection::vec(row, 0..25).prop_map(move |rows| Table {
                ncols,
                bom,
                crlf_header,
                rows,
                final_newline,
            })
        },
    )
}

#[derive(Debug, PartialEq, Default)]
struct Expect {
    counts: BTreeMap<Vec<u8>, u64>,
    wrong_field_count: u64,
    /// Lines of the first bad rows.
    bad_lines: Vec<u64>,
}

fn oracle(bytes: &[u8], col: usize, ncols: usize) -> Expect {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let mut e = Expect::default();
    let mut rec = csv::ByteRecord::new();
    while r.read_byte_record(&mut rec).unwrap_or(false) {
        if rec.len() == ncols {
            *e.counts.entry(rec[col].to_vec()).or_default() += 1;
        } else {
            e.wrong_field_count += 1;
            if e.bad_lines.len() < badrows::MAX_EXAMPLES {
                // The csv crate's own line numbers skip blank lines; count physical lines.
                // Its byte offsets point before skipped blank lines, too.
                let mut at = rec.position().map_or(0, |p| p.byte()) as usize;
                while matches!(bytes.get(at), Some(b'\r' | b'\n')) {
                    at += 1;
                }
                e.bad_lines
                    .push(1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64);
            }
        }
    }
    e
}

fn observed(r: &QueryResult) -> Expect {
    Expect {
        counts: r
            .groups
            .iter()
            .map(|g| (g.key[0].clone().into_bytes(), g.count))
            .collect(),
        wrong_field_count: r
            .bad_rows
            .by_reason
            .get("wrong_field_count")
            .copied()
            .unwrap_or(0),
        bad_lines: r.bad_rows.examples.iter().map(|e| e.line).collect(),
    }
}

/// The result, or an empty one for an input without rows (an error since issue 12).
fn ok_or_empty(r: Result<QueryResult, AggError>) -> QueryResult {
    match r {
        Err(AggError::EmptyInput { files }) => QueryResult {
            group_by: Vec::new(),
            aggregates: Vec::new(),
            groups: Vec::new(),
            rows: 0,
            blank_lines: 0,
            bad_rows: Default::default(),
            missing: Default::default(),
            files,
            bytes: 0,
            exact: true,
            filtered: 0,
            bad_values: Vec::new(),
            table: None,
        },
        other => other.expect("execute"),
    }
}

fn write_temp(bytes: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.csv");
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(bytes).expect("write");
    (dir, path.to_string_lossy().into_owned())
}

fn count_query(path: &str, col: usize) -> Query {
    Query::value_counts(vec![path.to_string()], Column::Name(format!("c{col}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Merged partials equal the csv crate, whatever the partition size (down to 1 byte), the
    /// instruction set, or the read path; with the wrong-parity partitions re-run.
    #[test]
    fn matches_csv_crate(t in table(), col_pick in 0usize..8, part in 1u64..300, chunk in 1u64..200) {
        let bytes = t.bytes();
        let col = col_pick % t.ncols;
        let want = oracle(&bytes, col, t.ncols);
        let (_dir, path) = write_temp(&bytes);
        let plan = plan::plan(&count_query(&path, col), part).expect("plan");
        for isa in Isa::available() {
            let inputs = Inputs::new(&plan).with_isa(isa);
            let r = ok_or_empty(execute_with(&plan, &inputs, threads(2)));
            prop_assert_eq!(&observed(&r), &want, "isa {:?}", isa);
            prop_assert_eq!(r.bad_rows.total, want.wrong_field_count);
        }
        let inputs = Inputs::new(&plan).with_mmap(false).with_read_chunk(chunk);
        let r = ok_or_empty(execute_with(&plan, &inputs, threads(1)));
        prop_assert_eq!(&observed(&r), &want, "read path");
    }

    /// Every partition computed under the WRONG parity first: check_parities finds exactly
    /// those whose split lies inside quotes, and after their re-run the result is exact.
    #[test]
    fn reruns_fix_wrong_parities(t in table(), part in 1u64..60, odd in any::<bool>()) {
        let bytes = t.bytes();
        let want = oracle(&bytes, 0, t.ncols);
        let (_dir, path) = write_temp(&bytes);
        let plan = plan::plan(&count_query(&path, 0), part).expect("plan");
        let inputs = Inputs::new(&plan);
        let parts: Vec<Partition> = plan.partitions.iter().enumerate()
            .map(|(i, p)| Partition { parity: if odd && i % 2 == 1 { Parity::Odd } else { p.parity }, ..*p })
            .collect();
        let mut partials = inputs.run_partitions(&parts, threads(2)).expect("run");
        // Each round confirms at least one more partition.
        for _ in 0..=partials.len() {
            let reruns = check_parities(&plan, &partials).expect("check");
            for r in &reruns {
                let redone = inputs.run_partitions(&r.partitions, threads(1)).expect("rerun");
                let mut m = Merger::default();
                for p in redone { m.add(p); }
                partials[r.partial] = m.into_partial();
            }
        }
        prop_assert!(check_parities(&plan, &partials).expect("check").is_empty());
        let r = ok_or_empty(finish(&plan, partials));
        prop_assert_eq!(observed(&r), want);
    }

    /// An agent's view: one big partition computed by pieces on threads.
    #[test]
    fn partition_on_threads(t in table(), piece in 1u64..50) {
        let bytes = t.bytes();
        let want = oracle(&bytes, 0, t.ncols);
        let (_dir, path) = write_temp(&bytes);
        let plan = plan::plan(&count_query(&path, 0), u64::MAX).expect("plan");
        let inputs = Inputs::new(&plan);
        let partials = plan.partitions.iter()
            .map(|p| inputs.run_partition_threads(p, threads(2), piece))
            .collect::<Result<Vec<_>, _>>()
            .expect("run");
        prop_assert!(check_parities(&plan, &partials).expect("check").is_empty());
        let r = ok_or_empty(finish(&plan, partials));
        prop_assert_eq!(observed(&r), want);
    }

    /// Sums are exact in any partitioning.
    #[test]
    fn sums_are_exact(vals in proptest::collection::vec((0u8..4, -100_000i64..100_000, 0u32..4), 0..60), part in 1u64..100) {
        let mut csv = String::from("k,v\n");
        let mut want: BTreeMap<String, i128> = BTreeMap::new();
        for (k, m, scale) in &vals {
            let text = num::dec_text(i128::from(*m), *scale as u8);
            csv.push_str(&format!("{k},{text}\n"));
            *want.entry(k.to_string()).or_default() += i128::from(*m) * 10i128.pow(3 - scale);
        }
        let (_dir, path) = write_temp(csv.as_bytes());
        let q = Query {
            aggregates: vec![Aggregate { op: AggOp::Sum, column: Some(Column::Name("v".into())) }],
            ..Query::value_counts(vec![path], Column::Name("k".into()))
        };
        let plan = plan::plan(&q, part).expect("plan");
        let r = ok_or_empty(execute(&plan, &ExecOptions::default()));
        prop_assert!(r.exact);
        for g in &r.groups {
            let Value::Decimal(s) = &g.values[0] else { panic!("not exact: {:?}", g.values[0]) };
            let n = num::parse(s.as_bytes());
            let num::Parsed::Value(num::Num::Dec { m, scale }) = n else { panic!("{s}") };
            prop_assert_eq!(m * 10i128.pow(3 - u32::from(scale)), want[&g.key[0]]);
        }
        prop_assert_eq!(r.groups.len(), want.len());
    }
}

fn run_str(
    csv: &[u8],
    q: impl FnOnce(String) -> Query,
    part: u64,
) -> Result<QueryResult, AggError> {
    let (_dir, path) = write_temp(csv);
    let plan = plan::plan(&q(path), part)?;
    execute(&plan, &ExecOptions::default())
}

fn counts(r: &QueryResult) -> Vec<(String, u64)> {
    r.groups
        .iter()
        .map(|g| (g.key.join("|"), g.count))
        .collect()
}

#[test]
fn value_counts_order_and_unquoting() {
    let csv = b"a,payment_type\nx,2\nx,\"2\"\nx,1\nx,3\nx,1\nx,2\n";
    let r = run_str(
        csv,
        |p| Query::value_counts(vec![p], Column::Name("payment_type".into())),
        7,
    )
    .expect("run");
    assert_eq!(
        counts(&r),
        vec![("2".into(), 3), ("1".into(), 2), ("3".into(), 1)]
    );
    assert_eq!(
        r.to_table(),
        "payment_type\n2    3\n1    2\n3    1\nName: count, dtype: int64\n"
    );
}

#[test]
fn bad_rows_by_reason_with_lines() {
    let csv = b"k,v\n1,2\n1,2,3\n2,abc\n\"3\"x,1\n1,\"open\n";
    let q = |p: String| Query {
        aggregates: vec![Aggregate {
            op: AggOp::Sum,
            column: Some(Column::Name("v".into())),
        }],
        ..Query::value_counts(vec![p], Column::Name("k".into()))
    };
    let r = run_str(csv, q, 5).expect("run");
    // `"3"x` is the field `3x`, as Python's csv reads it; `abc` is left out of the sum only.
    assert_eq!(
        counts(&r),
        vec![("1".into(), 1), ("2".into(), 1), ("3x".into(), 1)]
    );
    assert_eq!(r.bad_values.len(), 1);
    let b = &r.bad_values[0];
    assert_eq!(
        (b.column.as_str(), b.reason.as_str(), b.rows),
        ("v", "non_numeric", 1)
    );
    assert_eq!(b.left_out_of, vec!["sum(v)".to_string()]);
    assert_eq!((b.example.value.as_str(), b.example.line), ("abc", 4));
    let by: Vec<(&str, u64)> = r
        .bad_rows
        .by_reason
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        by,
        vec![("unterminated_quote", 1), ("wrong_field_count", 1)]
    );
    let lines: Vec<u64> = r.bad_rows.examples.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 6]);
    assert_eq!(r.bad_rows.examples[0].excerpt, "1,2,3");
    // strict: the first bad row is an error naming file and line.
    let err = run_str(
        csv,
        |p| Query {
            strict: true,
            ..q(p)
        },
        5,
    )
    .expect_err("strict");
    let msg = err.to_string();
    assert!(msg.contains(":3: bad row (wrong_field_count)"), "{msg}");
}

#[test]
fn empty_header_only_blank_lines_and_no_final_newline() {
    // No rows at all: an error that says so (issue 12), not an empty table.
    for csv in [&b""[..], b"\xEF\xBB\xBF", b"k\n", b"k", b"k\r\n\r\n\n"] {
        let e = run_str(
            csv,
            |p| Query::value_counts(vec![p], Column::Name("k".into())),
            3,
        )
        .expect_err("no rows");
        assert!(
            e.to_string().contains("the input has no rows"),
            "{csv:?}: {e}"
        );
    }
    let r = run_str(
        b"\xEF\xBB\xBFk,v\r\n\r\na,1\r\nb,2",
        |p| Query::value_counts(vec![p], Column::Name("v".into())),
        2,
    )
    .expect("run");
    assert_eq!(counts(&r), vec![("1".into(), 1), ("2".into(), 1)]);
    assert_eq!(r.blank_lines, 1);
}

#[test]
fn no_header_uses_indices_and_several_keys() {
    let q = |p: String| Query {
        has_header: false,
        group_by: vec![Column::Index(0), Column::Index(2)],
        aggregates: vec![
            Aggregate {
                op: AggOp::Count,
                column: None,
            },
            Aggregate {
                op: AggOp::Mean,
                column: Some(Column::Index(1)),
            },
            Aggregate {
                op: AggOp::Min,
                column: Some(Column::Index(1)),
            },
            Aggregate {
                op: AggOp::Max,
                column: Some(Column::Index(1)),
            },
        ],
        ..Query::value_counts(vec![p], Column::Index(0))
    };
    let r = run_str(b"a,1.5,x\na,2.5,x\nb,,y\n", q, 4).expect("run");
    assert_eq!(counts(&r), vec![("a|x".into(), 2), ("b|y".into(), 1)]);
    assert_eq!(
        r.groups[0].values,
        vec![
            Value::Int(2),
            Value::Float(2.0),
            Value::Decimal("1.5".into()),
            Value::Decimal("2.5".into())
        ]
    );
    assert_eq!(r.groups[1].values[1], Value::Null);
    assert_eq!(r.missing.values().sum::<u64>(), 3);
}

#[test]
fn plan_errors_name_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_string_lossy().into_owned();
    let q = |inputs: Vec<String>| Query::value_counts(inputs, Column::Name("k".into()));
    let err = |q: Query| plan::plan(&q, 10).expect_err("should fail").to_string();
    assert!(err(q(vec![format!("{d}/missing.csv")])).contains("missing.csv: no such file"));
    assert!(err(q(vec![d.clone()])).contains("is a directory"));
    assert!(err(q(vec![format!("{d}/*.nothing")])).contains("matches no file"));
    std::fs::write(dir.path().join("a.csv"), "k,v\n1,2\n").expect("write");
    std::fs::write(dir.path().join("b.csv"), "k,w\n1,2\n").expect("write");
    let e = err(q(vec![format!("{d}/*.csv")]));
    assert!(e.contains("b.csv: header differs"), "{e}");
    let e = err(Query::value_counts(
        vec![format!("{d}/a.csv")],
        Column::Name("zz".into()),
    ));
    assert!(e.contains("unknown column \"zz\""), "{e}");
    // Unreadable files: tests run as root, so chmod cannot make one; a FIFO stands in for
    // "cannot be read as a file" and must be refused rather than block.
    let fifo = dir.path().join("fifo.csv");
    if std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(err(q(vec![fifo.to_string_lossy().into_owned()])).contains("not a regular file"));
    }
}

#[test]
fn file_changed_after_planning_is_an_error() {
    let (dir, path) = write_temp(b"k\n1\n2\n");
    let plan = plan::plan(
        &Query::value_counts(vec![path.clone()], Column::Name("k".into())),
        2,
    )
    .expect("plan");
    std::fs::write(&path, b"k\n1\n").expect("rewrite");
    let e = execute(&plan, &ExecOptions::default())
        .expect_err("changed")
        .to_string();
    assert!(e.contains("changed while reading"), "{e}");
    drop(dir);
}

#[test]
fn finish_reports_missing_partitions() {
    let (_dir, path) = write_temp(b"k\n1\n2\n3\n");
    let plan = plan::plan(
        &Query::value_counts(vec![path], Column::Name("k".into())),
        2,
    )
    .expect("plan");
    let inputs = Inputs::new(&plan);
    let mut partials = inputs
        .run_partitions(&plan.partitions, threads(1))
        .expect("run");
    partials.remove(1);
    let e = finish(&plan, partials).expect_err("gap").to_string();
    assert!(e.contains("have no result"), "{e}");
}

#[test]
fn partials_and_plans_travel_over_the_wire() {
    let (_dir, path) = write_temp(b"k,v\n1,2.50\n1,-3\n\"x\ny\",1e3\n2,abc\n");
    let q = Query {
        aggregates: vec![
            Aggregate {
                op: AggOp::Sum,
                column: Some(Column::Name("v".into())),
            },
            Aggregate {
                op: AggOp::Min,
                column: Some(Column::Name("v".into())),
            },
        ],
        ..Query::value_counts(vec![path], Column::Name("k".into()))
    };
    let plan = plan::plan(&q, 7).expect("plan");
    let json: Plan =
        serde_json::from_str(&serde_json::to_string(&plan).expect("to json")).expect("from json");
    assert_eq!(json, plan);
    let wire: Plan =
        postcard::from_bytes(&postcard::to_allocvec(&plan).expect("postcard")).expect("decode");
    assert_eq!(wire, plan);
    let partials = Inputs::new(&plan)
        .run_partitions(&plan.partitions, threads(2))
        .expect("run");
    let back: Vec<Partial> = partials
        .iter()
        .map(|p| {
            postcard::from_bytes(&postcard::to_allocvec(p).expect("postcard")).expect("decode")
        })
        .collect();
    assert_eq!(back, partials);
    let j: Vec<Partial> =
        serde_json::from_str(&serde_json::to_string(&partials).expect("json")).expect("json back");
    assert_eq!(j, partials);
    // The 7-byte partitions split the quoted "x\ny": one was computed under the wrong parity.
    let mut back = back;
    let reruns = check_parities(&plan, &back).expect("check");
    assert_eq!(reruns.len(), 1);
    for r in reruns
        .into_iter()
        .chain(check_parities(&plan, &back).expect("check"))
    {
        let mut m = Merger::default();
        for p in Inputs::new(&plan)
            .run_partitions(&r.partitions, threads(1))
            .expect("rerun")
        {
            m.add(p);
        }
        back[r.partial] = m.into_partial();
    }
    let r = finish(&plan, back).expect("finish");
    assert_eq!(
        counts(&r),
        vec![("1".into(), 2), ("2".into(), 1), ("x\ny".into(), 1)]
    );
    assert_eq!(
        r.groups[0].values,
        vec![Value::Decimal("-0.50".into()), Value::Decimal("-3".into())]
    );
    // `abc` is left out of the sum and the min of group 2, and said so.
    assert_eq!(
        r.groups[1].values,
        vec![Value::Decimal("0".into()), Value::Null]
    );
    assert_eq!(r.bad_values[0].left_out_of, vec!["sum(v)", "min(v)"]);
    assert_eq!(r.groups[2].values[0], Value::Float(1000.0));
    assert!(!r.exact);
}

#[test]
fn every_unreadable_input_is_named_at_once() {
    let d = tempfile::tempdir().expect("tempdir");
    let ok = d.path().join("ok.csv");
    std::fs::write(&ok, "a,b\n1,2\n").expect("write");
    let missing1 = d.path().join("nope1.csv");
    let missing2 = d.path().join("nope2.csv");
    let q = Query::value_counts(
        vec![
            ok.display().to_string(),
            missing1.display().to_string(),
            d.path().display().to_string(),
            missing2.display().to_string(),
            d.path().join("*.tsv").display().to_string(),
        ],
        Column::Name("a".into()),
    );
    let err = plan(&q, DEFAULT_PARTITION_BYTES)
        .expect_err("unreadable inputs")
        .to_string();
    assert!(err.starts_with("4 inputs cannot be read"), "{err}");
    for needle in [
        "nope1.csv: no such file",
        "nope2.csv: no such file",
        "is a directory",
        "*.tsv",
    ] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
}

/// Raw CSV text with quotes anywhere (not only at field edges), as users' files have them.
/// Lines end in `\n` or `\r\n`; no bare `\r` (Python and the csv crate end a record there,
/// corral keeps it as data).
fn raw_csv() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        proptest::sample::select(vec!["a", "1", ",", "\"", "\"", "\n", "\r\n", " ", "é"]),
        0..120,
    )
    .prop_map(|toks| {
        let mut out = b"c0,c1,c2\n".to_vec();
        for t in toks {
            out.extend_from_slice(t.as_bytes());
        }
        out
    })
}

/// Whether Python's csv module would end the text inside a quoted field (an unterminated
/// quote, which corral reports as a bad row and the parsers disagree about).
fn ends_in_quote(bytes: &[u8]) -> bool {
    #[derive(PartialEq)]
    enum S {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut s = S::FieldStart;
    for &b in bytes {
        s = match (s, b) {
            (S::FieldStart, b'"') => S::Quoted,
            (S::FieldStart | S::Unquoted | S::QuoteInQuoted, b',' | b'\n') => S::FieldStart,
            (S::FieldStart | S::Unquoted, _) => S::Unquoted,
            (S::Quoted, b'"') => S::QuoteInQuoted,
            (S::Quoted, _) => S::Quoted,
            (S::QuoteInQuoted, b'"') => S::Quoted,
            (S::QuoteInQuoted, _) => S::Unquoted,
        };
    }
    s == S::Quoted
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Quotes inside unquoted fields are literal, as the csv crate reads them: every split,
    /// instruction set and read path gives the csv crate's records.
    #[test]
    fn stray_quotes_match_csv_crate(bytes in raw_csv(), col in 0usize..3, part in 1u64..40, chunk in 1u64..50) {
        prop_assume!(!ends_in_quote(&bytes));
        let want = oracle(&bytes, col, 3);
        let (_dir, path) = write_temp(&bytes);
        let plan = plan::plan(&count_query(&path, col), part).expect("plan");
        for isa in Isa::available() {
            let r = ok_or_empty(execute_with(&plan, &Inputs::new(&plan).with_isa(isa), threads(2)));
            prop_assert_eq!(&observed(&r), &want, "isa {:?}", isa);
            prop_assert_eq!(r.bad_rows.total, want.wrong_field_count);
        }
        let inputs = Inputs::new(&plan).with_mmap(false).with_read_chunk(chunk);
        let r = ok_or_empty(execute_with(&plan, &inputs, threads(1)));
        prop_assert_eq!(&observed(&r), &want, "read path");
        let whole = plan::plan(&count_query(&path, col), u64::MAX).expect("plan");
        let inputs = Inputs::new(&whole);
        let partials = whole.partitions.iter()
            .map(|p| inputs.run_partition_threads(p, threads(2), part))
            .collect::<Result<Vec<_>, _>>()
            .expect("run");
        prop_assert_eq!(observed(&ok_or_empty(finish(&whole, partials))), want, "pieces");
    }
}

#[test]
fn a_quote_inside_an_unquoted_field_is_literal() {
    let csv = b"id,item,n\n12,5\" screen,7\n13,5\" screen,8\n14,\"a, \"\"b\"\"\",9\n15,\"x\"y,1\n";
    let r = run_str(
        csv,
        |p| Query::value_counts(vec![p], Column::Name("item".into())),
        3,
    )
    .expect("run");
    assert_eq!(r.bad_rows.total, 0);
    assert_eq!(
        counts(&r),
        vec![
            ("5\" screen".into(), 2),
            ("a, \"b\"".into(), 1),
            ("xy".into(), 1)
        ]
    );
}

/// Python's csv module reads the same records as corral from files with stray quotes.
#[test]
fn stray_quotes_match_python_csv() {
    // splitmix64: reproducible test input without a random-number crate.
    let mut state = 12u64;
    let mut below = |n: usize| -> usize {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    let toks = ["a", "1", ",", "\"", "\"", "\n", "\r\n", " "];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    while files.len() < 150 {
        let mut bytes = b"c0,c1,c2\n".to_vec();
        for _ in 0..below(150) {
            bytes.extend_from_slice(toks[below(toks.len())].as_bytes());
        }
        if ends_in_quote(&bytes) {
            continue;
        }
        let path = dir.path().join(format!("{}.csv", files.len()));
        std::fs::write(&path, &bytes).expect("write");
        files.push(path);
    }
    // One Python process reads every file: per file, column 1's value counts of the 3-field
    // records, and the number of records with another field count.
    let script = r#"
import csv, json, sys
out = []
for p in sys.argv[1:]:
    counts, wrong = {}, 0
    with open(p, newline='', encoding='utf-8') as f:
        rows = csv.reader(f)
        next(rows)
        for rec in rows:
            if not rec:
                continue
            if len(rec) == 3:
                counts[rec[1]] = counts.get(rec[1], 0) + 1
            else:
                wrong += 1
    out.append([sorted(counts.items()), wrong])
print(json.dumps(out))
"#;
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .expect("python3 is needed for this test");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let want: Vec<(Vec<(String, u64)>, u64)> =
        serde_json::from_slice(&py.stdout).expect("python output");
    for (path, (want_counts, want_wrong)) in files.iter().zip(want) {
        let q = Query::value_counts(vec![path.display().to_string()], Column::Name("c1".into()));
        let plan = plan::plan(&q, 16).expect("plan");
        let r = ok_or_empty(execute(&plan, &ExecOptions::default()));
        let mut got: Vec<(String, u64)> = r
            .groups
            .iter()
            .map(|g| (g.key[0].clone(), g.count))
            .collect();
        got.sort();
        let bytes = std::fs::read(path).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(got, want_counts, "{text:?}");
        assert_eq!(r.bad_rows.total, want_wrong, "{text:?}");
    }
}
