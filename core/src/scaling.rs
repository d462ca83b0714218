//! Scaling analysis: runtimes of one query at 1, 2, 4, … cores turned into speedup, efficiency
//! and a plain recommendation of the knee ("beyond 8 cores each doubling saves < 15 %").
//!
//! grabdask's training told users "it is not worth throwing more than 64 cores at it"; this
//! module computes that sentence from measurements, so the TUI's scaling screen and
//! `corral plot` say the same thing. Everything here is pure arithmetic on the points given.

use serde::{Deserialize, Serialize};

/// A doubling that saves less than this fraction of the runtime is not worth its cores.
pub const DEFAULT_THRESHOLD: f64 = 0.15;

/// One measured run: the query took `seconds` on `cores` cores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub cores: u32,
    pub seconds: f64,
}

/// A point with what it means relative to the smallest run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Analyzed {
    pub cores: u32,
    pub seconds: f64,
    /// Runtime of the smallest run divided by this runtime.
    pub speedup: f64,
    /// The speedup perfect scaling would give here (cores / smallest cores).
    pub ideal_speedup: f64,
    /// `speedup / ideal_speedup`, 1.0 being perfect.
    pub efficiency: f64,
    /// Fraction of the runtime saved per doubling of cores since the previous point, normalised
    /// to one doubling (so 1 → 4 cores counts as two doublings). `None` for the first point.
    pub saving_per_doubling: Option<f64>,
}

/// The analysis of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// One per distinct core count, ascending.
    pub points: Vec<Analyzed>,
    /// The core count beyond which every doubling saved less than the threshold; `None` when
    /// there are too few points, or when scaling never flattened.
    pub knee: Option<u32>,
    pub threshold: f64,
    /// One sentence for the user.
    pub recommendation: String,
}

/// Core counts of a sweep: 1, 2, 4, … up to `max`, with `max` itself last when it is not a
/// power of two. Empty when `max` is 0.
pub fn sweep_cores(max: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut c = 1u32;
    while c <= max {
        out.push(c);
        match c.checked_mul(2) {
            Some(next) => c = next,
            None => break,
        }
    }
    if max > 0 && out.last() != Some(&max) {
        out.push(max);
    }
    out
}

