//! A real `corral sweep` on a local cluster of 4 one-core workers: each run lands in the ledger,
//! `corral plot` draws a valid PNG and an SVG with a point per ledger entry, and `corral history
//! --json` lists the sweep's queries and, after `corral down`, the cluster's end.

use corral_tests::cluster::Env;
use corral_tests::expect::expected_counts;

fn json(out: &corral_tests::process::Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The ledger's successful query lines as (cores, seconds).
fn ledger_points(env: &Env, name: &str) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(env.cluster_dir(name).join("ledger.jsonl")).expect("ledger");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "query" && v["ok"] == true)
        .map(|v| {
            (
                v["cores"].as_u64().expect("cores"),
                v["seconds"].as_f64().expect("seconds"),
            )
        })
        .collect()
}

/// The value of attribute `name` in one SVG element's text.
fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = element[start..].find('"')?;
    Some(&element[start..start + len])
}

#[test]
fn sweep_lands_in_the_ledger_and_plots_and_history_show_it() {
    let env = Env::new("sweep");
    let data = env.gen_taxi("taxi", 4, 20_000, 0.0);
    env.up("sw", 4, 1, &[]);
    let glob = data.join("*.csv").to_string_lossy().into_owned();

    let out = env.ok(&[
        "sweep",
        "sw",
        "--by",
        "payment_type",
        "--partition-bytes",
        "200000",
        "--json",
        &glob,
    ]);
    let sweep = json(&out);
    let cores: Vec<u64> = sweep["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["cores"].as_u64().expect("cores"))
        .collect();
    assert_eq!(cores, [1, 2, 4], "{sweep}");
    for r in sweep["runs"].as_array().expect("runs") {
        assert_eq!(r["rows"], 80_000, "every run counts every row: {sweep}");
    }
    assert!(
        sweep["recommendation"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{sweep}"
    );
    // The human form: a table and the recommendation (another query shape: it also sums).
    let human = env.ok(&[
        "sweep",
        "sw",
        "--by",
        "payment_type",
        "--sum",
        "fare_amount",
        "--max-cores",
        "2",
        &glob,
    ]);
    assert!(human.stdout.contains("SPEEDUP"), "{human}");
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("2 ")),
        "{human}"
    );
    // The sweep lifted its limit: a query afterwards uses every worker.
    let q = json(&env.ok(&[
        "query",
        "sw",
        "--by",
        "payment_type",
        "--partition-bytes",
        "200000",
        "--json",
        &glob,
    ]));
    assert_eq!(q["cores"], 4, "{q}");
    let mut counts = serde_json::Map::new();
    for g in q["groups"].as_array().expect("groups") {
        counts.insert(
            g["key"][0].as_str().expect("key").to_string(),
            g["count"].clone(),
        );
    }
    assert_eq!(serde_json::Value::Object(counts), expected_counts(&data));

    let points = ledger_points(&env, "sw");
    assert_eq!(points.len(), 3 + 2 + 1, "{points:?}");

    // PNG: signature, IHDR, the size of an 800×500 plot at 2 pixels a unit.
    let png = env.path().join("runtimes.png");
    let out = env.ok(&["plot", "sw", "--out", &png.to_string_lossy()]);
    assert!(out.stdout.contains("wrote"), "{out}");
    let bytes = std::fs::read(&png).expect("png written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    assert_eq!((be(16), be(20)), (1600, 1000));
    assert!(
        bytes.ends_with(&[0xae, 0x42, 0x60, 0x82]),
        "IEND's CRC ends the file"
    );

    // SVG: well formed enough to read, one point per ledger entry of the plotted query.
    let svg_path = env.path().join("runtimes.svg");
    let out = env.ok(&["plot", "sw", "--out", &svg_path.to_string_lossy(), "--json"]);
    let plotted = json(&out);
    let svg = std::fs::read_to_string(&svg_path).expect("svg written");
    assert!(svg.starts_with("<?xml"), "{svg}");
    assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<circle").count(),
        svg.matches("</circle>").count()
    );
    assert_eq!(svg.matches("<svg").count(), 1);
    let mut drawn: Vec<(u64, f64)> = svg
        .lines()
        .filter(|l| l.starts_with("<circle class=\"point\""))
        .map(|l| {
            (
                attr(l, "data-cores")
                    .expect("data-cores")
                    .parse()
                    .expect("cores"),
                attr(l, "data-seconds")
                    .expect("data-seconds")
                    .parse()
                    .expect("seconds"),
            )
        })
        .collect();
    // The default query is the latest shape run at ≥ 2 core counts: the count (its last run is
    // the query at 4 cores), one point per ledger entry of it.
    let mut want: Vec<(u64, f64)> = [0, 1, 2, 5].iter().map(|&i| points[i]).collect();
    drawn.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    want.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    assert_eq!(drawn, want, "{svg}");
    assert_eq!(
        plotted["runs"].as_array().map(Vec::len),
        Some(4),
        "{plotted}"
    );
    assert!(svg.contains("class=\"ideal\""), "{svg}");

    // Another query by words of its description; the first again by its query id.
    let out = env.ok(&[
        "plot",
        "sw",
        "--out",
        &svg_path.to_string_lossy(),
        "--query",
        "sum(fare_amount)",
    ]);
    assert!(out.stdout.contains("2 runs"), "{out}");
    let svg = std::fs::read_to_string(&svg_path).expect("svg");
    assert_eq!(svg.matches("<circle class=\"point\"").count(), 2, "{svg}");
    let id = sweep_first_query_id(&env);
    let out = env.ok(&[
        "plot",
        "sw",
        "--out",
        &svg_path.to_string_lossy(),
        "--query",
        &id,
    ]);
    assert!(out.stdout.contains("4 runs"), "{out}");

    // Bad requests are refused clearly.
    let bad = env.run(&["plot", "sw", "--out", "r.jpg"]);
    assert!(
        !bad.success() && bad.stderr.contains(".svg or .png"),
        "{bad}"
    );
    let bad = env.run(&["plot", "sw", "--out", "/nonexistent-dir/r.svg"]);
    assert!(
        !bad.success() && bad.stderr.contains("cannot write the plot"),
        "{bad}"
    );
    let bad = env.run(&["plot", "sw", "--out", "r.svg", "--query", "no such words"]);
    assert!(
        !bad.success() && bad.stderr.contains("its queries"),
        "{bad}"
    );

    // History: the six queries while the cluster runs; its end once it is down.
    let h = json(&env.ok(&["history", "--json"]));
    let qs = h["queries"].as_array().expect("queries");
    assert_eq!(qs.len(), 6, "{h}");
    let qcores: Vec<u64> = qs
        .iter()
        .map(|q| q["cores"].as_u64().expect("cores"))
        .collect();
    assert_eq!(qcores, [1, 2, 4, 1, 2, 4], "{h}");
    for q in qs {
        assert_eq!(q["cluster"], "sw");
        assert_eq!(q["files"], 4);
        assert!(q["gb_per_s"].as_f64().is_some_and(|g| g > 0.0), "{q}");
        assert!(
            q["query"]
                .as_str()
                .is_some_and(|s| s.contains("by payment_type over 4 files in")),
            "{q}"
        );
    }
    assert_eq!(h["clusters"].as_array().map(Vec::len), Some(0), "{h}");
    env.ok(&["down", "sw"]);
    let h = json(&env.ok(&["history", "sw", "--json"]));
    let c = &h["clusters"][0];
    assert_eq!(c["name"], "sw", "{h}");
    assert!(
        c["how"].as_str().is_some_and(|s| s.contains("corral down")),
        "{h}"
    );
    assert!(c["core_hours"].as_f64().is_some_and(|x| x >= 0.0), "{h}");
    let human = env.ok(&["history"]);
    assert!(human.stdout.contains("finished queries"), "{human}");
    assert!(human.stdout.contains("finished clusters"), "{human}");
}

