//! Which program runs the agent roles (`coordinator`, `worker`): `corral-agent`, or `corral`
//! itself, which hosts the same roles behind its hidden `corral agent` subcommand.

use std::path::{Path, PathBuf};

use super::BackendError;

/// How to start an agent role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentExe {
    pub program: PathBuf,
    /// Arguments before the role (`agent` when `corral` hosts the roles itself).
    pub prefix: Vec<String>,
}

const AGENT: &str = "corral-agent";

impl AgentExe {
    /// The `corral-agent` binary: next to this executable, else on `PATH`. When neither exists
    /// (`cargo run -- demo` builds only `corral`), this executable itself.
    pub fn find() -> Result<AgentExe, BackendError> {
        let me = std::env::current_exe().map_err(|e| {
            BackendError::Failed(format!("cannot locate the corral executable: {e}"))
        })?;
        let name = format!("{AGENT}{}", std::env::consts::EXE_SUFFIX);
        let beside = me.parent().map(|d| d.join(&name));
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(&name));
        if let Some(found) = beside.into_iter().chain(on_path).find(|p| p.is_file()) {
            return Ok(AgentExe {
                program: found,
                prefix: Vec::new(),
            });
        }
        Ok(AgentExe {
            program: me,
            prefix: vec!["agent".into()],
        })
    }

    /// The agent a recorded cluster runs: the recorded program (`corral` itself hosts the
    /// roles behind `corral agent`).
    pub fn recorded(program: &Path) -> AgentExe {
        let agent_name = format!("{AGENT}{}", std::env::consts::EXE_SUFFIX);
        let prefix = if program
            .file_name()
            .is_some_and(|n| n == agent_name.as_str())
        {
            Vec::new()
        } else {
            vec!["agent".into()]
        };
        AgentExe {
            program: program.to_path_buf(),
            prefix,
        }
    }

    /// The agent command as a job script runs it (program and the words before the role).
    pub fn words(&self) -> Vec<String> {
        std::iter::once(self.program.display().to_string())
            .chain(self.prefix.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_agent_runs_the_roles_it_hosts() {
        let a = AgentExe::recorded(Path::new("/opt/bin/corral-agent"));
        assert!(a.prefix.is_empty());
        assert_eq!(a.words(), vec!["/opt/bin/corral-agent".to_string()]);
        // `corral` itself hosts the roles behind `corral agent`.
        let c = AgentExe::recorded(Path::new("/opt/bin/corral"));
        assert_eq!(c.prefix, vec!["agent".to_string()]);
        assert_eq!(c.program, PathBuf::from("/opt/bin/corral"));
        assert_eq!(
            c.words(),
            vec!["/opt/bin/corral".to_string(), "agent".into()]
        );
    }
}
