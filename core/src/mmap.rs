//! The unsafe boundary: the one module of corral allowed `unsafe`. Everything here is small and
//! says above each unsafe block why it is sound. It holds three things:
//!
//! - [`MappedFile`]: a read-only memory map of a file (memmap2), with a plain-read fallback left
//!   to the caller when mapping fails (`open` returns the error, the engine then reads).
//! - The SIGBUS guard: a file truncated while mapped makes the kernel raise SIGBUS on the first
//!   access past the new end, which would kill the process. A handler, installed once, looks
//!   up the faulting address among the registered mappings; if it is in one, it maps anonymous
//!   zero pages (`MAP_FIXED`) from the faulting page to the end of that mapping, marks it
//!   "changed" and returns, so the read is retried and sees zeros. The engine checks [`MappedFile::changed`]
//!   and re-stats the file after each partition, and fails the query naming the file. A fault
//!   anywhere else restores the previous disposition and returns, so it kills as before.
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
    /// Address of the mapping; 0 = free. Published last, cleared first.
    start: AtomicUsize,
    /// Length rounded up to whole pages.
    len: AtomicUsize,
    changed: AtomicBool,
    /// Claimed by a `MappedFile` (set before `start`, cleared after).
    taken: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    changed: AtomicBool::new(false),
    taken: AtomicBool::new(false),
};
static REGIONS: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static GUARD_OK: AtomicBool = AtomicBool::new(false);
/// The disposition SIGBUS had before ours, restored for faults that are not ours.
static OLD_ACTION: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

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
        for (i, s) in REGIONS.iter().enumerate() {
            if s.taken
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                s.changed.store(false, Ordering::Release);
                s.len.store(len, Ordering::Release);
                s.start.store(mf.map.as_ptr() as usize, Ordering::Release);
                mf.slot = Some(i);
                return Ok(mf);
            }
        }
        Err(io::Error::other(
            "too many files mapped at once for the SIGBUS guard",
        ))
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
            REGIONS[i].start.store(0, Ordering::Release);
            REGIONS[i].taken.store(false, Ordering::Release);
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

/// The SIGBUS handler. Only async-signal-safe work: atomics and the mmap/sigaction syscalls.
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for a SA_SIGINFO handler of SIGBUS, whose
    // si_addr is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    for slot in &REGIONS {
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 {
            continue;
        }
        let len = slot.len.load(Ordering::Acquire);
        if addr >= start && addr - start < len {
            // From the faulting page to the end of the mapping: everything past the new end of
            // the file would fault too, one signal per page, as a reader runs to the end.
            let at = addr & !(page - 1);
            let rest = start + len - at;
            // SAFETY: `[at, at + rest)` is whole pages inside a mapping we own (registered, not
            // yet unmapped: Drop unregisters first). Replacing them with anonymous read-only
            // zero pages keeps the address range valid for every reader; no one holds the old
            // pages' contents as anything but bytes.
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
                slot.changed.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not ours: put back what was there before and return; the access faults again and gets
    // the old behaviour (by default: the process dies with SIGBUS, as it should).
    // SAFETY: sigaction with a previously returned action (or SIG_DFL) is always valid.
    unsafe {
        match OLD_ACTION.get() {
            Some(old) => {
                libc::sigaction(libc::SIGBUS, old, std::ptr::null_mut());
            }
            None => {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
            }
        }
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
