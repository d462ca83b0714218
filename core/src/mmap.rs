//! The unsafe boundary: the one module of corral allowed `unsafe`. Everything here is small and
//! says above each unsafe block why it is sound. It holds three things:
//!
//! - [`MappedFile`]: a read-only memory map of a file (memmap2), with a plain-read fallback left
//!   to the caller when mapping fails (`open` returns the error, the engine then reads).
//! - The SIGBUS guard: a file truncated while mapped makes the kernel raise SIGBUS on the first
//!   access past the new end, which would kill the process. A handler, installed once, takes a
//!   signal as a truncation only when the kernel says it is an access to a nonexistent part of
//!   a mapped object (`si_code == BUS_ADRERR`) at an address inside a registered mapping; it
//!   then maps anonymous zero pages (`MAP_FIXED`) from the faulting page to the end of that
//!   mapping, marks it "changed" and returns, so the read is retried and sees zeros. The engine
//!   checks [`MappedFile::changed`] and re-stats the file after each partition, and fails the
//!   query naming the file. Each slot of the registry is a seqlock (an even sequence number
//!   around its start and length), so the handler never pairs the start of one mapping with
//!   the length of another when a slot is freed and reused meanwhile. Anything else — `kill
//!   -BUS`, a hardware memory error, a fault outside our mappings — goes to the previous
//!   handler if there was one (ours stays installed), or gets the default action: the process
//!   dies with SIGBUS, as it would without corral.
//! - The SIMD entry points of the CSV scanner: calling a `#[target_feature]` function from code
//!   compiled without those features is `unsafe`, even for SSE2 on x86_64, so the dispatch
//!   (after runtime detection) and the two unaligned-load helpers live here. The scanner itself
//!   (`aggregate::scan`) is safe code.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many mappings the SIGBUS guard can watch at once. A file mapped beyond that is read
/// with plain reads instead (see [`MappedFile::open`]).
const SLOTS: usize = 512;

struct Slot {
    /// Seqlock: odd while `start`/`len` are being changed; a reader keeps a pair only if it
    /// saw the same even value before and after reading them.
    seq: AtomicUsize,
    /// Address of the mapping; 0 = free.
    start: AtomicUsize,
    /// Length rounded up to whole pages.
    len: AtomicUsize,
    changed: AtomicBool,
    /// Claimed by a `MappedFile` (set before the slot is written, cleared after it is freed).
    taken: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    seq: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    changed: AtomicBool::new(false),
    taken: AtomicBool::new(false),
};
static REGIONS: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static GUARD_OK: AtomicBool = AtomicBool::new(false);
/// The disposition SIGBUS had before ours: signals that are not ours go there.
static OLD_ACTION: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

impl Slot {
    /// Writes `start`/`len` under the seqlock (only the slot's owner writes).
    fn publish(&self, start: usize, len: usize) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        self.start.store(start, Ordering::Release);
        self.len.store(len, Ordering::Release);
        self.seq.fetch_add(1, Ordering::AcqRel);
    }

    /// A consistent `(start, len)` of a live mapping, or None (free, or changing right now:
    /// a slot being written cannot be the mapping a reader faulted in, since a mapping is
    /// registered before anyone reads it and freed after everyone did). Lock-free, so safe
    /// in a signal handler even when the interrupted thread is the writer.
    fn read(&self) -> Option<(usize, usize)> {
        for _ in 0..4 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                return None;
            }
            let start = self.start.load(Ordering::Acquire);
            let len = self.len.load(Ordering::Acquire);
            std::sync::atomic::fence(Ordering::Acquire);
            if self.seq.load(Ordering::Acquire) == s1 {
                return (start != 0).then_some((start, len));
            }
        }
        None
    }
}

/// The registered mapping holding `addr`: its slot, start and length.
fn lookup(addr: usize) -> Option<(usize, usize, usize)> {
    REGIONS.iter().enumerate().find_map(|(i, slot)| {
        let (start, len) = slot.read()?;
        (addr >= start && addr - start < len).then_some((i, start, len))
    })
}