/// Analyses `points` (any order; repeated core counts keep their fastest run, since noise on a
/// shared machine only ever slows a run down; non-positive or non-finite times are ignored).
pub fn analyze(points: &[Point], threshold: f64) -> Analysis {
    let mut best: Vec<Point> = Vec::new();
    for p in points
        .iter()
        .filter(|p| p.cores > 0 && p.seconds.is_finite() && p.seconds > 0.0)
    {
        match best.iter_mut().find(|b| b.cores == p.cores) {
            Some(b) => b.seconds = b.seconds.min(p.seconds),
            None => best.push(*p),
        }
    }
    best.sort_by_key(|p| p.cores);

    let Some(first) = best.first().copied() else {
        return Analysis {
            points: Vec::new(),
            knee: None,
            threshold,
            recommendation: "no runs yet: press s to run a sweep".into(),
        };
    };
    let mut analyzed: Vec<Analyzed> = Vec::with_capacity(best.len());
    for (i, p) in best.iter().enumerate() {
        let speedup = first.seconds / p.seconds;
        let ideal_speedup = f64::from(p.cores) / f64::from(first.cores);
        let saving_per_doubling = (i > 0).then(|| {
            let prev = best[i - 1];
            let doublings = (f64::from(p.cores) / f64::from(prev.cores)).log2();
            // (t/t_prev)^(1/doublings) is the runtime ratio of one doubling.
            1.0 - (p.seconds / prev.seconds).powf(1.0 / doublings)
        });
        analyzed.push(Analyzed {
            cores: p.cores,
            seconds: p.seconds,
            speedup,
            ideal_speedup,
            efficiency: speedup / ideal_speedup,
            saving_per_doubling,
        });
    }

    // The knee: the smallest core count after which no step saved at least the threshold.
    let knee = if analyzed.len() < 2 {
        None
    } else {
        let mut knee_idx = analyzed.len() - 1;
        for i in (1..analyzed.len()).rev() {
            match analyzed[i].saving_per_doubling {
                Some(s) if s < threshold => knee_idx = i - 1,
                _ => break,
            }
        }
        (knee_idx < analyzed.len() - 1).then(|| analyzed[knee_idx].cores)
    };

    let pct = (threshold * 100.0).round();
    let last = analyzed[analyzed.len() - 1];
    let recommendation = match (analyzed.len(), knee) {
        (1, _) => format!(
            "one run so far ({}, {:.1} s): run a sweep to see how it scales",
            crate::text::count(first.cores, "core"),
            first.seconds
        ),
        (_, Some(k)) if k == first.cores => format!(
            "more cores barely help: beyond {k} core{} each doubling saves < {pct} %",
            if k == 1 { "" } else { "s" }
        ),
        (_, Some(k)) => format!(
            "beyond {} each doubling saves < {pct} %: use {k} cores",
            crate::text::count(k, "core")
        ),
        (_, None) => format!(
            "still scaling at {} ({:.0} % efficient): more cores would still help",
            crate::text::count(last.cores, "core"),
            last.efficiency * 100.0
        ),
    };
    Analysis {
        points: analyzed,
        knee,
        threshold,
        recommendation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(u32, f64)]) -> Vec<Point> {
        v.iter()
            .map(|&(cores, seconds)| Point { cores, seconds })
            .collect()
    }

    #[test]
    fn sweep_is_powers_of_two_then_the_max() {
        assert_eq!(sweep_cores(0), Vec::<u32>::new());
        assert_eq!(sweep_cores(1), vec![1]);
        assert_eq!(sweep_cores(8), vec![1, 2, 4, 8]);
        assert_eq!(sweep_cores(12), vec![1, 2, 4, 8, 12]);
    }

    #[test]
    fn knee_where_doubling_stops_paying() {
        // Perfect to 8 cores, then 10 % per doubling.
        let a = analyze(
            &pts(&[
                (1, 80.0),
                (2, 40.0),
                (4, 20.0),
                (8, 10.0),
                (16, 9.0),
                (32, 8.1),
            ]),
            DEFAULT_THRESHOLD,
        );
        assert_eq!(a.knee, Some(8));
        assert_eq!(
            a.recommendation,
            "beyond 8 cores each doubling saves < 15 %: use 8 cores"
        );
        let p8 = a.points[3];
        assert!((p8.speedup - 8.0).abs() < 1e-9 && (p8.efficiency - 1.0).abs() < 1e-9);
        let p16 = a.points[4];
        assert!((p16.saving_per_doubling.unwrap_or(0.0) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_dip_before_the_end_is_not_the_knee() {
        // 4 → 8 saved little, but 8 → 16 saved a lot again: still scaling.
        let a = analyze(
            &pts(&[(1, 80.0), (2, 40.0), (4, 20.0), (8, 19.0), (16, 9.0)]),
            DEFAULT_THRESHOLD,
        );
        assert_eq!(a.knee, None);
        assert!(a.recommendation.starts_with("still scaling at 16 cores"));
    }

    #[test]
    fn uneven_steps_count_as_fractional_doublings() {
        // 1 → 4 cores at 2× faster is √2 per doubling: saving ≈ 29 %.
        let a = analyze(&pts(&[(1, 8.0), (4, 4.0)]), DEFAULT_THRESHOLD);
        let s = a.points[1].saving_per_doubling.unwrap_or(0.0);
        assert!((s - (1.0 - 0.5f64.sqrt())).abs() < 1e-9);
    }

    #[test]
    fn flat_from_the_start_and_degenerate_inputs() {
        let a = analyze(&pts(&[(1, 10.0), (2, 9.8), (4, 9.9)]), DEFAULT_THRESHOLD);
        assert_eq!(a.knee, Some(1));
        assert!(a.recommendation.starts_with("more cores barely help"));
        let a = analyze(
            &pts(&[(2, 0.0), (0, 3.0), (4, f64::NAN)]),
            DEFAULT_THRESHOLD,
        );
        assert!(a.points.is_empty() && a.knee.is_none());
        // Repeats keep the fastest run.
        let a = analyze(&pts(&[(2, 5.0), (2, 4.0), (1, 8.0)]), DEFAULT_THRESHOLD);
        assert_eq!(a.points.len(), 2);
        assert_eq!(a.points[1].seconds, 4.0);
        let a = analyze(&pts(&[(4, 3.0)]), DEFAULT_THRESHOLD);
        assert!(a.recommendation.starts_with("one run so far"));
    }
}
