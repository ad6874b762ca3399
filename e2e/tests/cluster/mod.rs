//! A ferrolb cluster on the lab, shared by the layer-2 and failover tests:
//! the lab's API server, the real `ferrolb-controller` in the control-plane
//! namespace and a real `ferrolb-speaker` on every node, plus the helpers
//! the tests need to drive the API and to see which node announces what.
//!
//! Which node announces an address is read from each speaker's own
//! `/metrics` (`metallb_speaker_announced`); the tests then check that the
//! LAN agrees (the client's neighbour entry, arping, TCP).

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ferrolb_e2e::lab::binaries::{self, require_tools};
use ferrolb_e2e::lab::identity::Identity;
use ferrolb_e2e::lab::process::Spawn;
use ferrolb_e2e::lab::topology::{Host, MacAddr};
use ferrolb_e2e::lab::{ApiServer, Lab, LabConfig, LabError, netns};
use ferrolb_e2e::probes::Probe;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Where ferrolb runs (MetalLB's namespace).
pub const NAMESPACE: &str = "metallb-system";
/// Where the tests' Services live.
pub const APPS: &str = "default";
/// The label that keeps a node from announcing.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// The port of every speaker's and the controller's metrics endpoint.
pub const METRICS_PORT: u16 = 7472;

/// The layer-2 tutorial's ConfigMap, with addresses inside the lab's
/// Service ranges (local on every node, on-link for the client).
pub const TUTORIAL_CONFIG: &str = "address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.168.5.240-192.168.5.250
  - fd00:5::240-fd00:5::250
";

/// How long the cluster may take to converge after a change.
pub const CONVERGE: Duration = Duration::from_secs(15);

/// The lab with ferrolb running on it.
pub struct Cluster {
    /// The lab (teardown on drop).
    pub lab: Lab,
    /// The lab's process index of each node's running speaker.
    speakers: BTreeMap<String, usize>,
}

impl Cluster {
    /// A 3-node lab with the controller, a speaker per node and `config` as
    /// the `config` ConfigMap; returns once every speaker is ready and sees
    /// all the others. Fails loudly without root or the lab's tools.
    pub fn up(config: &str) -> Self {
        Self::start(
            config,
            false,
            &[
                ("ip", "iproute2"),
                ("arping", "arping"),
                ("ndisc6", "ndisc6"),
            ],
        )
    }

    /// Like [`Cluster::up`], but `before` runs on the API server after the
    /// config is applied and before ferrolb starts (objects an earlier
    /// MetalLB left behind, say).
    pub fn up_after(config: &str, before: impl FnOnce(&Cluster)) -> Self {
        Self::start_after(
            config,
            false,
            &[
                ("ip", "iproute2"),
                ("arping", "arping"),
                ("ndisc6", "ndisc6"),
            ],
            before,
        )
    }

    /// A 3-node lab (with router namespaces or not) running the controller
    /// and a speaker per node on `config`, once every speaker has converged.
    fn start(config: &str, routers: bool, tools: &[(&str, &str)]) -> Self {
        Self::start_after(config, routers, tools, |_| {})
    }

    fn start_after(
        config: &str,
        routers: bool,
        tools: &[(&str, &str)],
        before: impl FnOnce(&Cluster),
    ) -> Self {
        require_tools(tools).unwrap_or_else(|e| panic!("{e}"));
        let lab = Lab::up(&LabConfig {
            nodes: 3,
            routers,
            control_plane: Some(ApiServer::from_env()),
            ..LabConfig::default()
        })
        .unwrap_or_else(|e| panic!("lab up (needs root and iproute2): {e}"));
        let mut cluster = Cluster {
            lab,
            speakers: BTreeMap::new(),
        };
        cluster.apply_config(config);
        before(&cluster);
        cluster.start_controller();
        let names: Vec<String> = cluster.nodes().iter().map(|n| n.name.clone()).collect();
        for node in &names {
            cluster.start_speaker(node);
        }
        cluster.wait_converged();
        cluster
    }

    /// The nodes.
    pub fn nodes(&self) -> Vec<Host> {
        self.lab.nodes().to_vec()
    }

    /// Node `name`.
    pub fn node(&self, name: &str) -> Host {
        self.lab
            .node(name)
            .unwrap_or_else(|| panic!("no node {name}"))
            .clone()
    }

    /// The MAC of node `name`'s LAN interface.
    pub fn mac(&self, name: &str) -> MacAddr {
        self.node(name).mac
    }

    /// Probes from the client.
    pub fn client(&self) -> Probe {
        self.lab.client_probe()
    }

    /// The client's namespace.
    pub fn client_netns(&self) -> String {
        self.lab.topology().client.netns.clone()
    }

    /// Where the nodes' TCP responders (and so the Services) answer.
    pub fn service_addr(&self, ip: IpAddr) -> SocketAddr {
        SocketAddr::new(ip, self.lab.responder_port())
    }

    /// Runs `f` with a kube client against the lab's API server.
    pub fn api<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce(kube::Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
        T: Send + 'static,
    {
        self.lab
            .control_plane()
            .expect("the lab has a control plane")
            .run(f)
            .unwrap_or_else(|e| panic!("lab API call: {e}"))
            .unwrap_or_else(|e| panic!("API server refused: {e}"))
    }

    fn start_controller(&mut self) {
        let netns = self.lab.topology().control_plane.netns.clone();
        let kubeconfig = self
            .lab
            .kubeconfig_of(Identity::Controller)
            .expect("the lab has the controller's kubeconfig")
            .display()
            .to_string();
        let binary = binaries::locate("ferrolb-controller").unwrap_or_else(|e| panic!("{e}"));
        let what = Spawn::new(binary, &["--metrics-addr", "0.0.0.0:7472"])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info");
        self.lab
            .spawn("ferrolb-controller", &netns, &what)
            .unwrap_or_else(|e| panic!("start the controller: {e}"));
    }

    fn kubeconfig(&self) -> String {
        self.lab
            .kubeconfig()
            .expect("the lab has a kubeconfig")
            .display()
            .to_string()
    }

    /// Starts (or restarts) the speaker of `node`.
    pub fn start_speaker(&mut self, node: &str) {
        let index = self
            .lab
            .spawn_ferrolb("ferrolb-speaker", node, &[])
            .unwrap_or_else(|e| panic!("start the speaker on {node}: {e}"));
        self.speakers.insert(node.to_string(), index);
    }

    /// SIGKILLs the speaker of `node` (a crash) and reaps it.
    pub fn kill_speaker(&mut self, node: &str) {
        self.speaker_process(node)
            .kill()
            .unwrap_or_else(|e| panic!("kill the speaker on {node}: {e}"));
    }

    /// SIGTERMs the speaker of `node` and waits until it exited.
    pub fn stop_speaker(&mut self, node: &str) {
        self.speaker_process(node)
            .stop()
            .unwrap_or_else(|e| panic!("stop the speaker on {node}: {e}"));
    }

    /// The pid of `node`'s speaker, while it runs.
    pub fn speaker_pid(&mut self, node: &str) -> u32 {
        self.speaker_process(node)
            .pid()
            .unwrap_or_else(|| panic!("the speaker on {node} is not running"))
    }

    /// The speaker's output so far (for failure messages).
    pub fn speaker_log(&mut self, node: &str) -> String {
        self.speaker_process(node).log()
    }

    fn speaker_process(&mut self, node: &str) -> &mut ferrolb_e2e::lab::process::NsProcess {
        let index = *self
            .speakers
            .get(node)
            .unwrap_or_else(|| panic!("no speaker on {node}"));
        self.lab.process(index).expect("a lab process")
    }

    /// Takes `node` off the LAN (its bridge port down) or puts it back:
    /// from the network's point of view, a crash of the whole node.
    pub fn set_node_link(&self, node: &str, up: bool) {
        let port = self.node(node).port;
        let state = if up { "up" } else { "down" };
        netns::ip_batch(
            Some(&self.lab.topology().lan_netns),
            &[format!("link set dev {port} {state}")],
        )
        .unwrap_or_else(|e| panic!("set {node}'s link {state}: {e}"));
    }

    /// Waits until every running speaker is ready and sees all the running
    /// speakers as live members.
    pub fn wait_converged(&mut self) {
        let running: Vec<String> = self
            .speakers
            .keys()
            .filter(|n| {
                let index = self.speakers[*n];
                self.lab.process(index).is_some_and(|p| p.is_running())
            })
            .cloned()
            .collect();
        let want = running.len().to_string();
        for node in &running {
            let result = self.wait_for(
                &format!("the speaker on {node} to see {want} members"),
                || {
                    let (status, _) = self.http_get(node, "/readyz")?;
                    if status != 200 {
                        return Ok(None);
                    }
                    let metrics = self.metrics(node)?;
                    Ok(metrics
                        .lines()
                        .any(|l| l == format!("ferrolb_speaker_members {want}"))
                        .then_some(()))
                },
            );
            if let Err(e) = result {
                let log = self.speaker_log(node);
                panic!("{e}\nspeaker log:\n{log}");
            }
        }
    }

    /// Polls `check` every 50 ms until it gives a value or [`CONVERGE`] passes.
    pub fn wait_for<T>(
        &self,
        what: &str,
        mut check: impl FnMut() -> Result<Option<T>, LabError>,
    ) -> Result<T, LabError> {
        let deadline = Instant::now() + CONVERGE;
        let mut last = String::from("nothing yet");
        loop {
            match check() {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{what} (last error: {last})"),
                    after: CONVERGE,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` on `node`'s metrics port, from the client: status and body.
    pub fn http_get(&self, node: &str, path: &str) -> Result<(u16, String), LabError> {
        let addr = SocketAddr::new(IpAddr::V4(self.node(node).ipv4), METRICS_PORT);
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        let path = path.to_string();
        netns::run_in(&self.client_netns(), move || {
            let io = |e| LabError::io(format!("GET {path} from {addr}"), e);
            let mut stream =
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(io)?;
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(io)?;
            stream.write_all(request.as_bytes()).map_err(io)?;
            let mut response = String::new();
            stream.read_to_string(&mut response).map_err(io)?;
            let status = response
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let body = response
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default();
            Ok((status, body))
        })?
    }

    /// `node`'s speaker metrics text.
    pub fn metrics(&self, node: &str) -> Result<String, LabError> {
        let (status, body) = self.http_get(node, "/metrics")?;
        if status == 200 {
            Ok(body)
        } else {
            Err(LabError::Api(format!(
                "/metrics on {node} answered {status}"
            )))
        }
    }

    /// For each running speaker that answers, the Services it says it
    /// announces `ip` for (`metallb_speaker_announced`).
    pub fn announcers(&self, ip: IpAddr) -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        for node in self.nodes() {
            let Ok(text) = self.metrics(&node.name) else {
                continue;
            };
            let services = announced_services(&text, ip);
            if !services.is_empty() {
                out.insert(node.name.clone(), services);
            }
        }
        out
    }

    /// Waits until exactly one node announces `ip` and `accept` likes it;
    /// returns that node.
    pub fn wait_announcer(&self, ip: IpAddr, accept: impl Fn(&str) -> bool) -> String {
        let mut last = BTreeMap::new();
        self.wait_for(&format!("exactly one announcer of {ip}"), || {
            last = self.announcers(ip);
            Ok(match last.keys().collect::<Vec<_>>().as_slice() {
                [only] if accept(only) => Some(only.to_string()),
                _ => None,
            })
        })
        .unwrap_or_else(|e| panic!("{e}; announcers: {last:?}"))
    }

    /// Waits until no node announces `ip`.
    pub fn wait_unannounced(&self, ip: IpAddr) {
        let mut last = BTreeMap::new();
        self.wait_for(&format!("nobody to announce {ip}"), || {
            last = self.announcers(ip);
            Ok(last.is_empty().then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}; announcers: {last:?}"));
    }

    /// Replaces the `config` ConfigMap.
    pub fn apply_config(&self, text: &str) {
        let cm: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": NAMESPACE},
            "data": {"config": text},
        }))
        .expect("a ConfigMap");
        self.api(move |client| async move {
            let api = Api::<ConfigMap>::namespaced(client, NAMESPACE);
            match api.get_opt("config").await? {
                Some(old) => {
                    let mut new = cm;
                    new.metadata.resource_version = old.metadata.resource_version;
                    api.replace("config", &PostParams::default(), &new).await
                }
                None => api.create(&PostParams::default(), &cm).await,
            }
            .map(|_| ())
        });
    }

    /// Creates `service` in [`APPS`].
    pub fn create_service(&self, service: Service) {
        self.api(move |client| async move {
            Api::<Service>::namespaced(client, APPS)
                .create(&PostParams::default(), &service)
                .await
                .map(|_| ())
        });
    }

    /// Writes `ip` into `service`'s status, as another load balancer had.
    pub fn set_status_ip(&self, service: &str, ip: IpAddr) {
        let service = service.to_string();
        self.api(move |client| async move {
            Api::<Service>::namespaced(client, APPS)
                .patch_status(
                    &service,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}}),
                    ),
                )
                .await
                .map(|_| ())
        });
    }

    /// Makes `service`'s one EndpointSlice list an endpoint on each of
    /// `nodes`, with its `ready` condition.
    pub fn set_endpoints(&self, service: &str, nodes: &[(&str, bool)]) {
        let slice = endpoint_slice(service, nodes);
        let name = slice.metadata.name.clone().expect("a name");
        self.api(move |client| async move {
            let api = Api::<EndpointSlice>::namespaced(client, APPS);
            match api.get_opt(&name).await? {
                Some(old) => {
                    let mut new = slice;
                    new.metadata.resource_version = old.metadata.resource_version;
                    api.replace(&name, &PostParams::default(), &new).await
                }
                None => api.create(&PostParams::default(), &slice).await,
            }
            .map(|_| ())
        });
    }

    /// Waits for the controller to give `service` its addresses (status order).
    pub fn wait_ips(&self, service: &str, count: usize) -> Vec<IpAddr> {
        let name = service.to_string();
        self.wait_for(
            &format!("{count} address(es) for Service {service}"),
            || {
                let name = name.clone();
                let svc = self.api(move |client| async move {
                    Api::<Service>::namespaced(client, APPS).get(&name).await
                });
                let ips: Vec<IpAddr> = svc
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|lb| lb.ingress)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| i.ip.as_deref()?.parse().ok())
                    .collect();
                Ok((ips.len() == count).then_some(ips))
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sets (`Some`) or removes (`None`) a label on Node `node`.
    pub fn set_node_label(&self, node: &str, key: &str, value: Option<&str>) {
        let patch = json!({"metadata": {"labels": {key: value}}});
        let node = node.to_string();
        self.api(move |client| async move {
            Api::<Node>::all(client)
                .patch(&node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        });
    }

    /// The notes of the `nodeAssigned` Events on Service `service`.
    pub fn node_assigned_notes(&self, service: &str) -> Vec<String> {
        self.event_notes(|e| {
            e.reason.as_deref() == Some("nodeAssigned")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(service)
        })
    }

    /// The notes of the events.k8s.io Events of [`APPS`] (where a
    /// cluster-scoped object's Events go too) that `select` picks.
    pub fn event_notes(&self, select: impl Fn(&Event) -> bool) -> Vec<String> {
        let events = self.api(|client| async move {
            Api::<Event>::namespaced(client, APPS)
                .list(&ListParams::default())
                .await
        });
        events
            .items
            .into_iter()
            .filter(|e| select(e))
            .filter_map(|e| e.note)
            .collect()
    }

    /// Waits until the client's neighbour entry for `ip` holds `node`'s MAC,
    /// sending traffic to `ip` meanwhile as a real client would.
    pub fn wait_client_entry(&self, ip: IpAddr, node: &str) {
        let probe = self.client();
        let want = self.mac(node);
        let mut last = None;
        self.wait_for(
            &format!("the client's entry for {ip} to hold {node}'s MAC"),
            || {
                let r = probe.resolve(ip, Duration::from_millis(200))?;
                let ok = r.mac == Some(want);
                last = Some(r);
                Ok(ok.then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{e}; last entry: {last:?}"));
    }

    /// Waits until a TCP connection from the client to `ip` is answered by `node`.
    pub fn wait_tcp(&self, ip: IpAddr, node: &str) {
        let probe = self.client();
        let addr = self.service_addr(ip);
        let mut last = String::new();
        self.wait_for(&format!("TCP to {addr} answered by {node}"), || {
            let name = probe.tcp_name(addr, Duration::from_millis(500))?;
            let ok = name == node;
            last = name;
            Ok(ok.then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}; last answer: {last:?}"));
    }

    /// The MACs answering an ARP request / Neighbor Solicitation for `ip`
    /// sent straight onto the LAN, with their owners.
    pub fn solicit(&self, ip: IpAddr) -> Vec<(MacAddr, Option<String>)> {
        self.client()
            .solicit(ip, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("solicit {ip}: {e}"))
    }
}

/// The Services the metrics text says are announced at `ip`.
pub fn announced_services(metrics: &str, ip: IpAddr) -> BTreeSet<String> {
    let want = format!("ip=\"{ip}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("metallb_speaker_announced{") && l.contains(&want))
        .filter(|l| l.ends_with(" 1"))
        .filter_map(|l| {
            let start = l.find("service=\"")? + "service=\"".len();
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_string())
        })
        .collect()
}

/// A LoadBalancer Service on `ports` (TCP), Cluster policy, no selector.
pub fn lb_service(name: &str, ports: &[u16]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(APPS.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".to_string()),
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(format!("p{p}")),
                        port: i32::from(*p),
                        protocol: Some("TCP".to_string()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The EndpointSlice of `service` with an endpoint on each of `nodes`.
pub fn endpoint_slice(service: &str, nodes: &[(&str, bool)]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-lab")),
            namespace: Some(APPS.to_string()),
            labels: Some(
                [(
                    "kubernetes.io/service-name".to_string(),
                    service.to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_string(),
        endpoints: Some(
            nodes
                .iter()
                .enumerate()
                .map(|(i, (node, ready))| Endpoint {
                    addresses: vec![format!("10.244.{}.10", i + 1)],
                    node_name: Some(node.to_string()),
                    conditions: Some(EndpointConditions {
                        ready: Some(*ready),
                        ..EndpointConditions::default()
                    }),
                    ..Endpoint::default()
                })
                .collect(),
        ),
        ports: None,
    }
}

/// Median and spread of `samples` (sorted in place), in milliseconds.
pub fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    match samples {
        [] => "no samples".to_string(),
        _ => format!(
            "n={} median {:.0} ms, min {:.0} ms, p90 {:.0} ms, max {:.0} ms",
            samples.len(),
            ms(samples[samples.len() / 2]),
            ms(samples[0]),
            ms(samples[(samples.len() * 9 / 10).min(samples.len() - 1)]),
            ms(samples[samples.len() - 1]),
        ),
    }
}

/// Helpers of the BGP tests.
impl Cluster {
    /// Like [`Cluster::up`], on a lab that also has the router namespaces
    /// (BIRD, FRR, GoBGP); starting a router is up to the test. Fails
    /// loudly without root or the lab's tools.
    pub fn up_with_routers(config: &str) -> Self {
        Self::start(config, true, &[("ip", "iproute2")])
    }

    /// Deletes Service `service` from [`APPS`].
    pub fn delete_service(&self, service: &str) {
        let name = service.to_string();
        self.api(move |client| async move {
            Api::<Service>::namespaced(client, APPS)
                .delete(&name, &kube::api::DeleteParams::default())
                .await
                .map(|_| ())
        });
    }

    /// Waits until every node in `nodes` says it announces `ip` over BGP
    /// (`metallb_speaker_announced{protocol="bgp"}`) and no other node does.
    pub fn wait_bgp_announcers(&self, ip: IpAddr, nodes: &[&str]) {
        let want: BTreeSet<String> = nodes.iter().map(|n| n.to_string()).collect();
        let mut last = BTreeSet::new();
        self.wait_for(&format!("{want:?} to announce {ip} over BGP"), || {
            last = self
                .nodes()
                .iter()
                .filter(|n| {
                    self.metrics(&n.name).is_ok_and(|text| {
                        text.lines().any(|l| {
                            l.starts_with("metallb_speaker_announced{")
                                && l.contains("protocol=\"bgp\"")
                                && l.contains(&format!("ip=\"{ip}\""))
                                && l.ends_with(" 1")
                        })
                    })
                })
                .map(|n| n.name.clone())
                .collect();
            Ok((last == want).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}; announcers: {last:?}"));
    }
}

/// What one status object says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    /// The object's name.
    pub name: String,
    /// `status.node`.
    pub node: String,
    /// `status.serviceName`.
    pub service: String,
    /// Its interfaces (ServiceL2Status) or peers (ServiceBGPStatus).
    pub detail: BTreeSet<String>,
}

/// (name, node, Service, detail) of a status object.
type RowParts = (Option<String>, String, String, BTreeSet<String>);

/// Helpers of the status object tests.
impl Cluster {
    /// The `ServiceL2Status` objects of [`APPS`].
    pub fn l2_statuses(&self) -> Vec<StatusRow> {
        self.statuses(|o: ferrolb_config::crd::ServiceL2Status| {
            let s = o.status.unwrap_or_default();
            let detail = s.interfaces.into_iter().map(|i| i.name).collect();
            (o.metadata.name, s.node, s.service_name, detail)
        })
    }

    /// The `ServiceBGPStatus` objects of [`APPS`].
    pub fn bgp_statuses(&self) -> Vec<StatusRow> {
        self.statuses(|o: ferrolb_config::crd::ServiceBgpStatus| {
            let s = o.status.unwrap_or_default();
            (
                o.metadata.name,
                s.node,
                s.service_name,
                s.peers.into_iter().collect(),
            )
        })
    }

    /// The objects of kind `K` in [`APPS`], read by `row` as (name, node,
    /// Service, detail).
    fn statuses<K>(&self, row: fn(K) -> RowParts) -> Vec<StatusRow>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        let list = self.api(|client| async move {
            Api::<K>::namespaced(client, APPS)
                .list(&ListParams::default())
                .await
        });
        list.items
            .into_iter()
            .map(|o| {
                let (name, node, service, detail) = row(o);
                StatusRow {
                    name: name.unwrap_or_default(),
                    node,
                    service,
                    detail,
                }
            })
            .collect()
    }

    /// Waits until `rows()` holds, for `service`, exactly one object per
    /// node in `nodes`, each saying `detail`.
    pub fn wait_statuses(
        &self,
        what: &str,
        rows: impl Fn(&Cluster) -> Vec<StatusRow>,
        service: &str,
        nodes: &[&str],
        detail: &BTreeSet<String>,
    ) {
        let want: BTreeSet<&str> = nodes.iter().copied().collect();
        let mut last = Vec::new();
        self.wait_for(
            &format!("the {what} objects of {service} to be {want:?} with {detail:?}"),
            || {
                last = rows(self);
                let mine: Vec<&StatusRow> = last.iter().filter(|r| r.service == service).collect();
                let seen: BTreeSet<&str> = mine.iter().map(|r| r.node.as_str()).collect();
                Ok((mine.len() == want.len()
                    && seen == want
                    && mine.iter().all(|r| &r.detail == detail))
                .then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{e}; objects: {last:?}"));
    }
}

/// What a `ferrolb` CLI run printed, and its exit code.
#[derive(Debug, Clone)]
pub struct CliRun {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Cluster {
    /// Runs the `ferrolb` CLI with `args` and the admin kubeconfig in the
    /// control-plane namespace, as an operator on that host would.
    pub fn ferrolb(&self, args: &[&str]) -> CliRun {
        let binary = binaries::locate("ferrolb").unwrap_or_else(|e| panic!("{e}"));
        let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        full.extend(["--kubeconfig".to_string(), self.kubeconfig()]);
        let netns = self.lab.topology().control_plane.netns.clone();
        let out = netns::run_in(&netns, move || {
            std::process::Command::new(&binary)
                .args(&full)
                .stdin(std::process::Stdio::null())
                .output()
        })
        .unwrap_or_else(|e| panic!("enter the control-plane namespace: {e}"))
        .unwrap_or_else(|e| panic!("run ferrolb {args:?}: {e}"));
        CliRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The router's AS and the nodes' in the BGP tests (eBGP).
pub const ROUTER_ASN: u32 = 64500;
/// See [`ROUTER_ASN`].
pub const NODE_ASN: u32 = 64512;

/// The dual-stack BGP pool of the BGP and BFD tests.
pub const BGP_POOL: &str = "address-pools:
- name: bgp
  protocol: bgp
  addresses:
  - 192.168.5.64/27
  - fd00:5::60/124
";

/// A lab host's IPv4 address.
pub fn v4(h: &Host) -> IpAddr {
    IpAddr::V4(h.ipv4)
}

/// A lab host's IPv6 address.
pub fn v6(h: &Host) -> IpAddr {
    IpAddr::V6(h.ipv6)
}

/// How the speakers peer with the lab's router.
#[derive(Debug, Clone, Copy)]
pub struct Peering {
    /// The hold time the peers propose.
    pub hold: Duration,
    /// A BFD profile on both sides: (interval in ms, detect multiplier).
    pub bfd: Option<(u32, u8)>,
    /// Graceful restart on both sides.
    pub graceful_restart: bool,
    /// How long the sessions may take to come up.
    pub session_timeout: Duration,
}

/// The ConfigMap: two peers (the router's IPv4 and IPv6 addresses), the
/// BFD profile `fast` when `peering` has one, and [`BGP_POOL`].
pub fn peers_config(router: &Host, peering: &Peering) -> String {
    let mut peer_extra = String::new();
    let mut profiles = String::new();
    if let Some((interval, multiplier)) = peering.bfd {
        peer_extra.push_str("  bfd-profile: fast\n");
        profiles = format!(
            "bfd-profiles:\n- name: fast\n  receive-interval: {interval}\n  transmit-interval: {interval}\n  detect-multiplier: {multiplier}\n"
        );
    }
    if peering.graceful_restart {
        peer_extra.push_str("  graceful-restart: true\n");
    }
    let peer = |address: IpAddr| {
        format!(
            "- peer-address: {address}\n  peer-asn: {ROUTER_ASN}\n  my-asn: {NODE_ASN}\n  hold-time: {}s\n{peer_extra}",
            peering.hold.as_secs()
        )
    };
    format!(
        "peers:\n{}{}{profiles}{BGP_POOL}",
        peer(IpAddr::V4(router.ipv4)),
        peer(IpAddr::V6(router.ipv6))
    )
}

/// Helpers of the BGP and BFD tests.
impl Cluster {
    /// A cluster whose three speakers peer with a `kind` router over IPv4
    /// and IPv6 as `peering` says (the router only listens); returns once
    /// every BGP session (and, with BFD, every BFD session) is up at the router.
    pub fn up_peered(
        kind: ferrolb_e2e::routers::RouterKind,
        peering: &Peering,
    ) -> (Self, Box<dyn ferrolb_e2e::routers::Router>, Vec<Host>) {
        use ferrolb_e2e::routers::{self, Neighbor, RouterConfig};
        let mut cluster = Self::up_with_routers(BGP_POOL);
        let router_host = cluster
            .lab
            .topology()
            .router(kind)
            .expect("the lab has router namespaces")
            .clone();
        let nodes = cluster.nodes();
        let mut config = RouterConfig::new(ROUTER_ASN, router_host.ipv4);
        for node in &nodes {
            for address in [v4(node), v6(node)] {
                let mut n = Neighbor::new(address, NODE_ASN).passive();
                if let Some((interval, multiplier)) = peering.bfd {
                    n = n.bfd(interval, multiplier);
                }
                if peering.graceful_restart {
                    n = n.graceful_restart();
                }
                config = config.neighbor(n);
            }
        }
        let router = cluster.lab.start_router(kind, config).unwrap_or_else(|e| {
            panic!("start {kind:?} (its Debian package must be installed): {e}")
        });
        cluster.apply_config(&peers_config(&router_host, peering));
        let timeout = peering.session_timeout;
        for node in &nodes {
            for address in [v4(node), v6(node)] {
                let mut log = |e| panic!("{e}\nspeaker log:\n{}", cluster.speaker_log(&node.name));
                routers::wait_established(router.as_ref(), address, timeout)
                    .unwrap_or_else(&mut log);
                if peering.bfd.is_some() {
                    routers::wait_bfd_up(router.as_ref(), address, timeout)
                        .unwrap_or_else(&mut log);
                }
            }
        }
        (cluster, router, nodes)
    }
}
