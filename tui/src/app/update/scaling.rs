//! The scaling screen: the sweep of the last query over 1, 2, 4, … cores, and its history.

use corral_core::scaling;

use super::super::msg::Cmd;
use super::super::state::App;

impl App {
    pub(super) fn on_sweep_point(&mut self, name: &str, step: crate::sweep::Step) -> Vec<Cmd> {
        if let Some(a) = self.attached_mut(name) {
            a.sweep.points.push(step.point);
            // Runs come in ascending core counts: the latest shortfall is the largest.
            if let Some(why) = crate::sweep::shortfall(&[step]) {
                a.sweep.shortfall = Some(why);
            }
        }
        Vec::new()
    }

    /// Runs the last query on 1, 2, 4, … cores up to what the cluster has now.
    pub(super) fn start_sweep(&mut self) -> Vec<Cmd> {
        let Some(a) = self.attached.as_mut() else {
            return Vec::new();
        };
        let Some(query) = a.last_query.clone() else {
            return Vec::new();
        };
        if a.sweep.running {
            return Vec::new();
        }
        let cores = a.snapshot.as_ref().map_or(0, |s| s.live_cores());
        let cores = u32::try_from(cores).unwrap_or(u32::MAX);
        let planned = scaling::sweep_cores(cores);
        if planned.is_empty() {
            a.sweep.error = Some("no live workers to sweep over".into());
            return vec![Cmd::LoadHistory {
                name: a.name.clone(),
                query,
            }];
        }
        a.sweep.query = Some(query.clone());
        a.sweep.planned = planned.clone();
        a.sweep.points.clear();
        a.sweep.shortfall = None;
        a.sweep.running = true;
        a.sweep.error = None;
        vec![
            Cmd::LoadHistory {
                name: a.name.clone(),
                query: query.clone(),
            },
            Cmd::Sweep {
                name: a.name.clone(),
                query,
                cores: planned,
            },
        ]
    }
}
