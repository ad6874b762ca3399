//! The lab: network namespaces joined by a bridge, standing in for a cluster's LAN.
//!
//! [`Lab::up`] builds it (see docs/testing.md for the picture): a LAN namespace with a bridge;
//! node namespaces with the kube-proxy stand-in and a TCP responder; a client; one namespace per
//! router kind; and a control-plane namespace running an API server that knows a Node and a
//! speaker Pod per node. Dropping the [`Lab`] removes it, also when a test fails.

pub mod api;
pub mod binaries;
pub mod identity;
pub mod leftovers;
pub mod netns;
pub mod objects;
pub mod process;
pub mod responder;
pub mod topology;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use api::ControlPlane;
use identity::Identity;
use leftovers::{LabState, Owner};
use process::{NsProcess, Spawn};
use topology::{BRIDGE, HOST_IFACE, Host, LAN_V4, LAN_V6, Role, SERVICE_V4, SERVICE_V6, Topology};

use crate::routers::{self, Router, RouterConfig, RouterKind};

/// Environment variable: a shell command that starts a real API server in the control-plane
/// namespace instead of the test API server (real-cluster mode).
pub const APISERVER_CMD_ENV: &str = "FERROLB_E2E_APISERVER_CMD";
/// Environment variable: in real-cluster mode, the path the command writes the admin
/// kubeconfig to (the lab sets it to a file of the lab's own run folder, so that labs in
/// parallel never share one); set by the user, a kubeconfig copied there before the command
/// starts (for a server that does not write one).
pub const KUBECONFIG_ENV: &str = "FERROLB_E2E_KUBECONFIG";
/// How long the API server gets to become ready.
/// When set, a lab keeps its logs (under `$TMPDIR/ferrolb-lab-logs/`) also
/// when it ends without a panic: for reading what a benchmark's daemons did.
pub const KEEP_LOGS: &str = "FERROLB_LAB_KEEP_LOGS";
const API_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the responders get to start listening.
const RESPONDER_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the lab could not do something.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// How it exited.
        status: String,
        /// Its stderr and stdout.
        output: String,
    },
    /// The topology was asked for something impossible.
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    /// A call to the API server failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The API server could not be set up or reached.
    #[error("kubernetes API: {0}")]
    Api(String),
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// A program, file or privilege the lab needs is missing.
    #[error("{0}")]
    Missing(String),
    /// A router's output could not be understood.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// A worker thread panicked.
    #[error("{0} panicked")]
    Panicked(String),
}

impl LabError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// What kind of lab to build.
#[derive(Clone, Debug)]
pub struct LabConfig {
    /// How many nodes (1..=89).
    pub nodes: usize,
    /// Whether to create the router namespaces (bird, frr, gobgp).
    pub routers: bool,
    /// The API server to run in the control-plane namespace (`None`: no control plane).
    pub control_plane: Option<ApiServer>,
    /// The port the nodes' TCP responders listen on.
    pub responder_port: u16,
    /// Keep the lab after this process exits (for `lab up`); otherwise it dies with it.
    pub persistent: bool,
}

impl LabConfig {
    /// One node and no routers: for tests of the API side (the controller,
    /// the webhook, the manifests, the images).
    pub fn control_plane_only() -> Self {
        Self {
            nodes: 1,
            routers: false,
            ..Self::default()
        }
    }
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            nodes: 3,
            routers: true,
            control_plane: Some(ApiServer::from_env()),
            responder_port: 80,
            persistent: false,
        }
    }
}

/// Which API server the control-plane namespace runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiServer {
    /// ferrolb's in-memory test API server (`ferrolb-test-apiserver`, plain HTTP).
    Test,
    /// Real-cluster mode: `command` runs under `sh -c` with `APISERVER_ADDR`,
    /// `APISERVER_PORT` and `FERROLB_E2E_KUBECONFIG` (the lab's own kubeconfig path) set;
    /// the lab waits until that file exists and the server is ready.
    External {
        /// The shell command.
        command: String,
        /// A ready admin kubeconfig to copy to the lab's path before the command starts,
        /// for a command that does not write one itself.
        kubeconfig: Option<PathBuf>,
    },
}

