//! Mail through the site's own tools, as grabdask mailed its errors: `[notify] mail` is the
//! address; `[notify] mail_command` the program (default: `sendmail -t -oi` when found, else
//! `mail -s {subject} {to}`). The command line is split on whitespace, then `{to}` and
//! `{subject}` are replaced in each word (a subject with spaces stays one argument). A
//! command that names `{subject}` gets the body on stdin; one that does not gets a whole
//! message (`To:`, `Subject:`, a blank line, the body), as `sendmail -t` reads it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::Notice;
use crate::config::NotifyConfig;

/// A mail command that has not finished by then is killed and reported.
const MAIL_TIMEOUT: Duration = Duration::from_secs(30);

/// How to mail notices, when mail is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailer {
    pub to: String,
    pub command: Vec<String>,
}

impl Mailer {
    /// `None` when `[notify] mail` is empty; an error (a sentence) when mail is asked for but
    /// no command can send it.
    pub fn from_config(cfg: &NotifyConfig) -> Result<Option<Mailer>, String> {
        let to = cfg.mail.trim();
        if to.is_empty() {
            return Ok(None);
        }
        if to.starts_with('-') || to.chars().any(char::is_whitespace) {
            return Err(format!(
                "[notify] mail = {to:?} is not one address; write e.g. mail = \"you@example.org\""
            ));
        }
        let command: Vec<String> = if cfg.mail_command.trim().is_empty() {
            if let Some(s) = find(&["sendmail"], &["/usr/sbin", "/usr/lib"]) {
                vec![s.display().to_string(), "-t".into(), "-oi".into()]
            } else if let Some(m) = find(&["mail", "mailx"], &[]) {
                vec![
                    m.display().to_string(),
                    "-s".into(),
                    "{subject}".into(),
                    "{to}".into(),
                ]
            } else {
                return Err(
                    "[notify] mail is set but neither sendmail nor mail is installed here; \
                     set [notify] mail_command to the program that sends mail"
                        .into(),
                );
            }
        } else {
            cfg.mail_command
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        Ok(Some(Mailer {
            to: to.to_string(),
            command,
        }))
    }

    /// The program, its arguments and what goes to its stdin, for `n`.
    pub fn invocation(&self, n: &Notice) -> (Vec<String>, String) {
        let subject = n.title.replace(['\n', '\r'], " ");
        let args: Vec<String> = self
            .command
            .iter()
            .map(|w| w.replace("{to}", &self.to).replace("{subject}", &subject))
            .collect();
        let body = format!(
            "{}\n\ncluster: {}\nevent: {}\n",
            n.body,
            n.cluster,
            serde_json::to_value(n.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
        let stdin = if self.command.iter().any(|w| w.contains("{subject}")) {
            body
        } else {
            format!("To: {}\nSubject: {subject}\n\n{body}", self.to)
        };
        (args, stdin)
    }

    /// Sends `n`; an error says which command failed and how.
    pub async fn send(&self, n: &Notice) -> Result<(), String> {
        let (args, stdin) = self.invocation(n);
        let Some((program, rest)) = args.split_first() else {
            return Err("[notify] mail_command is empty".into());
        };
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run mail command {program}: {e}"))?;
        if let Some(mut w) = child.stdin.take() {
            let _ = w.write_all(stdin.as_bytes()).await;
        }
        let out = tokio::time::timeout(MAIL_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| format!("mail command {program} did not finish within 30 s"))?
            .map_err(|e| format!("mail command {program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "mail command {program} failed ({}): {}",
                out.status,
                crate::text::terminal_safe(String::from_utf8_lossy(&out.stderr).trim())
            ))
        }
    }
}

/// The first of `names` on PATH or in `extra` directories.
fn find(names: &[&str], extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .collect();
    names
        .iter()
        .find_map(|n| dirs.iter().map(|d| d.join(n)).find(|p| is_executable(p)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Kind;

    fn notice() -> Notice {
        Notice {
            key: "ready:n1:7".into(),
            kind: Kind::Ready,
            cluster: "c1".into(),
            title: "corral: cluster c1 is ready".into(),
            body: "2 workers with 4 cores connected".into(),
        }
    }

    fn cfg(mail: &str, command: &str) -> NotifyConfig {
        NotifyConfig {
            mail: mail.into(),
            mail_command: command.into(),
            ..Default::default()
        }
    }

    #[test]
    fn no_address_no_mail_and_a_bad_address_is_said() {
        assert_eq!(Mailer::from_config(&cfg("", "")), Ok(None));
        let e = Mailer::from_config(&cfg("a b", "x")).expect_err("two words");
        assert!(e.contains("is not one address"), "{e}");
    }

    #[test]
    fn sendmail_style_gets_headers_mail_style_gets_a_subject_argument() {
        let m = Mailer::from_config(&cfg("u@h", "/bin/sendmail -t"))
            .expect("ok")
            .expect("some");
        let (args, stdin) = m.invocation(&notice());
        assert_eq!(args, ["/bin/sendmail", "-t"]);
        assert!(stdin.starts_with("To: u@h\nSubject: corral: cluster c1 is ready\n\n2 workers"));
        let m = Mailer::from_config(&cfg("u@h", "mail -s {subject} {to}"))
            .expect("ok")
            .expect("some");
        let (args, stdin) = m.invocation(&notice());
        assert_eq!(args, ["mail", "-s", "corral: cluster c1 is ready", "u@h"]);
        assert!(stdin.starts_with("2 workers with 4 cores connected\n\ncluster: c1\nevent: ready"));
    }

    #[tokio::test]
    async fn a_failing_command_is_reported_with_its_words() {
        let m = Mailer::from_config(&cfg("u@h", "sh -c {subject}"))
            .expect("ok")
            .expect("some");
        let mut n = notice();
        n.title = "echo no relay >&2; exit 3".into();
        let e = m.send(&n).await.expect_err("fails");
        assert!(e.contains("failed") && e.contains("no relay"), "{e}");
    }
}
