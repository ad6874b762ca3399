//! Entering network namespaces and running commands there.
//!
//! Work inside a namespace runs on a fresh thread that moves itself into the namespace with
//! setns(2); the rest of the process stays where it is. Sockets that thread opens, and
//! processes it starts, live in the namespace.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use super::LabError;

/// Where `ip netns add` puts the namespace handles.
pub const NETNS_DIR: &str = "/run/netns";

/// The handle file of namespace `name`.
pub fn handle(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Runs `f` on a new thread inside namespace `netns` and waits for its result.
pub fn run_in<T, F>(netns: &str, f: F) -> Result<T, LabError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_in(netns, f)?
        .join()
        .map_err(|_| LabError::Panicked(format!("a thread in namespace {netns}")))?
}

/// Starts `f` on a new thread inside namespace `netns`; join the handle for its result.
pub fn spawn_in<T, F>(netns: &str, f: F) -> Result<JoinHandle<Result<T, LabError>>, LabError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let path = handle(netns);
    let file =
        File::open(&path).map_err(|e| LabError::io(format!("open {}", path.display()), e))?;
    let name = netns.to_string();
    std::thread::Builder::new()
        .name(format!("netns {netns}"))
        .spawn(move || {
            move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&file),
                Some(LinkNameSpaceType::Network),
            )
            .map_err(|e| LabError::io(format!("setns into {name}"), e.into()))?;
            drop(file);
            Ok(f())
        })
        .map_err(|e| LabError::io("spawn a thread", e))
}

/// Runs `program args` inside `netns` (or here, for `None`) and returns its output when it
/// exits successfully.
pub fn output(netns: Option<&str>, program: &str, args: &[&str]) -> Result<Output, LabError> {
    let command_line = describe(netns, program, args);
    let program = program.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let run = move || {
        Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .output()
    };
    let out = match netns {
        Some(ns) => run_in(ns, run)?,
        None => run(),
    }
    .map_err(|e| LabError::io(format!("run `{command_line}`"), e))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            command: command_line,
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        })
    }
}

/// Like [`output`], returning stdout as text.
pub fn stdout(netns: Option<&str>, program: &str, args: &[&str]) -> Result<String, LabError> {
    let out = output(netns, program, args)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs iproute2 commands (`link add ...`, one per line) in one `ip -batch` process, inside
/// `netns` when given (`ip -n`). Stops at the first failing line.
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<(), LabError> {
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-batch", "-"]);
    let command_line = describe(None, "ip", &args);
    let mut child = Command::new("ip")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::io(format!("run `{command_line}` (is iproute2 installed?)"), e))?;
    let script = lines.join("\n") + "\n";
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| LabError::io(format!("feed `{command_line}`"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LabError::io(format!("wait for `{command_line}`"), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: format!("{command_line} <<< {script:?}"),
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Writes sysctl values (`("net/ipv6/conf/all/accept_dad", "0")`) inside `netns`; /proc/sys/net
/// shows the namespace of the thread that opens it.
pub fn sysctls(netns: &str, values: &[(&str, &str)]) -> Result<(), LabError> {
    let values: Vec<(String, String)> = values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_in(netns, move || {
        for (key, value) in &values {
            let path = Path::new("/proc/sys").join(key);
            std::fs::write(&path, value)
                .map_err(|e| LabError::io(format!("write {value} to {}", path.display()), e))?;
        }
        Ok(())
    })?
}

/// The pids of processes whose network namespace is `netns` (`ip netns pids`).
pub fn pids(netns: &str) -> Result<Vec<u32>, LabError> {
    let text = stdout(None, "ip", &["netns", "pids", netns])?;
    Ok(text
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// The lab namespace names that exist now (entries of /run/netns).
pub fn list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn describe(netns: Option<&str>, program: &str, args: &[&str]) -> String {
    let mut s = match netns {
        Some(ns) => format!("[netns {ns}] {program}"),
        None => program.to_string(),
    };
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}