/// Claims a free slot and publishes `[start, start+len)` in it.
fn register(start: usize, len: usize) -> Option<usize> {
    for (i, s) in REGIONS.iter().enumerate() {
        if s.taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            s.changed.store(false, Ordering::Release);
            s.publish(start, len);
            return Some(i);
        }
    }
    None
}

/// Unpublishes slot `i` and frees it.
fn unregister(i: usize) {
    let s = &REGIONS[i];
    s.publish(0, 0);
    s.taken.store(false, Ordering::Release);
}

/// A read-only memory map of a whole file, watched by the SIGBUS guard.
pub struct MappedFile {
    map: memmap2::Mmap,
    slot: Option<usize>,
}

impl MappedFile {
    /// Maps `file` (of `len` bytes as planned) read-only. Fails when the guard cannot be
    /// installed or has no free slot, or when mmap fails; the caller then reads instead.
    pub fn open(file: &File) -> io::Result<MappedFile> {
        install_guard();
        if !GUARD_OK.load(Ordering::Acquire) {
            return Err(io::Error::other("SIGBUS guard unavailable"));
        }
        // SAFETY: memmap2 requires that the file is not modified while mapped, or that we cope
        // with it. We cope: reads of a truncated part fault into the SIGBUS guard (zero page +
        // "changed" flag), and the engine re-stats the file after each partition and fails the
        // query if size, mtime or inode moved. Bytes that change in place are only ever copied
        // and compared, never trusted for memory safety (no length or index is read from them
        // without bounds checks).
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        let mut mf = MappedFile { map, slot: None };
        if mf.map.is_empty() {
            return Ok(mf);
        }
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        let len = mf.map.len().div_ceil(page) * page;
        match register(mf.map.as_ptr() as usize, len) {
            Some(i) => {
                mf.slot = Some(i);
                Ok(mf)
            }
            None => Err(io::Error::other(
                "too many files mapped at once for the SIGBUS guard",
            )),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// True once a read hit a page beyond the file's end (the file shrank while mapped).
    pub fn changed(&self) -> bool {
        self.slot
            .is_some_and(|i| REGIONS[i].changed.load(Ordering::Acquire))
    }

    /// Asks the kernel to map the pages of `[offset, offset+len)` now, in one call, instead of
    /// one fault per 64 KiB. Advisory: errors are ignored.
    pub fn populate(&self, offset: usize, len: usize) {
        #[cfg(target_os = "linux")]
        {
            let len = len.min(self.map.len().saturating_sub(offset));
            if len > 0 {
                let _ = self
                    .map
                    .advise_range(memmap2::Advice::PopulateRead, offset, len);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len);
    }

    /// Drops the page-table entries of the whole pages inside `[offset, offset+len)`: the pages
    /// stay in the page cache, but this process's resident set stops counting them, so a scan
    /// over many gigabytes keeps a small RSS. Advisory: errors are ignored.
    pub fn release(&self, offset: usize, len: usize) {
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        let first = offset.div_ceil(page) * page;
        let last = (offset.saturating_add(len)).min(self.map.len()) / page * page;
        if last > first {
            // SAFETY: MADV_DONTNEED on a read-only, never-written file mapping only forgets
            // page-table entries; the next access faults the same bytes back in from the page
            // cache (or into the SIGBUS guard if the file shrank), so any `&[u8]` into this
            // range, held by another thread, keeps reading the same file contents.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    first,
                    last - first,
                )
            };
        }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // Unregister before memmap2 unmaps, so the handler never claims a reused range.
            unregister(i);
        }
    }
}

fn install_guard() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE_SIZE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: an all-zero `sigaction` is a valid "no flags, empty mask" value to fill in;
        // `on_sigbus` has the SA_SIGINFO signature; `old` receives the previous action.
        let ok = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            let r = libc::sigaction(libc::SIGBUS, &sa, &mut old);
            if r == 0 {
                let _ = OLD_ACTION.set(old);
            }
            r == 0
        };
        GUARD_OK.store(ok, Ordering::Release);
    });
}

