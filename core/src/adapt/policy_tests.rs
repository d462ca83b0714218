use proptest::prelude::*;

use super::*;

const S: u64 = 1000;

fn tuning() -> Tuning {
    Tuning {
        up_after: Duration::from_secs(10),
        idle_after: Duration::from_secs(60),
        min_between: Duration::from_secs(30),
    }
}

fn policy(min: u32, max: u32) -> Policy {
    Policy::new(Range { min, max }, tuning())
}

/// A cluster of `connected` workers, all asked for and running, with a query of `waiting`
/// partitions not yet handed out.
fn busy(at_s: u64, connected: u32, waiting: u64) -> Observation {
    Observation {
        at_ms: at_s * S,
        query_running: true,
        queued_queries: 0,
        waiting_tasks: waiting,
        connected,
        asked: connected,
        pending: 0,
        cores_per_worker: 1,
        limit: None,
    }
}

fn idle(at_s: u64, connected: u32) -> Observation {
    Observation {
        query_running: false,
        waiting_tasks: 0,
        ..busy(at_s, connected, 0)
    }
}

#[test]
fn ranges_parse_and_bad_ones_say_what_to_write() {
    assert_eq!("2..8".parse::<Range>(), Ok(Range { min: 2, max: 8 }));
    assert_eq!(" 3 .. 3 ".parse::<Range>(), Ok(Range { min: 3, max: 3 }));
    for (bad, why) in [
        ("8", "no `..`"),
        ("0..4", "MIN must be at least 1"),
        ("5..2", "MIN is larger than MAX"),
        ("a..4", "MIN \"a\" is not a whole number"),
        ("1..", "MAX \"\" is not a whole number"),
    ] {
        let e = bad.parse::<Range>().expect_err(bad).to_string();
        assert!(e.contains(why), "{bad}: {e}");
        assert!(e.contains("e.g. --adapt 1..8"), "{e}");
    }
}

#[test]
fn grows_only_after_work_waited_and_at_most_doubles() {
    let mut p = policy(1, 16);
    // Work waits from t=0; up_after is 10 s.
    assert_eq!(p.observe(&busy(0, 2, 40)), None);
    assert_eq!(p.observe(&busy(9, 2, 40)), None);
    let d = p.observe(&busy(10, 2, 40)).expect("grows at 10 s");
    assert_eq!((d.direction, d.from, d.to), (Direction::Up, 2, 4));
    assert_eq!(
        d.reason,
        "40 partitions waited 10 s with 2 workers connected"
    );
}

#[test]
fn a_break_in_the_waiting_starts_the_patience_over() {
    let mut p = policy(1, 16);
    assert_eq!(p.observe(&busy(0, 2, 40)), None);
    // All partitions handed out at 5 s: nothing waits.
    assert_eq!(p.observe(&busy(5, 2, 0)), None);
    assert_eq!(p.observe(&busy(6, 2, 40)), None);
    assert_eq!(p.observe(&busy(15, 2, 40)), None);
    assert!(p.observe(&busy(16, 2, 40)).is_some());
}

#[test]
fn grows_by_what_the_waiting_work_needs_not_more() {
    let mut p = policy(1, 16);
    let mut o = busy(0, 4, 3);
    o.cores_per_worker = 2;
    p.observe(&o);
    o.at_ms = 10 * S;
    // 3 partitions at 2 per worker: 2 workers more.
    assert_eq!(p.observe(&o).map(|d| d.to), Some(6));
}

#[test]
fn pending_workers_are_in_flight_not_capacity() {
    let mut p = policy(1, 16);
    // 2 connected, 2 more pending: the need (2 more) is already asked for.
    let mut o = busy(0, 2, 40);
    o.asked = 4;
    o.pending = 2;
    assert_eq!(p.observe(&o), None);
    o.at_ms = 20 * S;
    assert_eq!(p.observe(&o), None, "the pending jobs cover the doubling");
    // Once they run and connect, the need is measured again from the connected count.
    o.connected = 4;
    o.pending = 0;
    o.at_ms = 40 * S;
    let d = p.observe(&o).expect("grows from the connected 4");
    assert_eq!((d.from, d.to), (4, 8));
}

#[test]
fn pending_workers_are_named_in_the_reason_and_shed_first_when_idle() {
    let mut p = policy(1, 16);
    let mut o = busy(0, 1, 40);
    o.asked = 1;
    p.observe(&o);
    o.at_ms = 10 * S;
    o.asked = 1;
    assert_eq!(p.observe(&o).map(|d| d.to), Some(2));
    // Its job pends; the query ends; after the idle time the cluster goes back to MIN
    // although the new worker never connected.
    let mut i = idle(20, 1);
    i.asked = 2;
    i.pending = 1;
    assert_eq!(p.observe(&i), None);
    i.at_ms = 80 * S;
    let d = p.observe(&i).expect("shrinks");
    assert_eq!((d.direction, d.from, d.to), (Direction::Down, 2, 1));
    assert_eq!(d.reason, "idle for 60 s (no query running or queued)");
}

#[test]
fn shrinks_to_min_only_after_the_idle_time() {
    let mut p = policy(2, 8);
    assert_eq!(p.observe(&idle(0, 8)), None);
    assert_eq!(p.observe(&idle(59, 8)), None);
    // A query in between restarts the idle clock.
    assert_eq!(p.observe(&busy(30, 8, 0)), None);
    assert_eq!(p.observe(&idle(31, 8)), None);
    assert_eq!(p.observe(&idle(90, 8)), None);
    let d = p.observe(&idle(91, 8)).expect("shrinks");
    assert_eq!((d.direction, d.to), (Direction::Down, 2));
    // At MIN, idle forever: nothing more.
    assert_eq!(p.observe(&idle(1000, 2)), None);
}

