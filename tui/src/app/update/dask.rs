//! The Dask panel: Dask's view of the attached Dask cluster, read by an effect
//! (`effects/dask`), kept here for `ui/dask` to draw. No keys of its own.

use super::super::msg::Cmd;
use super::super::state::App;
use super::super::view::DaskView;

impl App {
    pub(super) fn on_dask(
        &mut self,
        name: &str,
        result: Result<Box<DaskView>, String>,
    ) -> Vec<Cmd> {
        if let Some(a) = self.attached.as_mut().filter(|a| a.name == name) {
            a.dask = Some(result);
        }
        Vec::new()
    }
}
