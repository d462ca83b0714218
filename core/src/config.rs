//! Layered configuration: built-in defaults < `/etc/corral/config.toml` (site) <
//! `~/.config/corral/config.toml` (user) < `CORRAL_<SECTION>_<KEY>` environment < flags.
//!
//! Every layer is checked on its own before the layers are merged, so an unknown or mistyped key
//! is reported with the file (or variable) it came from, not as a puzzle about the merged result.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::paths;

/// Everything a user or site may configure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub defaults: Defaults,
    pub slurm: SlurmConfig,
    pub ui: UiConfig,
    pub notify: NotifyConfig,
    pub dask: DaskConfig,
}

/// Dask mode (`--dask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DaskConfig {
    /// The Python that runs Dask on every node (it needs dask and distributed; bokeh for the
    /// dashboard). Empty: `python3` on `PATH`. `--python` overrides it.
    pub python: String,
}

/// What the new-cluster wizard and `corral up` start from (grabdask's prompts: 8 workers, 1 day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Defaults {
    pub workers: u32,
    pub cores: u32,
    pub days: u32,
    /// Empty: SLURM's default partition.
    pub partition: String,
    pub account: String,
    /// Memory per worker, SLURM syntax (`4G`); empty: the partition's default.
    pub mem: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            workers: 8,
            cores: 2,
            days: 1,
            partition: String::new(),
            account: String::new(),
            mem: String::new(),
        }
    }
}

/// How to reach SLURM on this site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmConfig {
    /// Directory holding `sbatch`, `squeue`, …; empty: found on `PATH`.
    pub bin_dir: String,
    /// Flags added to every SLURM command, e.g. `["-M", "cluster2"]`.
    pub extra_args: Vec<String>,
    pub qos: String,
    /// Seconds before a SLURM command (or a slurmrestd request) is considered hung.
    pub command_timeout_secs: u64,
    /// How corral talks to SLURM: `auto` (the tools when `sbatch` is found, else slurmrestd
    /// when `rest_url` is set), `cli` or `rest`.
    pub api: SlurmApi,
    /// slurmrestd: `unix:///path/slurmrestd.sock` or `http(s)://host:port`.
    pub rest_url: String,
    /// Prints a JWT for slurmrestd over HTTP(S) (`scontrol token lifespan=3600`); run again
    /// before the token expires. Empty: `SLURM_JWT`.
    pub token_command: String,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            bin_dir: String::new(),
            extra_args: Vec::new(),
            qos: String::new(),
            command_timeout_secs: 30,
            api: SlurmApi::Auto,
            rest_url: String::new(),
            token_command: String::new(),
        }
    }
}

/// `[slurm] api`: which SLURM client corral uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SlurmApi {
    /// The command-line tools when `sbatch` is found, else slurmrestd when `rest_url` is set.
    #[default]
    Auto,
    /// `sbatch`, `squeue`, `scontrol`, `scancel`.
    Cli,
    /// slurmrestd at `rest_url`.
    Rest,
}

/// Terminal UI preferences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// `auto`, `always` or `never` (`NO_COLOR` also turns colour off).
    pub color: String,
    pub mouse: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            color: "auto".into(),
            mouse: true,
        }
    }
}

/// `[notify]`: how corral tells a user who is not looking (see `corral_core::notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Mail notifications to this address; empty: no mail.
    pub mail: String,
    /// The program that sends it, split on whitespace, `{to}` and `{subject}` replaced;
    /// empty: `sendmail -t -oi` when installed, else `mail -s {subject} {to}`.
    pub mail_command: String,
    /// Warn this many minutes before a cluster's walltime ends.
    pub walltime_minutes: u32,
    /// A bell and a desktop notification (OSC 9 / OSC 777) in the TUI.
    pub terminal: bool,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            mail: String::new(),
            mail_command: String::new(),
            walltime_minutes: 10,
            terminal: true,
        }
    }
}

/// A configuration layer that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// The sections an environment variable may address, as `CORRAL_<SECTION>_<KEY>`.
const ENV_SECTIONS: [&str; 5] = ["defaults", "slurm", "ui", "notify", "dask"];

impl Config {
    /// Loads site, user and environment layers (missing files are fine, broken ones are not).
    pub fn load() -> Result<Config, ConfigError> {
        let files = [paths::site_config_file(), paths::user_config_file()];
        Self::load_from(&files, std::env::vars())
    }

    /// Loads the given files in order (later wins), then the `CORRAL_*` variables among `env`.
    pub fn load_from(
        files: &[PathBuf],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut merged = toml::Table::new();
        for path in files {
            if let Some(layer) = read_layer(path)? {
                merge(&mut merged, layer);
            }
        }
        let env_layer = env_layer(env)?;
        merge(&mut merged, env_layer);
        // Each layer was already checked alone, so this only fails on a conflict of types
        // between layers, which still names nothing better than "the merged config".
        Config::deserialize(merged).map_err(|e| ConfigError::Invalid {
            path: PathBuf::from("(merged configuration)"),
            message: e.message().to_string(),
        })
    }
}

