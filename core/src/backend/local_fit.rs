//! Whether a local cluster fits this machine: workers × cores against the cores this process
//! may use. More is allowed (the workers then share the cores: slower per worker, no faster in
//! all), but it is said, with the largest request that fits.

/// The cores this process may run on (its CPU affinity and cgroup quota, as the standard
/// library sees them); 1 when that cannot be known.
pub fn machine_cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

/// How `workers × cores` compares with a machine of `machine` cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalFit {
    /// It fits: `used` of the machine's cores.
    Fits { used: u64, machine: u32 },
    /// It asks for more cores than there are; `fits` is the largest request with the same
    /// cores per worker (at most one worker of the machine's cores) that does.
    Oversubscribed {
        asked: u64,
        machine: u32,
        fits: (u32, u32),
    },
}

pub fn local_fit(workers: u32, cores: u32, machine: u32) -> LocalFit {
    let asked = u64::from(workers) * u64::from(cores);
    let machine = machine.max(1);
    if asked <= u64::from(machine) {
        return LocalFit::Fits {
            used: asked,
            machine,
        };
    }
    let per = cores.clamp(1, machine);
    LocalFit::Oversubscribed {
        asked,
        machine,
        fits: (machine / per, per),
    }
}

impl LocalFit {
    pub fn fits(&self) -> bool {
        matches!(self, LocalFit::Fits { .. })
    }

    /// In words, one line.
    pub fn words(&self) -> String {
        use crate::text::count;
        match self {
            LocalFit::Fits { used, machine } => format!(
                "fits: {used} of this machine's {}; starts at once",
                count(*machine, "core")
            ),
            LocalFit::Oversubscribed {
                asked,
                machine,
                fits: (w, c),
            } => format!(
                "asks for {} but this machine has {machine}: the workers would share them \
                 (no faster); {} × {} fits",
                count(*asked, "core"),
                count(*w, "worker"),
                count(*c, "core")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_cores_do_not_fit_two_and_the_words_say_what_does() {
        let f = local_fit(8, 2, 2);
        assert!(!f.fits());
        assert_eq!(
            f.words(),
            "asks for 16 cores but this machine has 2: the workers would share them (no faster); \
             1 worker × 2 cores fits"
        );
        assert_eq!(
            local_fit(4, 1, 2).words(),
            "asks for 4 cores but this machine has 2: the workers would share them (no faster); \
             2 workers × 1 core fits"
        );
        assert_eq!(
            local_fit(1, 8, 2).words(),
            "asks for 8 cores but this machine has 2: the workers would share them (no faster); \
             1 worker × 2 cores fits"
        );
        assert_eq!(
            local_fit(2, 1, 2).words(),
            "fits: 2 of this machine's 2 cores; starts at once"
        );
    }
}
