//! Who may use `corral dashboard`'s local port: the browser that opened the one-time link.
//!
//! The port listens on 127.0.0.1 of a shared login node, where every other user can connect
//! to it too. So the first request of every browser connection is read (its head only, at most
//! [`MAX_HEAD`] bytes) and judged here, before a byte reaches the cluster:
//!
//! - the printed link carries a one-time token (`?corral_token=…`): the first request with it
//!   gets a session cookie and a redirect to the same page without the token; the token is
//!   spent, so a link seen over a shoulder or in a shell history opens nothing later;
//! - a request with the session cookie passes, and so does the rest of its connection (a
//!   connection belongs to one browser: another process cannot write into it);
//! - anything else gets 403 with words saying what to do.
//!
//! The cookie is `HttpOnly` and `SameSite=Strict` (other sites' pages cannot use it), and its
//! name carries the port: browsers send a cookie for 127.0.0.1 to every port of it, so two
//! `corral dashboard`s side by side keep their own.

use std::sync::atomic::{AtomicBool, Ordering};

/// The longest request head read before judging a connection (Bokeh's websocket request
/// carries a session token of a few KiB in its head).
pub const MAX_HEAD: usize = 32 * 1024;

/// The query parameter of the one-time link.
pub const TOKEN_PARAM: &str = "corral_token";

/// The first request of a browser connection, as far as the gate reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The request target (`/status?x=1`).
    pub target: String,
    /// Every `name=value` of every `Cookie` header.
    pub cookies: Vec<(String, String)>,
}

/// Why a request head could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request head is longer than {MAX_HEAD} bytes")]
    TooLong,
    #[error("not an HTTP/1 request")]
    NotHttp,
}

/// Where the head ends (the index after its blank line), if it is all in `buf`.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a request head (`buf` up to [`head_end`]).
pub fn parse_head(buf: &[u8]) -> Result<Head, HeadError> {
    let text = std::str::from_utf8(buf).map_err(|_| HeadError::NotHttp)?;
    let mut lines = text.split("\r\n");
    let request = lines.next().ok_or(HeadError::NotHttp)?;
    let mut parts = request.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::NotHttp);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || target.is_empty() {
        return Err(HeadError::NotHttp);
    }
    let mut cookies = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("cookie") {
            continue;
        }
        for pair in value.split(';') {
            if let Some((k, v)) = pair.split_once('=') {
                cookies.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        cookies,
    })
}

/// What to do with a browser connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Carry the connection to the dashboard.
    Pass,
    /// The one-time link: set the session cookie and send the browser to `location`.
    Login { location: String },
    /// Refuse, with this explanation.
    Forbidden(String),
}

/// The token, the session and what has been spent.
#[derive(Debug)]
pub struct Gate {
    token: String,
    session: String,
    cookie_name: String,
    spent: AtomicBool,
    /// What a refused user should run for a new link (`corral dashboard NAME`).
    again: String,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    // The operating system's generator; failing it leaves no safe token to hand out.
    if let Err(e) = getrandom::fill(&mut b) {
        panic!("the operating system's random generator failed: {e}");
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Gate {
    /// A gate for the proxy on `port`; `again` is the command that prints a new link.
    pub fn new(port: u16, again: &str) -> Gate {
        Gate {
            token: random_hex(),
            session: random_hex(),
            cookie_name: format!("corral_dashboard_{port}"),
            spent: AtomicBool::new(false),
            again: again.to_owned(),
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The `Cookie` header value of an authorised client (the TUI's own HTTP client).
    pub fn cookie(&self) -> String {
        format!("{}={}", self.cookie_name, self.session)
    }

    /// The `Set-Cookie` header value a login answers with.
    pub fn set_cookie(&self) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name, self.session
        )
    }

    fn has_session(&self, head: &Head) -> bool {
        head.cookies
            .iter()
            .any(|(k, v)| *k == self.cookie_name && same(v, &self.session))
    }

    /// Judges a connection by its first request.
    pub fn judge(&self, head: &Head) -> Verdict {
        let (path, query) = match head.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (head.target.as_str(), None),
        };
        let token = query.and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(TOKEN_PARAM)?.strip_prefix('='))
        });
        let Some(token) = token else {
            return if self.has_session(head) {
                Verdict::Pass
            } else {
                Verdict::Forbidden(format!(
                    "corral dashboard: this browser has no access to this dashboard.\n\n\
                     Open the link `{}` printed (it works once, in one browser), or run it \
                     again for a new link.\n",
                    self.again
                ))
            };
        };
        // The rest of the query, without the token, is where the browser goes next.
        let rest: Vec<&str> = query
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.starts_with(&format!("{TOKEN_PARAM}=")) && !kv.is_empty())
            .collect();
        // Only a local path: `//host` would send the browser elsewhere.
        let path = if path.starts_with('/') && !path.starts_with("//") {
            path
        } else {
            "/"
        };
        let location = if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", rest.join("&"))
        };
        if !same(token, &self.token) {
            return Verdict::Forbidden(format!(
                "corral dashboard: this link's token is not this dashboard's.\n\n\
                 Run `{}` for a new link (each run has its own).\n",
                self.again
            ));
        }
        if self.spent.swap(true, Ordering::SeqCst) {
            // A reload of the link by the browser that used it is fine; anyone else is not.
            return if self.has_session(head) {
                Verdict::Login { location }
            } else {
                Verdict::Forbidden(format!(
                    "corral dashboard: this one-time link was used already (by the first \
                     browser that opened it).\n\nRun `{}` again for a new link.\n",
                    self.again
                ))
            };
        }
        Verdict::Login { location }
    }
}

