//! Who owns a lab, and removing the labs whose owner is gone.
//!
//! Each lab writes `/run/ferrolb-lab/<prefix>/state.json` before it creates any namespace,
//! naming its owner process by pid and start time (pids get reused). A lab whose owner no
//! longer runs is a leftover of a crashed or killed run: its processes are killed and its
//! namespaces deleted. Labs of live owners (parallel tests) are left alone; labs made by
//! `lab up` have no owner and stay until `lab down`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde::{Deserialize, Serialize};

use super::LabError;
use super::netns;
use super::topology::{Topology, parse_prefix};

/// The folder holding one run folder per lab.
pub const RUN_ROOT: &str = "/run/ferrolb-lab";

/// The run folder of lab `prefix`: its state, kubeconfig, logs, router configs and sockets.
pub fn run_dir(prefix: &str) -> PathBuf {
    Path::new(RUN_ROOT).join(prefix)
}

/// A process identified so that a reused pid does not count as the same process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks after boot (field 22 of /proc/PID/stat).
    pub start_time: u64,
}

impl Owner {
    /// This process.
    pub fn current() -> Result<Self, LabError> {
        let pid = std::process::id();
        let start_time =
            start_time(pid).ok_or_else(|| LabError::Missing("/proc/self/stat".into()))?;
        Ok(Self { pid, start_time })
    }

    /// Whether the process still runs.
    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

/// The start time of process `pid`, if it exists.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of a /proc/PID/stat line; the command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its closing parenthesis.
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// What is recorded about a lab in its run folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabState {
    /// The lab's shape.
    pub topology: Topology,
    /// The process the lab lives and dies with; `None` for labs kept until `lab down`.
    pub owner: Option<Owner>,
    /// The kubeconfig clients use, if the lab has a control plane.
    pub kubeconfig: Option<PathBuf>,
}

impl LabState {
    /// Writes the state into the lab's run folder, creating it.
    pub fn save(&self) -> Result<(), LabError> {
        let dir = run_dir(&self.topology.prefix);
        std::fs::create_dir_all(&dir)
            .map_err(|e| LabError::io(format!("create {}", dir.display()), e))?;
        let path = dir.join("state.json");
        let text =
            serde_json::to_string_pretty(self).map_err(|e| LabError::Missing(e.to_string()))?;
        std::fs::write(&path, text)
            .map_err(|e| LabError::io(format!("write {}", path.display()), e))
    }

    /// Reads the state of lab `prefix`.
    pub fn load(prefix: &str) -> Result<Self, LabError> {
        let path = run_dir(prefix).join("state.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LabError::io(format!("read {}", path.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| LabError::Missing(format!("{}: {e}", path.display())))
    }
}

/// Where FRR keeps a folder per pathspace (`-N`), named after the lab's router instance.
pub const FRR_STATE_ROOT: &str = "/run/frr";

/// Every lab on the machine: prefixes seen in /run/netns, /run/ferrolb-lab or /run/frr.
pub fn prefixes() -> BTreeSet<String> {
    let mut names = netns::list();
    names.extend(entries(Path::new(RUN_ROOT)));
    names.extend(entries(Path::new(FRR_STATE_ROOT)));
    names
        .iter()
        .filter_map(|name| parse_prefix(name).map(|(prefix, _)| prefix.to_string()))
        .collect()
}

/// The names in folder `dir` (none if it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether lab `prefix` belongs to a process that still runs (or to nobody: a `lab up` lab).
pub fn has_live_owner(prefix: &str) -> bool {
    match LabState::load(prefix) {
        Ok(state) => state.owner.is_none_or(|o| o.is_alive()),
        // No state (a crash before it was written, or after it was removed): judge by the
        // pid in the name.
        Err(_) => {
            parse_prefix(prefix).is_some_and(|(_, pid)| Path::new(&format!("/proc/{pid}")).exists())
        }
    }
}

/// Removes every lab whose owner process is gone; returns their prefixes.
pub fn reap_dead() -> Vec<String> {
    let dead: Vec<String> = prefixes()
        .into_iter()
        .filter(|p| !has_live_owner(p))
        .collect();
    for prefix in &dead {
        tracing::info!(prefix, "removing the leftovers of a dead lab");
        if let Err(e) = remove(prefix) {
            tracing::warn!(prefix, error = %e, "could not remove all leftovers");
        }
    }
    dead
}

/// Removes lab `prefix`: kills every process in its namespaces, deletes the namespaces and
/// its run folder.
pub fn remove(prefix: &str) -> Result<(), LabError> {
    let namespaces: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| parse_prefix(n).is_some_and(|(p, _)| p == prefix))
        .collect();
    let me = std::process::id();
    let mut victims = Vec::new();
    for ns in &namespaces {
        for pid in netns::pids(ns).unwrap_or_default() {
            if pid != me {
                victims.push(pid);
            }
        }
    }
    for pid in &victims {
        if let Some(p) = i32::try_from(*pid).ok().and_then(Pid::from_raw) {
            let _ = kill_process(p, Signal::KILL);
        }
    }
    wait_gone(&victims, Duration::from_secs(5));
    let mut first_error = None;
    if !namespaces.is_empty() {
        let lines: Vec<String> = namespaces
            .iter()
            .map(|n| format!("netns del {n}"))
            .collect();
        if let Err(e) = netns::ip_batch(None, &lines) {
            // Another process may be removing the same leftovers: delete one by one.
            for ns in &namespaces {
                if netns::handle(ns).exists()
                    && let Err(e) = netns::output(None, "ip", &["netns", "del", ns])
                {
                    first_error.get_or_insert(e);
                }
            }
            tracing::debug!(error = %e, "batch delete failed");
        }
    }
    let frr_dirs = entries(Path::new(FRR_STATE_ROOT))
        .into_iter()
        .filter(|n| parse_prefix(n).is_some_and(|(p, _)| p == prefix))
        .map(|n| Path::new(FRR_STATE_ROOT).join(n));
    for dir in std::iter::once(run_dir(prefix)).chain(frr_dirs) {
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
            && dir.exists()
        {
            first_error.get_or_insert(LabError::io(format!("remove {}", dir.display()), e));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Waits until none of `pids` exists any more (killed processes that are our own children
/// stay zombies until reaped elsewhere; those count as gone).
fn wait_gone(pids: &[u32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let alive = pids.iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .is_some_and(|zombie| !zombie)
        });
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_odd_command_names() {
        let cases = [
            (
                "1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 42 1000 10",
                Some(42),
            ),
            (
                "7 (a) b (c) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 99 1000 10",
                Some(99),
            ),
            ("garbage", None),
        ];
        for (stat, want) in cases {
            assert_eq!(parse_start_time(stat), want, "{stat}");
        }
    }

    #[test]
    fn this_process_is_a_live_owner_and_a_dead_pid_is_not() {
        let me = Owner::current().unwrap();
        assert!(me.is_alive());
        let reused = Owner {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert!(!reused.is_alive());
    }
}