impl ApiServer {
    /// Real-cluster mode when `FERROLB_E2E_APISERVER_CMD` is set (with
    /// `FERROLB_E2E_KUBECONFIG`), else the test API server.
    pub fn from_env() -> Self {
        match std::env::var(APISERVER_CMD_ENV) {
            Ok(command) if !command.trim().is_empty() => Self::External {
                command,
                kubeconfig: std::env::var_os(KUBECONFIG_ENV)
                    .map(PathBuf::from)
                    .filter(|p| p.is_file()),
            },
            _ => Self::Test,
        }
    }
}

/// A running lab. Dropping it tears it down.
#[derive(Debug)]
pub struct Lab {
    topology: Topology,
    run_dir: PathBuf,
    processes: Vec<NsProcess>,
    control_plane: Option<ControlPlane>,
    /// Kubeconfigs of ferrolb's ServiceAccounts (tokens), written once ferrolb is installed.
    identities: BTreeMap<Identity, PathBuf>,
    /// Whether the API server is a real one (real-cluster mode).
    real_cluster: bool,
    /// How the API server was started (process index, what), for restarts.
    apiserver: Option<(usize, Spawn)>,
    responder_port: u16,
    torn_down: bool,
}

/// Labs this process created so far, for unique prefixes when tests run in parallel.
static LABS_CREATED: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Removes leftovers of dead runs, then builds a new lab.
    pub fn up(config: &LabConfig) -> Result<Self, LabError> {
        preflight()?;
        leftovers::reap_dead();
        let prefix = topology::prefix_for(
            std::process::id(),
            LABS_CREATED.fetch_add(1, Ordering::Relaxed),
        );
        let topology = Topology::new(&prefix, config.nodes, config.routers)?;
        let run_dir = leftovers::run_dir(&prefix);
        let owner = if config.persistent {
            None
        } else {
            Some(Owner::current()?)
        };
        let kubeconfig = config
            .control_plane
            .as_ref()
            .map(|_| run_dir.join("kubeconfig"));
        // The state (and so the owner) goes on disk before any namespace exists, so that a
        // crash at any later point leaves something the next run recognises as dead.
        LabState {
            topology: topology.clone(),
            owner,
            kubeconfig: kubeconfig.clone(),
        }
        .save()?;
        let mut lab = Self {
            topology,
            run_dir,
            processes: Vec::new(),
            control_plane: None,
            identities: BTreeMap::new(),
            real_cluster: matches!(config.control_plane, Some(ApiServer::External { .. })),
            apiserver: None,
            responder_port: config.responder_port,
            torn_down: false,
        };
        let started = Instant::now();
        lab.build_network()?;
        lab.start_responders()?;
        if let (Some(server), Some(kubeconfig)) = (&config.control_plane, kubeconfig) {
            lab.start_control_plane(server, &kubeconfig)?;
        }
        tracing::info!(prefix = %lab.topology.prefix, elapsed = ?started.elapsed(), "lab is up");
        Ok(lab)
    }

    /// The lab's shape: names, addresses, MACs.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The per-run prefix of every namespace name.
    pub fn prefix(&self) -> &str {
        &self.topology.prefix
    }

    /// The lab's run folder (state, kubeconfig, logs, router files).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The node called `name` (`node1`, ...).
    pub fn node(&self, name: &str) -> Option<&Host> {
        self.topology.node(name)
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Host] {
        &self.topology.nodes
    }

    /// The port the nodes' TCP responders listen on.
    pub fn responder_port(&self) -> u16 {
        self.responder_port
    }

    /// Access to the API server, if the lab has a control plane.
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        self.control_plane.as_ref()
    }

    /// The admin kubeconfig for clients inside the lab, if the lab has a control plane.
    pub fn kubeconfig(&self) -> Option<&Path> {
        self.control_plane.as_ref().map(ControlPlane::kubeconfig)
    }

    /// The kubeconfig that acts as `identity` (the admin's, or a ServiceAccount token's).
    pub fn kubeconfig_of(&self, identity: Identity) -> Option<&Path> {
        match identity {
            Identity::Admin => self.kubeconfig(),
            _ => self.identities.get(&identity).map(PathBuf::as_path),
        }
    }

    /// Access to the API server as `identity`.
    pub fn control_plane_as(&self, identity: Identity) -> Option<ControlPlane> {
        let cp = self.control_plane.as_ref()?;
        let kubeconfig = self.kubeconfig_of(identity)?;
        Some(ControlPlane::new(cp.netns(), kubeconfig))
    }

    /// Whether the lab runs a real API server (real-cluster mode).
    pub fn is_real_cluster(&self) -> bool {
        self.real_cluster
    }

    /// Probes from the client namespace.
    pub fn client_probe(&self) -> crate::probes::Probe {
        crate::probes::Probe::new(&self.topology, &self.topology.client.netns)
    }

    /// Probes from inside namespace `netns` (a node's, say).
    pub fn probe_from(&self, netns: &str) -> crate::probes::Probe {
        crate::probes::Probe::new(&self.topology, netns)
    }

    /// Starts a process inside `netns`, logging to `<run dir>/<name>.log`; the lab stops it on
    /// teardown. Returns its index for [`Lab::process`].
    pub fn spawn(&mut self, name: &str, netns: &str, what: &Spawn) -> Result<usize, LabError> {
        let log = self.run_dir.join(format!("{name}.log"));
        self.processes
            .push(NsProcess::start(name, netns, what, &log)?);
        Ok(self.processes.len() - 1)
    }

    /// Starts ferrolb binary `binary` (found by [`binaries::locate`]) on node `node`, with
    /// `NODE_NAME` set and `KUBECONFIG` acting as the binary's ServiceAccount (see
    /// [`Identity::of_binary`]).
    pub fn spawn_ferrolb(
        &mut self,
        binary: &str,
        node: &str,
        args: &[&str],
    ) -> Result<usize, LabError> {
        let host = self
            .node(node)
            .ok_or_else(|| LabError::Missing(format!("no node {node} in this lab")))?
            .clone();
        let mut what = Spawn::new(binaries::locate(binary)?, args).env("NODE_NAME", &host.name);
        if let Some(kubeconfig) = self.kubeconfig_of(Identity::of_binary(binary)) {
            what = what.env("KUBECONFIG", &kubeconfig.display().to_string());
        }
        self.spawn(&format!("{binary}-{node}"), &host.netns, &what)
    }

    /// The process started as number `index`.
    pub fn process(&mut self, index: usize) -> Option<&mut NsProcess> {
        self.processes.get_mut(index)
    }

    /// The processes the lab started, in order.
    pub fn processes(&self) -> &[NsProcess] {
        &self.processes
    }

    /// Stops the API server with SIGTERM (the test API server saves its objects),
    /// starts it again with the same command, and waits until it is ready: "the
    /// API server restarted under" whatever runs in the lab.
    pub fn restart_apiserver(&mut self) -> Result<(), LabError> {
        let (index, what) = self
            .apiserver
            .clone()
            .ok_or_else(|| LabError::Missing("this lab has no API server".into()))?;
        let cp = self.topology.control_plane.clone();
        if let Some(process) = self.processes.get_mut(index) {
            process.stop()?;
        }
        let log = self.run_dir.join("apiserver-restarted.log");
        let process = NsProcess::start("apiserver", &cp.netns, &what, &log)?;
        match self.processes.get_mut(index) {
            Some(slot) => *slot = process,
            None => self.processes.push(process),
        }
        self.control_plane
            .as_ref()
            .ok_or_else(|| LabError::Missing("this lab has no control plane".into()))?
            .wait_ready(API_READY_TIMEOUT)
    }

    /// Starts a router of `kind` in its namespace with `config`; its files go to
    /// `<run dir>/<kind>/`. Stopping it is up to the returned driver (and the teardown).
    pub fn start_router(
        &self,
        kind: RouterKind,
        config: RouterConfig,
    ) -> Result<Box<dyn Router>, LabError> {
        let host = self
            .topology
            .router(kind)
            .ok_or_else(|| LabError::Missing("this lab was built without routers".into()))?;
        let site = routers::Site {
            netns: host.netns.clone(),
            dir: self.run_dir.join(kind.name()),
            instance: format!("{}-{}", self.topology.prefix, kind.name()),
        };
        routers::start(kind, site, config)
    }

    /// Stops every process the lab started, kills whatever else runs in its namespaces,
    /// deletes the namespaces and the run folder.
    pub fn down(mut self) -> Result<(), LabError> {
        self.teardown()
    }

    /// Leaves the lab running after this value is gone (`lab up`); `lab down` removes it.
    pub fn detach(mut self) {
        for p in self.processes.drain(..) {
            p.detach();
        }
        self.torn_down = true;
    }

    fn teardown(&mut self) -> Result<(), LabError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        if std::thread::panicking() || std::env::var_os(KEEP_LOGS).is_some() {
            self.keep_logs();
        }
        for p in &mut self.processes {
            if let Err(e) = p.kill() {
                tracing::warn!(name = p.name(), error = %e, "could not stop");
            }
        }
        self.processes.clear();
        leftovers::remove(&self.topology.prefix)
    }

    /// Copies every `*.log` of the run folder (routers' included) to
    /// `$TMPDIR/ferrolb-lab-logs/<prefix>/`, on a panic or when [`KEEP_LOGS`]
    /// is set, so that a run can be understood after the lab is gone.
    fn keep_logs(&self) {
        let target = std::env::temp_dir()
            .join("ferrolb-lab-logs")
            .join(&self.topology.prefix);
        let mut folders = vec![self.run_dir.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "log")
                    && let Ok(relative) = path.strip_prefix(&self.run_dir)
                {
                    let to = target.join(relative.to_string_lossy().replace('/', "-"));
                    let _ = std::fs::create_dir_all(&target);
                    let _ = std::fs::copy(&path, &to);
                }
            }
        }
        tracing::warn!(prefix = %self.topology.prefix, logs = %target.display(), "lab torn down; logs kept");
    }

    fn build_network(&self) -> Result<(), LabError> {
        let t = &self.topology;
        let namespaces = t.namespaces();
        netns::ip_batch(
            None,
            &namespaces
                .iter()
                .map(|n| format!("netns add {n}"))
                .collect::<Vec<_>>(),
        )?;
        // Sysctls first: interfaces moved into a namespace take its `default` settings.
        let mut jobs = vec![spawn_job({
            let ns = t.lan_netns.clone();
            move || netns::sysctls(&ns, &lan_sysctls())
        })];
        for host in t.hosts() {
            let ns = host.netns.clone();
            let role = host.role;
            jobs.push(spawn_job(move || netns::sysctls(&ns, &host_sysctls(role))));
        }
        join_all(jobs)?;
        netns::ip_batch(Some(&t.lan_netns), &lan_commands(t))?;
        let jobs: Vec<_> = t
            .hosts()
            .map(|host| {
                let host = host.clone();
                spawn_job(move || netns::ip_batch(Some(&host.netns), &host_commands(&host)))
            })
            .collect();
        join_all(jobs)
    }

    fn start_responders(&mut self) -> Result<(), LabError> {
        let lab_bin = binaries::locate("lab")?;
        let mut ready_files = Vec::new();
        for host in self.topology.nodes.clone() {
            let ready = self.run_dir.join(format!("responder-{}.ready", host.name));
            let port = self.responder_port.to_string();
            let what = Spawn::new(
                &lab_bin,
                &[
                    "responder",
                    "--name",
                    &host.name,
                    "--port",
                    &port,
                    "--ready-file",
                ],
            );
            let what = Spawn {
                args: [what.args, vec![ready.display().to_string()]].concat(),
                ..what
            };
            self.spawn(&format!("responder-{}", host.name), &host.netns, &what)?;
            ready_files.push(ready);
        }
        let deadline = Instant::now() + RESPONDER_READY_TIMEOUT;
        while !ready_files.iter().all(|f| f.exists()) {
            if let Some(dead) = self
                .processes
                .iter_mut()
                .find_map(|p| (!p.is_running()).then_some(p))
            {
                return Err(LabError::Missing(format!(
                    "{} exited: {}",
                    dead.name(),
                    dead.log()
                )));
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: "the TCP responders".into(),
                    after: RESPONDER_READY_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn start_control_plane(
        &mut self,
        server: &ApiServer,
        kubeconfig: &Path,
    ) -> Result<(), LabError> {
        let cp = self.topology.control_plane.clone();
        let addr = cp.ipv4.to_string();
        let port = topology::API_PORT.to_string();
        let what = match server {
            ApiServer::External {
                command,
                kubeconfig: given,
            } => {
                if let Some(given) = given {
                    std::fs::copy(given, kubeconfig).map_err(|e| {
                        LabError::io(format!("copy {} to the lab", given.display()), e)
                    })?;
                }
                Spawn::new("/bin/sh", &["-c", command])
                    .env("APISERVER_ADDR", &addr)
                    .env("APISERVER_PORT", &port)
                    .env(KUBECONFIG_ENV, &kubeconfig.display().to_string())
            }
            ApiServer::Test => {
                std::fs::write(kubeconfig, api::plain_kubeconfig(&self.topology.api_url()))
                    .map_err(|e| LabError::io(format!("write {}", kubeconfig.display()), e))?;
                let listen = format!("{addr}:{port}");
                // Objects survive a restart of the server (as with etcd behind a real one).
                let state = self
                    .run_dir
                    .join("apiserver-state.json")
                    .display()
                    .to_string();
                Spawn::new(
                    binaries::locate("ferrolb-test-apiserver")?,
                    &["--listen", &listen, "--state-file", &state],
                )
            }
        };
        let index = self.spawn("apiserver", &cp.netns, &what)?;
        self.apiserver = Some((index, what.clone()));
        let control_plane = ControlPlane::new(&cp.netns, kubeconfig);
        let ready = self
            .wait_kubeconfig(index, kubeconfig)
            .and_then(|()| control_plane.wait_ready(API_READY_TIMEOUT));
        if let Err(e) = ready {
            let log = self
                .processes
                .get(index)
                .map(NsProcess::log)
                .unwrap_or_default();
            return Err(LabError::Api(format!("{e}; API server output:\n{log}")));
        }
        self.install_ferrolb(&control_plane)?;
        control_plane.register_nodes(&self.topology.nodes)?;
        self.control_plane = Some(control_plane);
        Ok(())
    }

    /// Waits until the API server command has written the (parseable) kubeconfig.
    fn wait_kubeconfig(&mut self, index: usize, kubeconfig: &Path) -> Result<(), LabError> {
        let deadline = Instant::now() + API_READY_TIMEOUT;
        loop {
            // A file still being written may parse already: it is complete once its
            // current context names a context of its own.
            if kube::config::Kubeconfig::read_from(kubeconfig).is_ok_and(|k| {
                k.current_context
                    .as_ref()
                    .is_some_and(|c| k.contexts.iter().any(|n| &n.name == c))
            }) {
                return Ok(());
            }
            if self
                .processes
                .get_mut(index)
                .is_some_and(|p| !p.is_running())
            {
                return Err(LabError::Missing(format!(
                    "the API server command exited before writing {}",
                    kubeconfig.display()
                )));
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("the API server command to write {}", kubeconfig.display()),
                    after: API_READY_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Installs ferrolb as a user does (`kubectl apply -k manifests/` on a real server; the
    /// files the kustomization lists applied through kube-rs on the test one), then writes a
    /// kubeconfig per ferrolb ServiceAccount from a TokenRequest.
    fn install_ferrolb(&mut self, control_plane: &ControlPlane) -> Result<(), LabError> {
        let dir = identity::manifests_dir();
        if self.real_cluster {
            binaries::require_tools(&[("kubectl", "kubectl")])?;
            self.kubectl(&["apply", "-k", &dir.display().to_string()])?;
            self.kubectl(&[
                "wait",
                "--for=condition=established",
                "--timeout=60s",
                "-f",
                &dir.join("crds.yaml").display().to_string(),
            ])?;
        } else {
            let mut texts = Vec::new();
            for path in identity::install_manifests()? {
                texts.push(
                    std::fs::read_to_string(&path)
                        .map_err(|e| LabError::io(format!("read {}", path.display()), e))?,
                );
            }
            control_plane.run(move |client| async move {
                for text in &texts {
                    identity::apply_objects(&client, text).await?;
                }
                Ok::<(), LabError>(())
            })??;
        }
        for who in Identity::SERVICE_ACCOUNTS {
            let Some(account) = who.service_account() else {
                continue;
            };
            let token = control_plane
                .run(move |client| async move { identity::token(&client, account).await })??;
            let text = identity::token_kubeconfig(control_plane.kubeconfig(), account, &token)?;
            let path = self.run_dir.join(format!("kubeconfig-{account}"));
            std::fs::write(&path, text)
                .map_err(|e| LabError::io(format!("write {}", path.display()), e))?;
            self.identities.insert(who, path);
        }
        Ok(())
    }

    /// Runs `kubectl` with the admin kubeconfig inside the control-plane namespace.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, LabError> {
        let kubeconfig = self.run_dir.join("kubeconfig").display().to_string();
        let netns = self.topology.control_plane.netns.clone();
        let mut full = vec![
            "netns",
            "exec",
            &netns,
            "kubectl",
            "--kubeconfig",
            &kubeconfig,
        ];
        full.extend_from_slice(args);
        let out = std::process::Command::new("ip")
            .args(&full)
            .output()
            .map_err(|e| LabError::io("run kubectl", e))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(LabError::Command {
                command: format!("kubectl {}", args.join(" ")),
                status: out.status.to_string(),
                output: format!("{}{text}", String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(text)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(prefix = %self.topology.prefix, error = %e, "lab teardown incomplete");
        }
    }
}

/// The lab needs root (namespaces) and iproute2.
fn preflight() -> Result<(), LabError> {
    if !rustix::process::geteuid().is_root() {
        return Err(LabError::Missing(
            "the lab needs root (network namespaces): run the tests as root".into(),
        ));
    }
    binaries::require_tools(&[("ip", "iproute2")])
}

/// The LAN namespace only switches frames: no IPv6 of its own.
fn lan_sysctls() -> Vec<(&'static str, &'static str)> {
    vec![
        ("net/ipv6/conf/all/disable_ipv6", "1"),
        ("net/ipv6/conf/default/disable_ipv6", "1"),
    ]
}

/// Addresses are usable at once (no DAD); nodes never answer ARP/NDP for Service IPs
/// themselves, so that only a ferrolb speaker can.
fn host_sysctls(role: Role) -> Vec<(&'static str, &'static str)> {
    let mut values = vec![
        ("net/ipv6/conf/all/accept_dad", "0"),
        ("net/ipv6/conf/default/accept_dad", "0"),
    ];
    if role == Role::Node {
        values.extend([
            // Answer ARP only for addresses configured on the asking interface: Service IPs
            // are local through a route on lo, not configured on eth0.
            ("net/ipv4/conf/all/arp_ignore", "1"),
            // Source ARP requests from the outgoing interface's own address.
            ("net/ipv4/conf/all/arp_announce", "2"),
            // The kernel answers NDP only for addresses on the interface unless this is on.
            ("net/ipv6/conf/all/proxy_ndp", "0"),
        ]);
    }
    values
}

/// The bridge and one veth pair per host, the host end moved into the host's namespace.
fn lan_commands(t: &Topology) -> Vec<String> {
    let mut lines = vec![
        "link set dev lo up".to_string(),
        format!("link add name {BRIDGE} type bridge mcast_snooping 0"),
        format!("link set dev {BRIDGE} up"),
    ];
    for h in t.hosts() {
        lines.push(format!(
            "link add name {} type veth peer name {HOST_IFACE} netns {}",
            h.port, h.netns
        ));
        lines.push(format!("link set dev {} master {BRIDGE} up", h.port));
    }
    lines
}

/// A host's addresses and MAC; the kube-proxy stand-in on nodes; on-link Service routes on
/// the client so that its kernel resolves Service IPs on the LAN.
fn host_commands(h: &Host) -> Vec<String> {
    let mut lines = vec![
        "link set dev lo up".to_string(),
        format!("link set dev {HOST_IFACE} address {}", h.mac),
        format!(
            "addr add {}/{} dev {HOST_IFACE}",
            h.ipv4,
            LAN_V4.prefix_len()
        ),
        format!(
            "addr add {}/{} dev {HOST_IFACE} nodad",
            h.ipv6,
            LAN_V6.prefix_len()
        ),
        format!("link set dev {HOST_IFACE} up"),
    ];
    match h.role {
        Role::Node => lines.extend([
            format!("route add local {SERVICE_V4} dev lo"),
            format!("route add local {SERVICE_V6} dev lo"),
        ]),
        Role::Client => lines.extend([
            format!("route add {SERVICE_V4} dev {HOST_IFACE}"),
            format!("route add {SERVICE_V6} dev {HOST_IFACE}"),
        ]),
        Role::Router(_) | Role::ControlPlane => {}
    }
    lines
}

type Job = std::thread::JoinHandle<Result<(), LabError>>;

fn spawn_job(f: impl FnOnce() -> Result<(), LabError> + Send + 'static) -> Job {
    std::thread::spawn(f)
}

/// Waits for every job; the first error wins.
fn join_all(jobs: Vec<Job>) -> Result<(), LabError> {
    let mut result = Ok(());
    for job in jobs {
        let outcome = job
            .join()
            .unwrap_or_else(|_| Err(LabError::Panicked("a lab setup thread".into())));
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_service_ranges_as_local_and_the_client_on_link() {
        let t = Topology::new("p", 1, false).unwrap();
        let node = host_commands(&t.nodes[0]);
        assert!(node.contains(&"route add local 192.168.5.0/24 dev lo".to_string()));
        assert!(node.contains(&"route add local fd00:5::/64 dev lo".to_string()));
        let client = host_commands(&t.client);
        assert!(client.contains(&"route add 192.168.5.0/24 dev eth0".to_string()));
        assert!(client.contains(&"route add fd00:5::/64 dev eth0".to_string()));
        assert!(client.iter().any(|l| l.ends_with("nodad")));
    }

    #[test]
    fn only_nodes_ignore_arp_for_addresses_not_on_the_interface() {
        assert!(host_sysctls(Role::Node).contains(&("net/ipv4/conf/all/arp_ignore", "1")));
        assert!(
            !host_sysctls(Role::Client)
                .iter()
                .any(|(k, _)| k.contains("arp_ignore"))
        );
    }

    #[test]
    fn every_host_gets_a_bridge_port_with_its_eth0_in_its_namespace() {
        let t = Topology::new("p", 2, true).unwrap();
        let lines = lan_commands(&t);
        for h in t.hosts() {
            assert!(lines.contains(&format!(
                "link add name {} type veth peer name eth0 netns {}",
                h.port, h.netns
            )));
        }
    }
}
