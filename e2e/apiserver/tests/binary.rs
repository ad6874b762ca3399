//! The `ferrolb-test-apiserver` binary as the lab runs it: listen, write the ready file, serve;
//! with `--state-file`, save on SIGTERM/SIGINT and serve the same objects after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::json;
use tokio::process::{Child, Command};

use common::{Seen, next};

/// The binary started with `args` plus `--ready-file`, once it listens: the child and its address.
async fn start_binary(ready: &Path, args: &[&str]) -> (Child, String) {
    let _ = std::fs::remove_file(ready);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolb-test-apiserver"))
        .args(args)
        .arg("--ready-file")
        .arg(ready)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = loop {
        if let Ok(text) = std::fs::read_to_string(ready)
            && !text.is_empty()
        {
            break text.trim().to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the binary exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "no ready file after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (child, addr)
}

/// Sends `signal` and waits (at most 10 s) for the process to exit.
async fn stop_with(child: &mut Child, signal: Signal) -> ExitStatus {
    let pid = Pid::from_raw(child.id().unwrap() as i32).unwrap();
    kill_process(pid, signal).unwrap();
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the binary exits within 10 s of the signal")
        .unwrap()
}

fn configmap(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn binary_writes_the_bound_address_to_the_ready_file_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) =
        start_binary(&dir.path().join("ready"), &["--listen", "127.0.0.1:0"]).await;
    let client = common::client_for(&format!("http://{addr}"));
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "metallb-system"
        ]
    );
    let status = stop_with(&mut child, Signal::TERM).await;
    assert!(
        status.success(),
        "without a state file SIGTERM exits 0 too: {status}"
    );
}

#[tokio::test]
async fn binary_saves_on_sigterm_and_a_reflector_recovers_when_it_restarts_on_the_same_address() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let state = dir.path().join("state.json");
    let state_arg = state.to_str().unwrap();
    let (mut child, addr) = start_binary(
        &ready,
        &["--listen", "127.0.0.1:0", "--state-file", state_arg],
    )
    .await;
    let client = common::client_for(&format!("http://{addr}"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let before = cms
        .create(&PostParams::default(), &configmap("before"))
        .await
        .unwrap();
    let (reader, mut rx, task) = common::reflect(cms.clone());
    assert_eq!(next(&mut rx).await, Seen::Init);
    assert_eq!(next(&mut rx).await, Seen::InitDone);
    // Moves the revision past the reflector's, so that it has to relist after the restart.
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "bump"}})).unwrap(),
        )
        .await
        .unwrap();

    let status = stop_with(&mut child, Signal::TERM).await;
    assert!(status.success(), "SIGTERM exits 0: {status}");
    assert!(state.exists(), "the state file is written on SIGTERM");
    let (_child, restarted) =
        start_binary(&ready, &["--listen", &addr, "--state-file", state_arg]).await;
    assert_eq!(restarted, addr);

    common::expect_expired_then_relist(&mut rx).await;
    let restored = cms.get("before").await.unwrap();
    assert_eq!(
        restored, before,
        "same object: resourceVersion, uid, timestamp and all"
    );
    let names: Vec<String> = reader
        .state()
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["before"]);
    let after = cms
        .create(&PostParams::default(), &configmap("after"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, Seen::Apply("after".into()));
    let rv = |c: &ConfigMap| -> u64 {
        c.metadata
            .resource_version
            .as_ref()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        rv(&after) > rv(&before) + 1,
        "the counter went on from the bump"
    );
    task.abort();
}

#[tokio::test]
async fn binary_saves_on_sigint_and_sigterm_alike() {
    for signal in [Signal::INT, Signal::TERM] {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let state = dir.path().join("state.json");
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--state-file",
            state.to_str().unwrap(),
        ];
        let (mut child, addr) = start_binary(&ready, &args).await;
        let cms: Api<ConfigMap> =
            Api::namespaced(common::client_for(&format!("http://{addr}")), "default");
        let kept = cms
            .create(&PostParams::default(), &configmap("kept"))
            .await
            .unwrap();
        let status = stop_with(&mut child, signal).await;
        assert!(status.success(), "{signal:?} exits 0: {status}");
        let (_child, addr) = start_binary(&ready, &args).await;
        let cms: Api<ConfigMap> =
            Api::namespaced(common::client_for(&format!("http://{addr}")), "default");
        assert_eq!(cms.get("kept").await.unwrap(), kept, "{signal:?}");
    }
}

#[tokio::test]
async fn binary_refuses_to_start_on_an_unreadable_or_corrupt_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Option<&[u8]>, &str); 3] = [
        ("a directory", None, "cannot read the state file"),
        ("garbage", Some(b"{\"format\": 1, \"resourceVer"), "is not a valid snapshot"),
        (
            "a counter behind its objects",
            Some(b"{\"format\":1,\"resourceVersion\":1,\"kinds\":[],\"storages\":[{\"group\":\"\",\"plural\":\"configmaps\",\"objects\":[{\"metadata\":{\"name\":\"a\",\"namespace\":\"default\",\"resourceVersion\":\"7\"}}]}]}"),
            "is inconsistent",
        ),
    ];
    for (i, (case, content, expected)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("state-{i}"));
        let ready = dir.path().join(format!("ready-{i}"));
        match content {
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
            None => std::fs::create_dir(&path).unwrap(),
        }
        let run = Command::new(env!("CARGO_BIN_EXE_ferrolb-test-apiserver"))
            .args(["--listen", "127.0.0.1:0", "--state-file"])
            .arg(&path)
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap_or_else(|_| panic!("{case}: the binary did not exit within 10 s"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{case}: {}", output.status);
        assert!(
            stderr.contains(expected) && stderr.contains(path.to_str().unwrap()),
            "{case}: {stderr}"
        );
        assert!(!ready.exists(), "{case}: it never listened");
        if let Some(bytes) = content {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{case}: left as it was"
            );
        }
    }
}
