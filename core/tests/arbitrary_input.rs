//! Arbitrary inputs against everything a stranger or a data file controls: every protocol
//! message decoder and the CSV scanner. A bounded number of cases per run (proptest), each
//! asserting no panic; the decoders also assert that no input, however it lies about lengths,
//! makes them allocate more than serde's cautious bound.
// The allocation probe is a `GlobalAlloc`, which is unsafe by definition; it only forwards to
// the system allocator and records sizes. This test binary is its only user.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use corral_core::aggregate::{self, Column, ExecOptions, Query};
use corral_core::protocol::{
    AuthProof, ClientRequest, FileProblem, Hello, QueryOptions, Registration, Role, TaskFailure,
    ToClient, ToWorker, WorkerMsg, WorkerReport,
};
use corral_core::transport::{decode_payload, encode_frame};
use proptest::prelude::*;
use serde::de::DeserializeOwned;

struct Probe;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
        }
    });
}

// SAFETY: every method forwards to the system allocator with the caller's arguments; the
// thread-locals it touches are const-initialised `Cell`s, which never allocate.
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static PROBE: Probe = Probe;

/// Runs `f`, returning the largest single allocation it made on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|m| m.set(0));
    TRACKING.with(|t| t.set(true));
    f();
    TRACKING.with(|t| t.set(false));
    LARGEST.with(Cell::get)
}

/// serde preallocates at most 1 MiB for a sequence whatever length the input claims.
const DECODE_BOUND: usize = 1 << 20;

fn decode_every_message(bytes: &[u8]) {
    fn one<T: DeserializeOwned>(bytes: &[u8]) {
        let _ = decode_payload::<T>(bytes);
    }
    one::<Hello>(bytes);
    one::<AuthProof>(bytes);
    one::<WorkerMsg>(bytes);
    one::<ToWorker>(bytes);
    one::<ClientRequest>(bytes);
    one::<ToClient>(bytes);
}

/// Real messages of every kind, encoded: the starting points for mutations.
fn real_payloads() -> Vec<Vec<u8>> {
    let q = Query::value_counts(vec!["/d/*.csv".into()], Column::Name("payment_type".into()));
    let payload = |f: Vec<u8>| f[4..].to_vec();
    let mut v = vec![
        payload(encode_frame(&Hello::new(Role::Worker)).expect("hello")),
        payload(encode_frame(&AuthProof { mac: [9; 32] }).expect("proof")),
        payload(
            encode_frame(&WorkerMsg::Register(Registration {
                node: "n".into(),
                pid: 1,
                cores: 2,
                slurm: None,
                software_version: "v".into(),
            }))
            .expect("register"),
        ),
        payload(encode_frame(&WorkerMsg::Report(WorkerReport::default())).expect("report")),
        payload(
            encode_frame(&WorkerMsg::PlanChecked {
                query: 3,
                unreadable: vec![FileProblem {
                    path: "/d/a.csv".into(),
                    error: "gone".into(),
                }],
            })
            .expect("checked"),
        ),
        payload(
            encode_frame(&WorkerMsg::Failed(TaskFailure {
                query: 1,
                task: 2,
                attempt: 3,
                error: "e".into(),
                path: None,
            }))
            .expect("failed"),
        ),
        payload(encode_frame(&ToWorker::Cancel { query: 5 }).expect("cancel")),
        payload(
            encode_frame(&ClientRequest::Submit {
                query: q,
                options: QueryOptions {
                    partition_bytes: Some(4096),
                    timeout_ms: Some(1000),
                },
            })
            .expect("submit"),
        ),
        payload(encode_frame(&ClientRequest::Cancel { query: 7 }).expect("cancel")),
        payload(encode_frame(&ToClient::Cancelled { query: 7 }).expect("cancelled")),
    ];
    v.push(Vec::new());
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_bytes_never_panic_or_overallocate_any_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let largest = largest_allocation(|| decode_every_message(&bytes));
        prop_assert!(largest <= DECODE_BOUND, "{largest} bytes allocated for {} input bytes", bytes.len());
    }

    #[test]
    fn mutated_real_messages_never_panic_or_overallocate(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let all = real_payloads();
        let mut bytes = all[pick.index(all.len())].clone();
        if !bytes.is_empty() {
            for (at, b) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let largest = largest_allocation(|| decode_every_message(&bytes));
        prop_assert!(largest <= DECODE_BOUND, "{largest} bytes allocated");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes at all as a CSV file: planning and scanning never panic, and cutting the
    /// file into partitions of any size gives the same answer as one partition.
    #[test]
    fn the_scanner_takes_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..1500),
        header in any::<bool>(),
        part in 1u64..64,
        threads in 1usize..3,
    ) {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("any.csv");
        std::fs::write(&path, &bytes).expect("write");
        let mut q = Query::value_counts(vec![path.to_string_lossy().into_owned()], Column::Index(0));
        q.has_header = header;
        let whole = aggregate::plan(&q, 1 << 20);
        let cut = aggregate::plan(&q, part);
        match (whole, cut) {
            (Ok(whole), Ok(cut)) => {
                let one = aggregate::execute(&whole, &ExecOptions {
                    threads: std::num::NonZeroUsize::MIN,
                    ..ExecOptions::default()
                });
                let many = aggregate::execute(&cut, &ExecOptions {
                    threads: std::num::NonZeroUsize::new(threads).expect("nonzero"),
                    ..ExecOptions::default()
                });
                match (one, many) {
                    (Ok(a), Ok(b)) => {
                        prop_assert_eq!(a.groups, b.groups);
                        prop_assert_eq!(a.rows, b.rows);
                        prop_assert_eq!(a.bad_rows.total, b.bad_rows.total);
                    }
                    (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                    (a, b) => prop_assert!(false, "one partition: {a:?}; {part}-byte partitions: {b:?}"),
                }
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "planning differs: {:?} vs {:?}", a.err(), b.err()),
        }
    }
}

#[test]
fn the_probe_sees_a_decoder_that_believes_a_length() {
    // A Vec<u8> of claimed length 2^40 (varint) with 3 bytes behind it: serde caps the
    // preallocation, and the probe sees what was asked for.
    let mut lying = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
    lying.extend([1, 2, 3]);
    let largest = largest_allocation(|| {
        let _ = decode_payload::<Vec<u8>>(&lying);
    });
    assert!(largest > 0 && largest <= DECODE_BOUND, "{largest}");
    let big = largest_allocation(|| drop(std::hint::black_box(vec![0u8; 3 << 20])));
    assert!(big >= 3 << 20, "the probe must see allocations: {big}");
}
