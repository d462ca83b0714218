//! The client's errors, each one line saying what to do, against a stand-in slurmrestd that
//! answers fixed responses (the real one is driven by the end-to-end tests in tests/).

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Serves `replies` (status, body) in order, one per connection, on a unix socket.
fn serve(path: &Path, replies: Vec<(u16, String)>) -> tokio::task::JoinHandle<Vec<String>> {
    let listener = tokio::net::UnixListener::bind(path).expect("bind");
    tokio::spawn(async move {
        let mut seen = Vec::new();
        for (status, body) in replies {
            let Ok((mut conn, _)) = listener.accept().await else {
                break;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            seen.push(text.lines().next().unwrap_or_default().to_string());
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        }
        seen
    })
}

fn rest_at(url: &str) -> SlurmRest {
    SlurmRest::with_env_token(
        &SlurmConfig {
            rest_url: url.into(),
            command_timeout_secs: 5,
            ..SlurmConfig::default()
        },
        None,
    )
}

#[tokio::test]
async fn a_missing_socket_says_where_it_was_looked_for() {
    let err = rest_at("unix:///nonexistent/slurmrestd.sock")
        .partitions()
        .await
        .expect_err("no socket");
    assert!(matches!(err, SlurmError::RestNoSocket { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/slurmrestd.sock") && text.contains("rest_url"),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn a_server_with_no_known_version_names_what_it_offers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("rest.sock");
    let doc = r#"{"paths": {"/slurm/v0.0.99/jobs/": {}, "/slurm/v0.0.35/jobs": {}}}"#;
    let server = serve(&sock, vec![(200, doc.into())]);
    let rest = rest_at(&format!("unix://{}", sock.display()));
    let err = rest.my_jobs().await.expect_err("unknown versions");
    let text = err.to_string();
    assert!(
        text.contains("v0.0.99, v0.0.35")
            && text.contains("v0.0.36–v0.0.42")
            && text.contains("api = \"cli\""),
        "{text}"
    );
    assert_eq!(
        server.await.expect("server"),
        vec!["GET /openapi/v3 HTTP/1.1"]
    );
}

#[tokio::test]
async fn the_newest_known_version_is_used_and_slurm_errors_are_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("rest.sock");
    let doc = include_str!("../../../tests/fixtures/slurmrestd/v0.0.40/openapi.json");
    let refused = include_str!("../../../tests/fixtures/slurmrestd/v0.0.38/submit-refused.json");
    let unknown = include_str!("../../../tests/fixtures/slurmrestd/v0.0.42/job-unknown.json");
    let down = r#"{"errors": [{"error": "Unable to contact slurm controller (connect failure)", "error_number": 1007}]}"#;
    let server = serve(
        &sock,
        vec![
            (200, doc.into()),
            (500, refused.into()),
            (500, unknown.into()),
            (500, down.into()),
        ],
    );
    let rest = rest_at(&format!("unix://{}", sock.display()));
    let err = rest
        .submit(
            "#!/bin/sh\n#SBATCH --ntasks=1\ntrue\n",
            &SubmitOptions::default(),
        )
        .await
        .expect_err("refused");
    match &err {
        SlurmError::Failed { code, stderr, .. } => {
            assert_eq!(*code, 2000);
            assert_eq!(stderr, "Invalid partition name specified");
        }
        other => panic!("not Failed: {other}"),
    }
    assert_eq!(rest.job(JobId(999_999)).await.expect("answers"), None);
    let err = rest.nodes().await.expect_err("controller down");
    assert!(
        matches!(err, SlurmError::ControllerDown { .. }) && err.is_transient(),
        "{err}"
    );
    assert_eq!(
        rest.describe(),
        format!("slurmrestd unix://{} (v0.0.41)", sock.display())
    );
    assert_eq!(
        server.await.expect("server"),
        vec![
            "GET /openapi/v3 HTTP/1.1",
            "POST /slurm/v0.0.41/job/submit HTTP/1.1",
            "GET /slurm/v0.0.41/job/999999 HTTP/1.1",
            "GET /slurm/v0.0.41/nodes/ HTTP/1.1",
        ]
    );
}

#[tokio::test]
async fn configuration_that_cannot_work_is_said_on_use() {
    let err = rest_at("")
        .partitions()
        .await
        .expect_err("no url")
        .to_string();
    assert!(err.contains("CORRAL_SLURM_REST_URL"), "{err}");
    let err = rest_at("rest:6820")
        .nodes()
        .await
        .expect_err("bad url")
        .to_string();
    assert!(err.contains("unix:///"), "{err}");
    let err = rest_at("http://127.0.0.1:9")
        .my_jobs()
        .await
        .expect_err("no token")
        .to_string();
    assert!(
        err.contains("SLURM_JWT") && err.contains("token_command"),
        "{err}"
    );
    let err = rest_at("unix:///x.sock")
        .estimate("", &SubmitOptions::default())
        .await
        .expect_err("no estimate over REST")
        .to_string();
    assert!(err.contains("--test-only"), "{err}");
}
