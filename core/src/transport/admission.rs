//! Who may start a handshake, and what strangers cost in the log.
//!
//! Every connection between its first packet and "authenticated" holds a *ticket*: one of
//! `max_pending` overall and one of `max_per_address` for its source address. Addresses are
//! validated first (QUIC Retry, in the accept loop), so a stranger cannot spend another
//! address's share by spoofing it. A burst of legitimate workers from a few nodes over their
//! share is refused before any cryptography and retries with jittered backoff.
//!
//! Refusals and failed handshakes are counted, not logged one by one: [`Refusals::summary`]
//! gives one line per interval (the counts and the busiest addresses), so a flood costs a line
//! a minute in a log under the user's quota, not a line per packet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection did not become authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Refusal {
    /// Too many handshakes from its address at once.
    AddressBusy,
    /// Too many handshakes at once overall.
    ServerBusy,
    /// TLS failed (wrong ALPN, scanners).
    TlsFailed,
    /// TLS did not finish before its deadline.
    TlsTimeout,
    /// TLS done, but no valid proof before the deadline.
    AuthTimeout,
    /// A wrong proof of the cluster secret.
    AuthFailed,
    /// Malformed, oversize or unexpected handshake frames, or another protocol version.
    Violation,
}

impl Refusal {
    fn words(self) -> &'static str {
        match self {
            Refusal::AddressBusy => "over the per-address cap",
            Refusal::ServerBusy => "over the overall cap",
            Refusal::TlsFailed => "TLS failed",
            Refusal::TlsTimeout => "TLS too slow",
            Refusal::AuthTimeout => "no proof in time",
            Refusal::AuthFailed => "wrong secret",
            Refusal::Violation => "protocol violation",
        }
    }
}

struct Counts {
    pending: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// The caps on pending handshakes.
pub(crate) struct Admission {
    max_pending: usize,
    max_per_address: usize,
    counts: Mutex<Counts>,
}

/// A pending handshake's place; dropping it frees the place.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub fn new(max_pending: usize, max_per_address: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_pending: max_pending.max(1),
            max_per_address: max_per_address.max(1),
            counts: Mutex::new(Counts {
                pending: 0,
                per_address: HashMap::new(),
            }),
        })
    }

    /// A place for a handshake from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mine = c.per_address.get(&ip).copied().unwrap_or(0);
        if mine >= self.max_per_address {
            return Err(Refusal::AddressBusy);
        }
        if c.pending >= self.max_pending {
            return Err(Refusal::ServerBusy);
        }
        c.pending += 1;
        *c.per_address.entry(ip).or_insert(0) += 1;
        Ok(Ticket {
            admission: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self
            .admission
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        c.pending = c.pending.saturating_sub(1);
        if let Some(n) = c.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_address.remove(&self.ip);
            }
        }
    }
}

/// Addresses remembered per summary; beyond that only the totals grow (bounded memory under
/// a flood from many addresses).
const ADDRESSES_KEPT: usize = 1024;

/// Refusals since the last summary.
#[derive(Default)]
pub(crate) struct Refusals {
    inner: Mutex<RefusalCounts>,
}

#[derive(Default)]
struct RefusalCounts {
    by_kind: HashMap<Refusal, u64>,
    by_address: HashMap<IpAddr, u64>,
    other_addresses: u64,
}

impl Refusals {
    pub fn note(&self, why: Refusal, ip: IpAddr) {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *r.by_kind.entry(why).or_insert(0) += 1;
        let known = r.by_address.len() < ADDRESSES_KEPT || r.by_address.contains_key(&ip);
        if known {
            *r.by_address.entry(ip).or_insert(0) += 1;
        } else {
            r.other_addresses += 1;
        }
    }

    /// One line about everything refused since the last call (and forgets it); `None` when
    /// nothing was.
    pub fn summary(&self) -> Option<String> {
        let r = std::mem::take(&mut *self.inner.lock().unwrap_or_else(|e| e.into_inner()));
        let total: u64 = r.by_kind.values().sum();
        if total == 0 {
            return None;
        }
        let mut kinds: Vec<(Refusal, u64)> = r.by_kind.into_iter().collect();
        kinds.sort();
        let kinds: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{n} {}", k.words()))
            .collect();
        let mut addrs: Vec<(IpAddr, u64)> = r.by_address.into_iter().collect();
        let n_addrs = addrs.len() as u64 + u64::from(r.other_addresses > 0);
        addrs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<String> = addrs
            .iter()
            .take(3)
            .map(|(ip, n)| format!("{ip} ({n})"))
            .collect();
        Some(format!(
            "refused {total} unauthenticated connection{} ({}) from {n_addrs}{} address{}; \
             most from {}",
            if total == 1 { "" } else { "s" },
            kinds.join(", "),
            if r.other_addresses > 0 { "+" } else { "" },
            if n_addrs == 1 { "" } else { "es" },
            top.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn each_address_gets_its_share_and_tickets_give_it_back() {
        let a = Admission::new(3, 2);
        let t1 = a.admit(ip("10.0.0.1")).expect("first");
        let _t2 = a.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(a.admit(ip("10.0.0.1")).err(), Some(Refusal::AddressBusy));
        // Another address still gets in, up to the overall cap.
        let _t3 = a.admit(ip("10.0.0.2")).expect("another address");
        assert_eq!(a.admit(ip("10.0.0.3")).err(), Some(Refusal::ServerBusy));
        drop(t1);
        assert_eq!(a.pending(), 2);
        let _t4 = a.admit(ip("10.0.0.1")).expect("a freed place");
    }

    #[test]
    fn refusals_are_summed_up_in_one_line_and_forgotten() {
        let r = Refusals::default();
        assert_eq!(r.summary(), None);
        for _ in 0..5 {
            r.note(Refusal::AddressBusy, ip("10.0.0.9"));
        }
        r.note(Refusal::AuthTimeout, ip("10.0.0.9"));
        r.note(Refusal::AuthFailed, ip("10.0.0.7"));
        let line = r.summary().expect("a summary");
        assert_eq!(
            line,
            "refused 7 unauthenticated connections (5 over the per-address cap, 1 no proof in \
             time, 1 wrong secret) from 2 addresses; most from 10.0.0.9 (6), 10.0.0.7 (1)"
        );
        assert_eq!(r.summary(), None, "a summary forgets what it told");
    }

    #[test]
    fn a_flood_from_many_addresses_keeps_bounded_memory() {
        let r = Refusals::default();
        for i in 0..(ADDRESSES_KEPT as u32 + 100) {
            r.note(Refusal::TlsTimeout, IpAddr::from(i.to_be_bytes()));
        }
        assert!(
            r.inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .by_address
                .len()
                <= ADDRESSES_KEPT
        );
        let line = r.summary().expect("summary");
        assert!(line.contains("from 1025+ addresses"), "{line}");
    }
}
