//! Which Python runs Dask, and whether it can: `--python PATH`, else the config's
//! `[dask] python`, else `python3` on `PATH`; resolved to an absolute path when the cluster is
//! made, so every node runs the same interpreter. The check imports dask and distributed and
//! says in one line what to install, and which interpreter it tried, when they are missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long importing dask and distributed may take (a cold network file system is slow).
const CHECK_WITHIN: Duration = Duration::from_secs(120);

/// What is installed in a Python that can run Dask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub dask: String,
    pub distributed: String,
    /// The dashboard needs it; Dask runs without it.
    pub bokeh: Option<String>,
}

/// The interpreter to use: `asked` (flag or config; empty = none), else `python3` on `PATH`;
/// a bare name is looked up on `PATH`, a path must be an executable file.
pub fn choose(asked: Option<&str>) -> Result<PathBuf, String> {
    let name = asked.map(str::trim).filter(|s| !s.is_empty());
    let wanted = name.unwrap_or("python3");
    let how = if name.is_some() {
        "--python or [dask] python"
    } else {
        "the default, python3 on PATH"
    };
    if wanted.contains('/') {
        let p = PathBuf::from(wanted);
        let p = if p.is_absolute() {
            p
        } else {
            std::env::current_dir()
                .map(|d| d.join(&p))
                .unwrap_or(p.clone())
        };
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!(
                "the Python for Dask, {} ({how}), is not an executable file; choose one with \
                 --python PATH (config: [dask] python)",
                p.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(wanted))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            format!(
                "no {wanted} on PATH ({how}) to run Dask; choose the Python that has dask and \
                 distributed with --python PATH (config: [dask] python)"
            )
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The one line that says what is missing and what to do.
pub fn missing_line(python: &Path, detail: &str) -> String {
    format!(
        "Dask mode needs the Python packages dask and distributed, and {} cannot import them \
         ({detail}); install them with `{} -m pip install 'dask[dataframe]' distributed bokeh`, \
         or choose another interpreter with --python PATH (config: [dask] python)",
        python.display(),
        python.display()
    )
}

/// Imports dask, distributed (and bokeh, optional) with `python`.
pub async fn check(python: &Path) -> Result<Versions, String> {
    const PROBE: &str = "import sys\n\
        try:\n    import dask, distributed\n\
        except ImportError as e:\n    print('missing', e); sys.exit(3)\n\
        try:\n    import bokeh; b = bokeh.__version__\n\
        except ImportError:\n    b = '-'\n\
        print('ok', dask.__version__, distributed.__version__, b)\n";
    let run = tokio::process::Command::new(python)
        .args(["-c", PROBE])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(CHECK_WITHIN, run).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(missing_line(python, &format!("it does not run: {e}"))),
        Err(_) => {
            return Err(missing_line(
                python,
                &format!("importing them took over {CHECK_WITHIN:?}"),
            ));
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("").trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["ok", dask, distributed, bokeh] => Ok(Versions {
            dask: (*dask).to_string(),
            distributed: (*distributed).to_string(),
            bokeh: (*bokeh != "-").then(|| (*bokeh).to_string()),
        }),
        ["missing", ..] => Err(missing_line(
            python,
            crate::text::terminal_safe(line.trim_start_matches("missing ")).as_ref(),
        )),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("no output").trim().to_string();
            Err(missing_line(
                python,
                &format!(
                    "{}: {}",
                    out.status,
                    crate::text::terminal_safe(&last).as_ref()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_is_not_an_interpreter_is_named() {
        let e = choose(Some("/nonexistent/python9")).expect_err("refused");
        assert!(
            e.contains("/nonexistent/python9") && e.contains("--python"),
            "{e}"
        );
        let e = choose(Some("no-such-python-here")).expect_err("refused");
        assert!(e.contains("no no-such-python-here on PATH"), "{e}");
    }

    #[tokio::test]
    async fn a_python_without_dask_says_what_to_install_and_which_it_tried() {
        // /bin/sh is no Python at all: the line must still name it and what to install.
        let e = check(Path::new("/bin/sh")).await.expect_err("no dask");
        assert!(
            e.contains("/bin/sh -m pip install 'dask[dataframe]' distributed")
                && e.contains("--python PATH"),
            "{e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
    }
}