#[test]
fn decisions_are_at_least_min_between_apart() {
    let mut p = policy(1, 64);
    p.observe(&busy(0, 1, 1000));
    assert_eq!(p.observe(&busy(10, 1, 1000)).map(|d| d.to), Some(2));
    // Still waiting, and the 2 are connected at once: not before 40 s.
    for t in 11..40 {
        assert_eq!(p.observe(&busy(t, 2, 1000)), None, "t={t}");
    }
    assert_eq!(p.observe(&busy(40, 2, 1000)).map(|d| d.to), Some(4));
}

#[test]
fn queued_queries_alone_ask_for_one_more() {
    let mut p = policy(1, 8);
    let mut o = busy(0, 3, 0);
    o.queued_queries = 2;
    p.observe(&o);
    o.at_ms = 10 * S;
    let d = p.observe(&o).expect("grows");
    assert_eq!(d.to, 4);
    assert_eq!(
        d.reason,
        "2 queued queries waited 10 s with 3 workers connected"
    );
}

#[test]
fn stays_within_max_and_the_partition_limit() {
    let mut p = policy(1, 6);
    p.observe(&busy(0, 4, 1000));
    assert_eq!(p.observe(&busy(10, 4, 1000)).map(|d| d.to), Some(6));
    assert_eq!(p.observe(&busy(100, 6, 1000)), None, "at MAX");

    let mut p = policy(1, 100);
    let mut o = busy(0, 4, 1000);
    o.limit = Some(5);
    p.observe(&o);
    o.at_ms = 10 * S;
    assert_eq!(p.observe(&o).map(|d| d.to), Some(5));
    // Asked beyond the limit (e.g. the range changed): back within it, reason given.
    let mut o = busy(100, 9, 0);
    o.limit = Some(5);
    let d = p.observe(&o).expect("back within");
    assert_eq!((d.direction, d.to), (Direction::Down, 5));
    assert_eq!(d.reason, "9 asked for and the partition holds at most 5");
}

#[test]
fn below_min_grows_at_once() {
    let mut p = policy(3, 8);
    let d = p.observe(&idle(0, 1)).expect("up to MIN");
    assert_eq!((d.direction, d.from, d.to), (Direction::Up, 1, 3));
}

#[test]
fn memory_survives_a_restart() {
    let mut p = policy(1, 8);
    p.observe(&busy(0, 1, 10));
    assert!(p.observe(&busy(10, 1, 10)).is_some());
    let saved = serde_json::to_string(&p.memory).expect("json");
    let mut again = policy(1, 8);
    again.memory = serde_json::from_str(&saved).expect("back");
    assert_eq!(again.observe(&busy(20, 2, 10)), None, "min_between holds");
}

/// A simulated cluster: decisions are applied, SLURM starts jobs after `start_delay_s`,
/// and the load is a random sequence of busy and idle spells.
fn simulate(spells: &[(bool, u64)], start_delay_s: u64, range: Range) -> Vec<(Decision, u64)> {
    let mut p = Policy::new(range, tuning());
    let mut asked = range.min;
    let mut connected = range.min;
    let mut started_at: Option<u64> = None;
    let mut out = Vec::new();
    let mut t = 0u64;
    let mut idle_since: Option<u64> = None;
    for &(is_busy, len) in spells {
        for _ in 0..len {
            if let Some(at) = started_at
                && t >= at + start_delay_s
            {
                connected = asked;
                started_at = None;
            }
            if connected > asked {
                connected = asked;
            }
            idle_since = if is_busy {
                None
            } else {
                Some(idle_since.unwrap_or(t))
            };
            let o = Observation {
                at_ms: t * S,
                query_running: is_busy,
                queued_queries: 0,
                waiting_tasks: if is_busy { 500 } else { 0 },
                connected,
                asked,
                pending: asked - connected,
                cores_per_worker: 2,
                limit: None,
            };
            if let Some(d) = p.observe(&o) {
                asked = d.to;
                if d.direction == Direction::Up {
                    started_at = Some(t);
                }
                out.push((d, idle_since.map_or(0, |s| t - s)));
            }
            t += 1;
        }
    }
    out
}

proptest! {
    #[test]
    fn never_flaps_and_never_leaves_the_range(
        spells in prop::collection::vec((any::<bool>(), 1u64..200), 1..30),
        delay in 0u64..100,
        min in 1u32..4,
        extra in 0u32..20,
    ) {
        let range = Range { min, max: min + extra };
        let t = tuning();
        let decisions = simulate(&spells, delay, range);
        let mut last: Option<u64> = None;
        for (d, idle_for_s) in &decisions {
            prop_assert!(d.to >= range.min && d.to <= range.max, "{d:?}");
            prop_assert!(d.to != d.from, "{d:?}");
            if let Some(l) = last {
                prop_assert!(d.at_ms - l >= ms(t.min_between), "too close: {decisions:?}");
            }
            last = Some(d.at_ms);
            match d.direction {
                // Never down while busy, and only after the whole idle time.
                Direction::Down => prop_assert!(*idle_for_s * S >= ms(t.idle_after), "{d:?}"),
                // Never up while idle.
                Direction::Up => prop_assert_eq!(*idle_for_s, 0, "{:?}", d),
            }
        }
        // Each down needs a whole idle spell and each up a busy one: the direction
        // changes at most once per change of load.
        let changes = decisions.windows(2).filter(|w| w[0].0.direction != w[1].0.direction).count();
        let load_changes = spells.windows(2).filter(|w| w[0].0 != w[1].0).count();
        prop_assert!(changes <= load_changes, "{changes} > {load_changes}");
    }
}
