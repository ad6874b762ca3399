//! The real `ferrolb-speaker` binary: `--version` names the git commit, and
//! its log lines on a stderr that is no terminal carry no colour codes, as
//! text or as one JSON object per line (`--log-format json`).

// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-speaker");

/// Run the speaker with a kubeconfig that does not exist (it logs one error
/// and exits 2), stderr into a file; that file's bytes.
fn speaker_log(extra: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let kubeconfig = dir.path().join("missing-kubeconfig");
    let status = Command::new(BIN)
        .args(["--node-name", "node-a", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(extra)
        .env_remove("FERROLB_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    std::fs::read(&log).unwrap()
}

#[test]
fn speaker_logs_without_colours_when_stderr_is_no_terminal() {
    let log = speaker_log(&[], &[]);
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("cannot build a Kubernetes client"), "{text}");
    assert!(!log.contains(&0x1b), "{text:?}");
}

#[test]
fn speaker_logs_json_lines() {
    for log in [
        speaker_log(&["--log-format", "json"], &[]),
        speaker_log(&[], &[("FERROLB_LOG_FORMAT", "json")]),
    ] {
        let text = String::from_utf8_lossy(&log);
        assert!(!log.contains(&0x1b), "{text:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines.is_empty());
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["level"], "ERROR", "{line}");
            assert_eq!(v["message"], "cannot build a Kubernetes client", "{line}");
            assert!(
                v["timestamp"].is_string() && v["target"].is_string(),
                "{line}"
            );
            assert!(
                v["error"].as_str().unwrap().contains("missing-kubeconfig"),
                "{line}"
            );
        }
    }
}

#[test]
fn version_names_the_git_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("ferrolb-speaker {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = stdout
        .trim_end()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{stdout:?}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{stdout:?}"
    );
}
