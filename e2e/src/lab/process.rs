//! Long-running processes inside lab namespaces (responders, API server, routers, ferrolb).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::LabError;

/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A process the lab started inside a namespace, with its output in a log file. Dropping it
/// kills it.
#[derive(Debug)]
pub struct NsProcess {
    name: String,
    netns: String,
    child: Option<Child>,
    log: PathBuf,
}

/// What to start: a program, its arguments and extra environment.
#[derive(Clone, Debug, Default)]
pub struct Spawn {
    /// The program (a path or a name looked up in PATH).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Spawn {
    /// `program` with `args` and no extra environment.
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

impl NsProcess {
    /// Starts `what` inside `netns` through `ip netns exec` (which also gives it the
    /// namespace's view of /sys), writing stdout and stderr to `log`.
    pub fn start(name: &str, netns: &str, what: &Spawn, log: &Path) -> Result<Self, LabError> {
        let out =
            File::create(log).map_err(|e| LabError::io(format!("create {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| LabError::io(format!("reopen {}", log.display()), e))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns])
            .arg(&what.program)
            .args(&what.args)
            .envs(what.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command.spawn().map_err(|e| {
            LabError::io(
                format!("start {name} ({}) in {netns}", what.program.display()),
                e,
            )
        })?;
        tracing::debug!(name, netns, pid = child.id(), "started");
        Ok(Self {
            name: name.to_string(),
            netns: netns.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The process's name in the lab (`responder-node1`, `bird`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace it runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Its pid (`ip netns exec` replaces itself with the program), if it was not stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log file holding its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running (false once it exited or was stopped).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Asks it to stop with SIGTERM, kills it after a grace period, and reaps it.
    pub fn stop(&mut self) -> Result<(), LabError> {
        self.stop_with(Signal::TERM)
    }

    /// Kills it at once with SIGKILL and reaps it (a crash, for failover tests).
    pub fn kill(&mut self) -> Result<(), LabError> {
        self.stop_with(Signal::KILL)
    }

    /// Leaves the process running when this handle is dropped (for `lab up`, whose lab
    /// outlives the command).
    pub fn detach(mut self) {
        self.child = None;
    }

    fn stop_with(&mut self, signal: Signal) -> Result<(), LabError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Ok(());
        }
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            // The process may have exited in between: ESRCH is fine.
            let _ = kill_process(pid, signal);
        }
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    tracing::warn!(name = %self.name, "did not stop after SIGTERM; killing it");
                    let _ = child.kill();
                    return child
                        .wait()
                        .map(|_| ())
                        .map_err(|e| LabError::io(format!("reap {}", self.name), e));
                }
                Err(e) => return Err(LabError::io(format!("wait for {}", self.name), e)),
            }
        }
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop_with(Signal::KILL) {
            tracing::warn!(name = %self.name, error = %e, "could not stop");
        }
    }
}