/// An HTTP/1.1 response that closes the connection.
pub fn response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    r.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str, cookie: Option<&str>) -> Head {
        let mut text = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:8787\r\n");
        if let Some(c) = cookie {
            text.push_str(&format!("Cookie: other=1; {c}\r\n"));
        }
        text.push_str("\r\n");
        let end = head_end(text.as_bytes()).expect("complete head");
        assert_eq!(end, text.len());
        parse_head(&text.as_bytes()[..end]).expect("parses")
    }

    #[test]
    fn the_link_works_once_then_the_cookie_is_the_key() {
        let g = Gate::new(8787, "corral dashboard lab");
        let t = g.token().to_owned();
        // Nothing without the token or the cookie.
        let Verdict::Forbidden(why) = g.judge(&head("/status", None)) else {
            panic!("a stranger passed");
        };
        assert!(why.contains("corral dashboard lab"), "{why}");
        // A wrong token is refused and does not spend the right one.
        let wrong = "0".repeat(t.len());
        assert!(matches!(
            g.judge(&head(&format!("/status?corral_token={wrong}"), None)),
            Verdict::Forbidden(_)
        ));
        // The link: a login that drops the token and keeps the rest of the query.
        assert_eq!(
            g.judge(&head(&format!("/status?a=1&corral_token={t}&b=2"), None)),
            Verdict::Login {
                location: "/status?a=1&b=2".into()
            }
        );
        // Spent: another browser (no cookie) is refused with the reason; the browser with the
        // cookie may reload the link.
        let Verdict::Forbidden(why) = g.judge(&head(&format!("/status?corral_token={t}"), None))
        else {
            panic!("a spent link worked twice");
        };
        assert!(why.contains("used already"), "{why}");
        let cookie = g.cookie();
        assert_eq!(
            g.judge(&head(&format!("/status?corral_token={t}"), Some(&cookie))),
            Verdict::Login {
                location: "/status".into()
            }
        );
        assert_eq!(
            g.judge(&head("/individual-plots.json", Some(&cookie))),
            Verdict::Pass
        );
        // Another port's cookie, or a forged session, is not this one's.
        let other = Gate::new(8788, "x");
        assert!(matches!(
            g.judge(&head("/status", Some(&other.cookie()))),
            Verdict::Forbidden(_)
        ));
        let forged = format!("corral_dashboard_8787={}", "f".repeat(64));
        assert!(matches!(
            g.judge(&head("/status", Some(&forged))),
            Verdict::Forbidden(_)
        ));
        assert!(g.set_cookie().contains("HttpOnly") && g.set_cookie().contains("SameSite=Strict"));
    }

    #[test]
    fn a_login_never_redirects_off_the_dashboard() {
        let g = Gate::new(1, "x");
        let t = g.token().to_owned();
        assert_eq!(
            g.judge(&head(&format!("//evil.example/?corral_token={t}"), None)),
            Verdict::Login {
                location: "/".into()
            }
        );
    }

    #[test]
    fn heads_that_are_not_http_are_errors() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(parse_head(b"\x16\x03\x01\r\n\r\n"), Err(HeadError::NotHttp));
        assert_eq!(parse_head(b"GET /\r\n\r\n"), Err(HeadError::NotHttp));
        assert_eq!(
            parse_head(b"GET / HTTP/1.1 extra\r\n\r\n"),
            Err(HeadError::NotHttp)
        );
        let h = parse_head(b"GET /x HTTP/1.1\r\ncOOkie: a=1;b = 2\r\n\r\n").expect("http");
        assert_eq!(
            h.cookies,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        let r = String::from_utf8(response("403 Forbidden", &[], "no")).expect("utf8");
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n") && r.ends_with("\r\n\r\nno"));
    }
}
