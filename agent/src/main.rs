//! `corral-agent`: what runs inside an allocation — the coordinator (once per cluster) and the
//! workers (one per SLURM task). Built by the cluster work; for now it only reports its version.

fn main() {
    println!("corral-agent {}", env!("CARGO_PKG_VERSION"));
}