/// The SIGBUS handler. Only async-signal-safe work: atomics and the mmap, sigaction and
/// raise syscalls.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to a SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // Only the kernel's "access past the end of the mapped object" is a truncation; `kill
    // -BUS` (si_code <= 0) and hardware errors (BUS_MCEERR_*) are not.
    if code == libc::BUS_ADRERR
        && let Some((i, start, len)) = lookup(addr)
    {
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        // From the faulting page to the end of the mapping: everything past the new end of
        // the file would fault too, one signal per page, as a reader runs to the end.
        let at = addr & !(page - 1);
        let rest = start + len - at;
        // SAFETY: the fault is synchronous (BUS_ADRERR), so this thread was reading this
        // mapping and holds it alive: `[start, start+len)` is a consistent pair of a live
        // registered mapping (seqlock), and `[at, at + rest)` whole pages inside it. Replacing
        // them with anonymous read-only zero pages keeps the range valid for every reader; no
        // one holds the old pages' contents as anything but bytes.
        let r = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                rest,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if r != libc::MAP_FAILED {
            REGIONS[i].changed.store(true, Ordering::Release);
            return;
        }
    }
    not_ours(sig, info, ctx);
}

/// A SIGBUS that is not a truncation of ours: what would have happened without corral.
fn not_ours(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if let Some(old) = OLD_ACTION.get() {
        let handler = old.sa_sigaction;
        if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
            // SAFETY: `handler` is the function that was installed for SIGBUS before us, with
            // the signature its flags say; calling it with our arguments is what the kernel
            // would have done. Ours stays installed.
            unsafe {
                if old.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(handler);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                    f(sig);
                }
            }
            // A handler that gave up (reset SIGBUS to the default, as Rust's own stack-overflow
            // handler does for faults it does not know) wants the default action; otherwise
            // it handled the signal, and ours stays installed.
            // SAFETY: querying the current action into a zeroed sigaction is always valid.
            let now = unsafe {
                let mut now: libc::sigaction = std::mem::zeroed();
                libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut now);
                now.sa_sigaction
            };
            if now != libc::SIG_DFL {
                return;
            }
        }
        // SAFETY: info is valid (see on_sigbus).
        let sent = unsafe { (*info).si_code } <= 0;
        if handler == libc::SIG_IGN && sent {
            // Ignored before us, and sent by a process: still ignored.
            return;
        }
    }
    // The default action: die by SIGBUS. The signal is blocked while this handler runs, so
    // the raised one is delivered — with the default action — as soon as it returns (and a
    // real fault would fault again anyway).
    // SAFETY: signal and raise are async-signal-safe and valid with these arguments.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
        libc::raise(libc::SIGBUS);
    }
}

/// Which instruction set the CSV block classifier runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable 64-bit SWAR: any CPU.
    Portable,
    /// x86_64 baseline: SSE2 compares, software popcount/select.
    Sse2,
    /// AVX2 compares, POPCNT, BMI2 `pdep` select, PCLMULQDQ prefix-XOR.
    Avx2,
}

impl Isa {
    /// The best instruction set this CPU has (detected once).
    pub fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let all = Isa::available();
            all.last().copied().unwrap_or(Isa::Portable)
        })
    }

    /// `portable`, `sse2` or `avx2`.
    pub fn from_name(name: &str) -> Option<Isa> {
        match name {
            "portable" => Some(Isa::Portable),
            "sse2" => Some(Isa::Sse2),
            "avx2" => Some(Isa::Avx2),
            _ => None,
        }
    }

    /// Every instruction set usable on this CPU, worst first.
    pub fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            v.push(Isa::Sse2);
            if avx2_detected() {
                v.push(Isa::Avx2);
            }
        }
        v
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_detected() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("bmi2")
        && std::is_x86_feature_detected!("popcnt")
        && std::is_x86_feature_detected!("pclmulqdq")
}

