//! `--adapt MIN..MAX` on `corral up` and `corral scale NAME --adapt MIN..MAX|off`: the range
//! checked (clear words for a bad one), MAX checked against what the partition holds
//! (validation's figure), recorded in the cluster's spec, where the login-side supervisor
//! (`corral_core::supervisor`) reads it every tick.

use anyhow::bail;
use corral_core::adapt::{Range, Setting};
use corral_core::backend::{AgentExe, Cluster};
use corral_core::cluster_record::Backend;
use corral_core::model::ClusterSpec;
use corral_core::slurm::Slurm;
use corral_core::slurm::validate::Capacity;

/// What `--adapt` may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptArg {
    Off,
    On(Range),
}

/// clap's parser for `--adapt`.
pub fn parse(s: &str) -> Result<AdaptArg, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(AdaptArg::Off);
    }
    s.parse::<Range>().map(AdaptArg::On).map_err(|e| {
        // clap prefixes "invalid value '…' for '--adapt <MIN..MAX>'": say only why.
        e.why.clone() + "; write MIN..MAX with 1 ≤ MIN ≤ MAX, e.g. --adapt 1..8 (or off)"
    })
}

/// `corral up --adapt`: the first worker count is MIN unless `--workers` says otherwise
/// (inside the range).
pub fn start_workers(range: Range, workers_flag: Option<u32>) -> anyhow::Result<u32> {
    match workers_flag {
        None => Ok(range.min),
        Some(w) if w >= range.min && w <= range.max => Ok(w),
        Some(w) => bail!(
            "--workers {w} is outside --adapt {range}: start within the range (or leave --workers out to start with {})",
            range.min
        ),
    }
}

/// The setting for `spec` on its partition: MAX may not exceed what the partition holds of
/// workers this size.
pub async fn setting(
    slurm: &dyn Slurm,
    spec: &ClusterSpec,
    range: Range,
) -> anyhow::Result<Setting> {
    let partitions = slurm.partitions().await?;
    let nodes = slurm.nodes().await?;
    let partition = match &spec.partition {
        Some(name) => partitions.iter().find(|p| &p.name == name),
        None => partitions.iter().find(|p| p.is_default),
    };
    let limit = partition.map(|p| {
        (
            p.name.clone(),
            Capacity::of(p, &nodes).max_workers(u64::from(spec.cores_per_worker)),
        )
    });
    Ok(Setting::new(range, limit, spec.cores_per_worker)?)
}

/// `corral scale NAME --adapt …`: records the new setting in the running cluster's spec and
/// makes sure its supervisor runs. Returns what was done, in words.
pub async fn set(
    slurm: &dyn Slurm,
    cluster: &mut Cluster,
    arg: AdaptArg,
) -> anyhow::Result<String> {
    let name = cluster.record.name.clone();
    let Backend::Slurm { agent, spec } = &mut cluster.record.backend else {
        bail!(
            "cluster {name} runs on this machine: adaptive scaling needs a SLURM cluster (its supervisor submits and cancels jobs); use `corral scale {name} --workers W`"
        );
    };
    let said = match arg {
        AdaptArg::Off => {
            if spec.supervise.adapt.take().is_none() {
                return Ok(format!("cluster {name} was not adapting; nothing changed"));
            }
            format!("adaptive scaling is off; cluster {name} keeps the workers it has")
        }
        AdaptArg::On(range) => {
            let s = setting(slurm, spec, range).await?;
            spec.supervise.adapt = Some(s);
            format!(
                "cluster {name} adapts within {range} workers (grows after work waits {} s, shrinks after {} s idle); decisions in `corral status {name}` and the TUI",
                s.tuning.up_after.as_secs(),
                s.tuning.idle_after.as_secs()
            )
        }
    };
    let agent = match agent.split_first() {
        Some((program, prefix)) => AgentExe {
            program: program.into(),
            prefix: prefix.to_vec(),
        },
        None => AgentExe::find()?,
    };
    cluster.record.save(&cluster.dir)?;
    let needs = match &cluster.record.backend {
        Backend::Slurm { spec, .. } => spec.supervise.needs_supervisor(),
        _ => false,
    };
    if needs {
        corral_core::supervisor::ensure_running(cluster, &agent)?;
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_ranges_and_bad_ranges() {
        assert_eq!(parse("off"), Ok(AdaptArg::Off));
        assert_eq!(parse("2..6"), Ok(AdaptArg::On(Range { min: 2, max: 6 })));
        assert_eq!(
            parse("6..2").expect_err("bad"),
            "MIN is larger than MAX; write MIN..MAX with 1 ≤ MIN ≤ MAX, e.g. --adapt 1..8 (or off)"
        );
    }

    #[test]
    fn start_at_min_or_inside_the_range() {
        let r = Range { min: 2, max: 6 };
        assert_eq!(start_workers(r, None).expect("min"), 2);
        assert_eq!(start_workers(r, Some(4)).expect("inside"), 4);
        let e = start_workers(r, Some(8)).expect_err("outside").to_string();
        assert!(e.contains("--workers 8 is outside --adapt 2..6"), "{e}");
    }
}
