//! Which address the coordinator listens on: the one other nodes reach this node by. Inside a
//! SLURM job, first the source address of the route toward the node the job was launched from
//! (`SLURM_LAUNCH_NODE_IPADDR` in a step, the submitting host `SLURM_SUBMIT_HOST` in a batch
//! step: the login side, where clients are), then the node's names as the system resolves
//! them. Loopback is taken only when the launch node
//! itself is loopback (every "node" is this one host, as on a one-host test bed); a node whose
//! name resolves to 127.0.1.1 (a common /etc/hosts default) never makes the cluster
//! unreachable from other hosts. Without SLURM: 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};

/// What was tried, for the one line that says why nothing usable was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    pub node: String,
    pub launch_node: Option<IpAddr>,
    /// The source address of the route toward the launch node.
    pub route: Option<IpAddr>,
    /// What the node's name resolves to.
    pub named: Vec<IpAddr>,
}

/// No address other nodes can reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "node {node}: no address other nodes can reach (tried: the route toward the launch node {launch} → {route}; \
     the name {node} → {named}); pass --bind with the node's cluster address"
)]
pub struct NoAddress {
    node: String,
    launch: String,
    route: String,
    named: String,
}

/// The decision, from what was found (pure, so every case is tested).
pub fn choose(t: &Tried) -> Result<IpAddr, NoAddress> {
    let one_host = t.launch_node.is_some_and(|l| l.is_loopback());
    let usable = |ip: &IpAddr| !ip.is_unspecified() && (one_host || !ip.is_loopback());
    if let Some(ip) = t.route.filter(usable) {
        return Ok(ip);
    }
    let mut named = t.named.clone();
    named.sort_by_key(|ip| !ip.is_ipv4());
    if let Some(ip) = named.iter().find(|ip| usable(ip)) {
        return Ok(*ip);
    }
    let show = |ips: &[IpAddr]| {
        if ips.is_empty() {
            "nothing".to_string()
        } else {
            ips.iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    Err(NoAddress {
        node: t.node.clone(),
        launch: t
            .launch_node
            .map_or_else(|| "(unknown)".into(), |l| l.to_string()),
        route: t.route.map_or_else(|| "no route".into(), |r| r.to_string()),
        named: show(&named),
    })
}

/// The source address the kernel would use toward `to` (a UDP `connect` sends nothing).
pub fn route_toward(to: IpAddr) -> Option<IpAddr> {
    let any: SocketAddr = match to {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = UdpSocket::bind(any).ok()?;
    s.connect((to, 9)).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// The address to listen on in this process's environment.
pub fn listen_address() -> Result<IpAddr, NoAddress> {
    if std::env::var_os("SLURM_JOB_ID").is_none() {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let node = crate::cluster_dir::node_name();
    let resolve = |name: &str| -> Vec<IpAddr> {
        (name, 0)
            .to_socket_addrs()
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default()
    };
    // Steps carry the launch node's address; a batch step only the submitting host's name.
    let launch_node = std::env::var("SLURM_LAUNCH_NODE_IPADDR")
        .ok()
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .or_else(|| {
            let host = std::env::var("SLURM_SUBMIT_HOST").ok()?;
            let mut ips = resolve(host.trim());
            ips.sort_by_key(|ip| !ip.is_ipv4());
            ips.first().copied()
        });
    let mut named = resolve(&node);
    let host = crate::cluster_dir::hostname();
    if host != node {
        named.extend(resolve(&host));
    }
    let tried = Tried {
        route: launch_node.and_then(route_toward),
        named,
        node,
        launch_node,
    };
    choose(&tried)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn tried(launch: Option<&str>, route: Option<&str>, named: &[&str]) -> Tried {
        Tried {
            node: "n2".into(),
            launch_node: launch.map(ip),
            route: route.map(ip),
            named: named.iter().map(|s| ip(s)).collect(),
        }
    }

    #[test]
    fn the_route_toward_the_login_side_wins() {
        let t = tried(Some("10.77.0.1"), Some("10.77.0.12"), &["127.0.1.1"]);
        assert_eq!(choose(&t).ok(), Some(ip("10.77.0.12")));
    }

    #[test]
    fn a_name_on_loopback_is_never_taken_across_hosts() {
        // No route (e.g. SLURM_LAUNCH_NODE_IPADDR missing): the name's non-loopback address.
        let t = tried(Some("10.77.0.1"), None, &["127.0.1.1", "10.77.0.12"]);
        assert_eq!(choose(&t).ok(), Some(ip("10.77.0.12")));
        // Only loopback anywhere while the job spans hosts: one line naming what was tried.
        let t = tried(Some("10.77.0.1"), Some("127.0.0.1"), &["127.0.1.1"]);
        let e = choose(&t).expect_err("nothing usable").to_string();
        assert!(
            e.starts_with("node n2: no address other nodes can reach"),
            "{e}"
        );
        assert!(
            e.contains("10.77.0.1 → 127.0.0.1") && e.contains("127.0.1.1"),
            "{e}"
        );
        assert!(e.contains("--bind"), "{e}");
    }

    #[test]
    fn one_host_may_use_loopback() {
        let t = tried(Some("127.0.0.1"), Some("127.0.0.1"), &["127.0.1.1"]);
        assert_eq!(choose(&t).ok(), Some(ip("127.0.0.1")));
    }

    #[test]
    fn the_route_is_asked_of_the_kernel() {
        assert_eq!(route_toward(ip("127.0.0.1")), Some(ip("127.0.0.1")));
    }
}