/// Runs the CSV scanner compiled for `isa` (falling back to portable if the CPU lacks it).
pub(crate) fn scan<S: crate::aggregate::scan::Sink>(
    isa: Isa,
    args: &crate::aggregate::scan::ScanArgs<'_>,
    sink: &mut S,
) -> crate::aggregate::scan::ScanOut {
    use crate::aggregate::scan;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if avx2_detected() => {
            // SAFETY: scan_avx2 is compiled for avx2, bmi1, bmi2, popcnt and pclmulqdq, each
            // detected on this CPU just above.
            unsafe { scan::scan_avx2(args, sink) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Sse2 | Isa::Avx2 => {
            // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
            unsafe { scan::scan_sse2(args, sink) }
        }
        _ => scan::scan_portable(args, sink),
    }
}

/// Classifies one 64-byte block with `isa` (for tests comparing the implementations).
#[cfg(test)]
pub(crate) fn classify(isa: Isa, block: &[u8; 64]) -> crate::aggregate::classify::Masks {
    use crate::aggregate::classify;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if avx2_detected() => {
            // SAFETY: the features were detected just above.
            unsafe { classify::classify_avx2(block) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Sse2 | Isa::Avx2 => {
            // SAFETY: SSE2 is part of the x86_64 baseline.
            unsafe { classify::classify_sse2(block) }
        }
        _ => classify::classify_portable(block),
    }
}

/// Unaligned 16-byte load for the SSE2 classifier.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
pub(crate) fn load16(b: &[u8; 16]) -> std::arch::x86_64::__m128i {
    // SAFETY: `b` is a valid reference to 16 bytes; loadu has no alignment requirement.
    unsafe { std::arch::x86_64::_mm_loadu_si128(b.as_ptr().cast()) }
}

/// Unaligned 32-byte load for the AVX2 classifier.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
pub(crate) fn load32(b: &[u8; 32]) -> std::arch::x86_64::__m256i {
    // SAFETY: `b` is a valid reference to 32 bytes; loadu has no alignment requirement.
    unsafe { std::arch::x86_64::_mm256_loadu_si256(b.as_ptr().cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Runs this test binary's test `name` alone in a child process with `CORRAL_SIGBUS_CASE`
    /// set, for cases that install signal handlers or are meant to kill the process.
    fn in_child(name: &str) -> std::process::ExitStatus {
        let exe = std::env::current_exe().expect("test binary");
        std::process::Command::new(exe)
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env("CORRAL_SIGBUS_CASE", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("child runs")
    }

    fn in_child_now() -> bool {
        std::env::var_os("CORRAL_SIGBUS_CASE").is_some()
    }

    fn mapped(dir: &std::path::Path, bytes: usize) -> (std::path::PathBuf, MappedFile) {
        let path = dir.join("f");
        std::fs::write(&path, vec![b'x'; bytes]).expect("write");
        let f = File::open(&path).expect("open");
        (path, MappedFile::open(&f).expect("map"))
    }

    /// Queues SIGBUS to this thread with `code` and `addr`, as the kernel would for a fault.
    fn fake_sigbus(code: libc::c_int, addr: usize) {
        // SAFETY: a zeroed siginfo_t is valid; on Linux si_signo, si_errno and si_code are the
        // first three ints and si_addr is the first field of the union, at offset 16 on 64-bit
        // targets. A process may queue any si_code to itself.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let p = (&mut info as *mut libc::siginfo_t).cast::<u8>();
            *p.cast::<libc::c_int>() = libc::SIGBUS;
            *p.add(8).cast::<libc::c_int>() = code;
            *p.add(16).cast::<usize>() = addr;
            let r = libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                libc::getpid(),
                libc::gettid(),
                libc::SIGBUS,
                &info,
            );
            assert_eq!(r, 0, "rt_tgsigqueueinfo");
        }
    }

    #[test]
    fn kill_bus_kills_as_it_would_without_corral() {
        if in_child_now() {
            let d = tempfile::tempdir().expect("tmp");
            let (_p, m) = mapped(d.path(), 64 << 10);
            // Sent by a process (si_code <= 0): not a truncation, whatever the mappings.
            // SAFETY: raise is always valid.
            unsafe { libc::raise(libc::SIGBUS) };
            assert!(!m.changed());
            std::process::exit(0);
        }
        use std::os::unix::process::ExitStatusExt;
        let status = in_child("mmap::tests::kill_bus_kills_as_it_would_without_corral");
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
    }

    static CHAINED: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn counting(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        CHAINED.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn other_sigbus_go_to_the_previous_handler_and_the_guard_stays() {
        if in_child_now() {
            // A handler of the application, installed before the guard.
            // SAFETY: a zeroed sigaction with a SA_SIGINFO handler of the right signature.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = counting as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO;
                libc::sigemptyset(&mut sa.sa_mask);
                assert_eq!(libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()), 0);
            }
            let d = tempfile::tempdir().expect("tmp");
            let (path, m) = mapped(d.path(), 64 << 10);
            let inside = m.bytes().as_ptr() as usize + 50_000;
            // A hardware memory error inside our mapping is not a truncation; nor is a
            // kill; nor a fault outside our mappings. Each reaches the application's handler.
            fake_sigbus(libc::BUS_MCEERR_AR, inside);
            // SAFETY: raise is always valid.
            unsafe { libc::raise(libc::SIGBUS) };
            fake_sigbus(libc::BUS_ADRERR, 8);
            assert_eq!(CHAINED.load(Ordering::SeqCst), 3);
            assert!(!m.changed());
            // The guard is still installed: a real truncation is still caught.
            File::options()
                .write(true)
                .open(&path)
                .expect("open rw")
                .set_len(0)
                .expect("truncate");
            assert_eq!(std::hint::black_box(m.bytes())[60_000], 0);
            assert!(m.changed());
            assert_eq!(CHAINED.load(Ordering::SeqCst), 3);
            // A code of its own: the parent knows this body ran to the end.
            std::process::exit(42);
        }
        let status =
            in_child("mmap::tests::other_sigbus_go_to_the_previous_handler_and_the_guard_stays");
        assert_eq!(status.code(), Some(42), "{status:?}");
    }

    #[test]
    fn a_slot_read_never_pairs_one_mappings_start_with_anothers_length() {
        // Fake ranges far from anything mapped: registered and freed over and over by
        // writers while a reader looks them up. Every pair a reader sees must be one that was
        // published together (here: len = start / 1024).
        const BASE: usize = 0x6000_0000_0000;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3usize)
            .map(|w| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut k = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        k += 1;
                        let start = BASE + ((w * 1_000_003 + k) % 4096) * (1 << 24);
                        if let Some(i) = register(start, start / 1024) {
                            unregister(i);
                        }
                    }
                })
            })
            .collect();
        let mut seen = 0;
        for round in 0..200_000usize {
            for slot in REGIONS.iter().take(16) {
                if let Some((start, len)) = slot.read()
                    && start >= BASE
                {
                    assert_eq!(len, start / 1024, "torn read in round {round}");
                    seen += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        assert!(seen > 0, "the reader never saw a registered range");
        assert!(lookup(BASE + 5).is_none(), "every fake range was freed");
    }

    #[test]
    fn truncation_under_a_map_is_caught_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let mut f = File::create(&path).expect("create");
        f.write_all(&vec![b'x'; 64 << 10]).expect("write");
        drop(f);
        let f = File::open(&path).expect("open");
        let m = MappedFile::open(&f).expect("map");
        assert_eq!(m.bytes()[40_000], b'x');
        assert!(!m.changed());
        File::options()
            .write(true)
            .open(&path)
            .expect("open rw")
            .set_len(0)
            .expect("truncate");
        // This read would be a SIGBUS: the guard turns it into a zero and a flag.
        let b = std::hint::black_box(m.bytes())[50_000];
        assert_eq!(b, 0);
        assert!(m.changed());
    }
}