/// The query id of the first ledger entry.
fn sweep_first_query_id(env: &Env) -> String {
    let text = std::fs::read_to_string(env.cluster_dir("sw").join("ledger.jsonl")).expect("ledger");
    let first: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a line")).expect("JSON");
    first["query_id"].as_u64().expect("query_id").to_string()
}

/// Without `--partition-bytes`, on modest data (a few MB, under one default 64 MiB partition
/// per file): the sweep cuts the query finely enough that its runs compute on different core
/// counts, so `corral plot` has a scaling to draw.
#[test]
fn a_sweep_of_modest_data_measures_several_core_counts_and_plots() {
    let env = Env::new("sweep-small");
    let data = env.gen_taxi("taxi", 2, 20_000, 0.0);
    env.up("small", 2, 2, &[]);
    let glob = data.join("*.csv").to_string_lossy().into_owned();

    let sweep = json(&env.ok(&["sweep", "small", "--by", "payment_type", "--json", &glob]));
    let runs = sweep["runs"].as_array().expect("runs");
    let mut cores: Vec<u64> = runs
        .iter()
        .map(|r| r["cores"].as_u64().expect("cores"))
        .collect();
    cores.dedup();
    assert!(cores.len() >= 2, "one core count only: {sweep}");
    for r in runs {
        assert_eq!(r["rows"], 40_000, "every run counts every row: {sweep}");
        assert!(
            r["tasks"].as_u64().is_some_and(|t| t >= 4 * 4),
            "4 partitions per core of the largest run: {sweep}"
        );
    }
    let recommendation = sweep["recommendation"].as_str().unwrap_or_default();
    assert!(!recommendation.contains("run a sweep"), "{sweep}");

    let svg = env.path().join("small.svg");
    let out = env.ok(&["plot", "small", "--out", &svg.to_string_lossy()]);
    assert!(out.stdout.contains("wrote"), "{out}");
}
