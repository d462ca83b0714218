//! Unix signals → a role's control channel. SLURM sends SIGTERM (then SIGKILL) at the end of a
//! job and SIGUSR1 ahead of the walltime (`--signal=B:USR1@300`); a terminal sends SIGINT.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// What arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Term,
    Int,
    Usr1,
}

/// Forwards signals to `tx` until the receiver is gone. Run it as a task owned by the role.
pub async fn forward(tx: mpsc::Sender<Sig>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    loop {
        let s = tokio::select! {
            _ = term.recv() => Sig::Term,
            _ = int.recv() => Sig::Int,
            _ = usr1.recv() => Sig::Usr1,
        };
        if tx.send(s).await.is_err() {
            return Ok(());
        }
    }
}
