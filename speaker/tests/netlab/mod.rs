//! What the speaker's namespace tests share: the root-and-tools check that
//! fails loudly, running commands, network namespaces deleted on drop, and
//! waiting for a condition.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Fails (never skips) unless running as root with every `(tool, Debian
/// package)` of `tools` installed.
pub fn require_root_and_tools(tools: &[(&str, &str)]) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it creates network namespaces); run it as root"
    );
    let path = std::env::var_os("PATH").unwrap_or_default();
    for (tool, package) in tools {
        let found = std::env::split_paths(&path)
            .chain(["/usr/sbin", "/sbin"].map(Into::into))
            .any(|d| Path::new(&d).join(tool).is_file());
        assert!(
            found,
            "`{tool}` not found: install the Debian package `{package}`"
        );
    }
}

/// Runs `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

/// Runs `args` and fails the test unless it succeeds.
pub fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<pid>-<n>`: unique per process and call, for names of test resources.
pub fn unique() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace deleted on drop (with the veth end inside it).
pub struct Netns(pub String);

impl Netns {
    /// A new namespace `flb-<test>-<unique>-<role>`.
    pub fn new(test: &str, role: &str) -> Self {
        let name = format!("flb-{test}-{}-{role}", unique());
        must(&["ip", "netns", "add", &name]);
        Netns(name)
    }

    /// Runs `args` inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.0];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs `args` inside the namespace and fails the test unless it succeeds.
    pub fn must(&self, args: &[&str]) {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "in {}: {args:?} failed: {}",
            self.0,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The standard output of `args` run inside the namespace, lowercased.
    pub fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.exec(args).stdout).to_lowercase()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.0]);
    }
}

/// Whether `check` holds within `within`, polled every 20 ms.
pub fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