fn read_layer(path: &Path) -> Result<Option<toml::Table>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    // Checked from the text, so an error names the key and the line it is on.
    toml::from_str::<Config>(&text).map_err(|e| invalid(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(table))
}

fn env_layer(env: impl IntoIterator<Item = (String, String)>) -> Result<toml::Table, ConfigError> {
    let mut layer = toml::Table::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("CORRAL_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        // Only `CORRAL_<SECTION>_…` is configuration; other CORRAL_* variables (such as
        // CORRAL_CLUSTER, set for batch scripts) belong to someone else.
        let Some(section) = ENV_SECTIONS
            .iter()
            .find(|s| rest.starts_with(&format!("{s}_")))
        else {
            continue;
        };
        let key = &rest[section.len() + 1..];
        // Parse the value as TOML so numbers, booleans and arrays keep their type; anything
        // that is not valid TOML is taken as a plain string.
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let mut section_table = toml::Table::new();
        section_table.insert(key.to_string(), parsed);
        let mut one = toml::Table::new();
        one.insert((*section).to_string(), toml::Value::Table(section_table));
        Config::deserialize(one.clone()).map_err(|e| ConfigError::Env {
            var: var.clone(),
            message: e.message().to_string(),
        })?;
        merge(&mut layer, one);
    }
    Ok(layer)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write test config");
        p
    }

    #[test]
    fn defaults_are_grabdasks() {
        let c = Config::load_from(&[], Vec::new()).expect("defaults load");
        assert_eq!(
            (c.defaults.workers, c.defaults.cores, c.defaults.days),
            (8, 2, 1)
        );
    }

    #[test]
    fn user_file_overrides_site_and_env_overrides_both() {
        let d = tempfile::tempdir().expect("tempdir");
        let site = write(
            d.path(),
            "site.toml",
            "[defaults]\nworkers = 4\ncores = 4\n",
        );
        let user = write(d.path(), "user.toml", "[defaults]\nworkers = 16\n");
        let env = vec![
            (
                "CORRAL_SLURM_EXTRA_ARGS".to_string(),
                r#"["-M", "c2"]"#.to_string(),
            ),
            ("CORRAL_DEFAULTS_DAYS".to_string(), "3".to_string()),
            ("CORRAL_CLUSTER".to_string(), "not config".to_string()),
        ];
        let c = Config::load_from(&[site, user], env).expect("load");
        assert_eq!(c.defaults.workers, 16);
        assert_eq!(c.defaults.cores, 4);
        assert_eq!(c.defaults.days, 3);
        assert_eq!(c.slurm.extra_args, vec!["-M", "c2"]);
    }

    #[test]
    fn unknown_key_is_named_with_its_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let user = write(d.path(), "user.toml", "[defaults]\nwrokers = 4\n");
        let err = Config::load_from(std::slice::from_ref(&user), Vec::new())
            .expect_err("typo must be rejected")
            .to_string();
        assert!(err.contains("wrokers"), "{err}");
        assert!(err.contains(&user.display().to_string()), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let d = tempfile::tempdir().expect("tempdir");
        let user = write(d.path(), "user.toml", "[defaults]\nworkers = \"x\"\n");
        let err = Config::load_from(&[user], Vec::new())
            .expect_err("wrong type")
            .to_string();
        assert!(err.contains("workers") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn slurmrestd_through_the_usual_layers() {
        let d = tempfile::tempdir().expect("tempdir");
        let user = write(
            d.path(),
            "user.toml",
            "[slurm]\napi = \"rest\"\nrest_url = \"https://rest:6820\"\ntoken_command = \"scontrol token lifespan=3600\"\n",
        );
        let env = vec![(
            "CORRAL_SLURM_REST_URL".to_string(),
            "unix:///run/slurmrestd.sock".to_string(),
        )];
        let c = Config::load_from(&[user], env).expect("load");
        assert_eq!(c.slurm.api, SlurmApi::Rest);
        assert_eq!(c.slurm.rest_url, "unix:///run/slurmrestd.sock");
        assert_eq!(c.slurm.token_command, "scontrol token lifespan=3600");
        assert_eq!(Config::default().slurm.api, SlurmApi::Auto);
        let env = vec![("CORRAL_SLURM_API".to_string(), "soap".to_string())];
        let err = Config::load_from(&[], env)
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("CORRAL_SLURM_API") && err.contains("soap") && err.contains("rest"),
            "{err}"
        );
    }

    #[test]
    fn unknown_env_key_is_named() {
        let env = vec![("CORRAL_UI_COLOUR".to_string(), "never".to_string())];
        let err = Config::load_from(&[], env)
            .expect_err("rejected")
            .to_string();
        assert!(
            err.contains("CORRAL_UI_COLOUR") && err.contains("colour"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_fine_but_a_broken_one_is_not() {
        let d = tempfile::tempdir().expect("tempdir");
        let missing = d.path().join("nope.toml");
        assert!(Config::load_from(&[missing], Vec::new()).is_ok());
        let broken = write(d.path(), "broken.toml", "[defaults\n");
        let err = Config::load_from(&[broken], Vec::new()).expect_err("broken");
        assert!(err.to_string().contains("broken.toml"));
    }
}
