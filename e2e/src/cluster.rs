//! Kubernetes-level steps of the e2e tests, over the lab's API server: write
//! the config, create and change Services, wait for their IPs, read their
//! Events. Every call goes through [`ControlPlane::run`], so it works the same
//! against the test API server and a real cluster's.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::lab::LabError;
use crate::lab::api::ControlPlane;

/// The namespace ferrolb's config lives in.
pub const CONFIG_NAMESPACE: &str = "metallb-system";
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(50);

/// Kubernetes-level access to the lab's cluster.
#[derive(Clone, Debug)]
pub struct Cluster {
    cp: ControlPlane,
}

/// One Event on an object: reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenEvent {
    /// `IPAllocated`, `AllocationFailed`, ...
    pub reason: String,
    /// The human-readable note.
    pub message: String,
}

impl Cluster {
    /// Access through the lab's control plane.
    pub fn new(cp: &ControlPlane) -> Self {
        Self { cp: cp.clone() }
    }

    /// The control plane this goes through.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.cp
    }

    /// Create or replace the ConfigMap `metallb-system/config` with `config` as its key `config`.
    pub fn apply_config(&self, config: &str) -> Result<(), LabError> {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("config".into()),
                namespace: Some(CONFIG_NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("config".into(), config.to_string())])),
            ..ConfigMap::default()
        };
        self.cp.run(move |client| async move {
            let api: Api<ConfigMap> = Api::namespaced(client, CONFIG_NAMESPACE);
            let params = PatchParams::apply("ferrolb-e2e").force();
            api.patch("config", &params, &Patch::Apply(&cm))
                .await
                .map(|_| ())
                .map_err(LabError::from)
        })?
    }

    /// Create a Service.
    pub fn create_service(&self, service: &Service) -> Result<(), LabError> {
        let service = service.clone();
        self.cp.run(move |client| async move {
            let ns = service
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let api: Api<Service> = Api::namespaced(client, &ns);
            api.create(&PostParams::default(), &service)
                .await
                .map(|_| ())
                .map_err(LabError::from)
        })?
    }

    /// Apply a JSON merge patch to a Service (spec and metadata, not status).
    pub fn patch_service(
        &self,
        namespace: &str,
        name: &str,
        patch: serde_json::Value,
    ) -> Result<(), LabError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.cp.run(move |client| async move {
            let api: Api<Service> = Api::namespaced(client, &ns);
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(LabError::from)
        })?
    }

    /// Delete a Service.
    pub fn delete_service(&self, namespace: &str, name: &str) -> Result<(), LabError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.cp.run(move |client| async move {
            let api: Api<Service> = Api::namespaced(client, &ns);
            api.delete(&name, &DeleteParams::default())
                .await
                .map(|_| ())
                .map_err(LabError::from)
        })?
    }

    /// The IPs in a Service's `status.loadBalancer.ingress`.
    pub fn service_ips(&self, namespace: &str, name: &str) -> Result<Vec<IpAddr>, LabError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.cp.run(move |client| async move {
            let api: Api<Service> = Api::namespaced(client, &ns);
            let svc = api.get(&name).await?;
            Ok(ingress_ips(&svc))
        })?
    }

    /// Every Service's ingress IPs, by `namespace/name`.
    pub fn all_service_ips(&self) -> Result<BTreeMap<String, Vec<IpAddr>>, LabError> {
        self.cp.run(move |client| async move {
            let api: Api<Service> = Api::all(client);
            let list = api.list(&Default::default()).await?;
            Ok(list
                .items
                .iter()
                .map(|s| {
                    (
                        format!(
                            "{}/{}",
                            s.metadata.namespace.as_deref().unwrap_or_default(),
                            s.metadata.name.as_deref().unwrap_or_default()
                        ),
                        ingress_ips(s),
                    )
                })
                .collect())
        })?
    }

    /// Creates `count` LoadBalancer Services `svc-0`, `svc-1`, ... in
    /// `default` for the benchmarks (no node ports: the test API server has
    /// too few), each with an EndpointSlice with a ready endpoint on every
    /// node of `nodes`, a few dozen requests in flight.
    pub fn create_bench_services(&self, count: usize, nodes: &[String]) -> Result<(), LabError> {
        use futures::StreamExt;
        const IN_FLIGHT: usize = 32;
        let nodes = nodes.to_vec();
        self.cp
            .run(move |client| async move {
                let services: Api<Service> = Api::namespaced(client.clone(), "default");
                let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
                let results: Vec<Result<(), kube::Error>> = futures::stream::iter(0..count)
                    .map(|i| {
                        let (services, slices) = (services.clone(), slices.clone());
                        let name = format!("svc-{i}");
                        let mut svc = lb_service(&name, &[80], &[]);
                        if let Some(spec) = svc.spec.as_mut() {
                            spec.allocate_load_balancer_node_ports = Some(false);
                        }
                        let endpoints: Vec<_> = nodes
                            .iter()
                            .enumerate()
                            .map(|(k, n)| {
                                json!({
                                    "addresses": [format!("10.244.{k}.10")],
                                    "nodeName": n,
                                    "conditions": {"ready": true},
                                })
                            })
                            .collect();
                        let slice = serde_json::from_value::<EndpointSlice>(json!({
                            "metadata": {
                                "name": format!("{name}-bench"),
                                "namespace": "default",
                                "labels": {"kubernetes.io/service-name": name},
                            },
                            "addressType": "IPv4",
                            "endpoints": endpoints,
                        }));
                        async move {
                            let slice = slice.map_err(kube::Error::SerdeError)?;
                            slices.create(&PostParams::default(), &slice).await?;
                            services.create(&PostParams::default(), &svc).await?;
                            Ok(())
                        }
                    })
                    .buffer_unordered(IN_FLIGHT)
                    .collect()
                    .await;
                results.into_iter().collect::<Result<(), kube::Error>>()
            })?
            .map_err(LabError::from)
    }

    /// Waits until at least `count` Services of `default` have an address.
    pub fn wait_assigned(&self, count: usize, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let with_ip = self.cp.run(|client| async move {
                let list = Api::<Service>::namespaced(client, "default")
                    .list(&Default::default())
                    .await?;
                Ok::<usize, kube::Error>(
                    list.items
                        .iter()
                        .filter(|s| !ingress_ips(s).is_empty())
                        .count(),
                )
            })??;
            if with_ip >= count {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{count} Services with an address (last seen {with_ip})"),
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Wait until the Service's IPs satisfy `done`; returns them.
    pub fn wait_for_ips(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        done: impl Fn(&[IpAddr]) -> bool,
    ) -> Result<Vec<IpAddr>, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let ips = self.service_ips(namespace, name)?;
            if done(&ips) {
                return Ok(ips);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("Service {namespace}/{name} IPs (last seen {ips:?})"),
                    after: timeout,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The Events recorded on a Service (events.k8s.io/v1), oldest first.
    pub fn events(&self, namespace: &str, name: &str) -> Result<Vec<SeenEvent>, LabError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.cp.run(move |client| async move {
            let api: Api<Event> = Api::namespaced(client, &ns);
            let list = api.list(&Default::default()).await?;
            let mut events: Vec<_> = list
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&name))
                .collect();
            events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
            Ok(events
                .into_iter()
                .map(|e| SeenEvent {
                    reason: e.reason.unwrap_or_default(),
                    message: e.note.unwrap_or_default(),
                })
                .collect())
        })?
    }

    /// Wait for an Event with `reason` on the Service; returns its message.
    pub fn wait_for_event(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
        timeout: Duration,
    ) -> Result<String, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events(namespace, name)?;
            if let Some(e) = events.iter().find(|e| e.reason == reason) {
                return Ok(e.message.clone());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("a {reason} Event on {namespace}/{name} (seen: {events:?})"),
                    after: timeout,
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The IPs of a Service's status.
pub fn ingress_ips(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A Service of type LoadBalancer in `default` with TCP `ports` and `annotations`.
pub fn lb_service(name: &str, ports: &[u16], annotations: &[(&str, &str)]) -> Service {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ports: Vec<_> = ports
        .iter()
        .map(|p| json!({ "name": format!("p{p}"), "port": p, "protocol": "TCP" }))
        .collect();
    // Building from JSON keeps this readable; the shape is fixed, so it always parses.
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "default", "annotations": annotations },
        "spec": { "type": "LoadBalancer", "ports": ports, "selector": { "app": name } },
    }))
    .unwrap_or_default()
}

/// Start the real `ferrolb-controller` in the control-plane namespace (it
/// talks to the API server there); returns its process index in the lab.
pub fn spawn_controller(lab: &mut crate::Lab, extra_args: &[&str]) -> Result<usize, LabError> {
    let cp = lab.topology().control_plane.clone();
    let kubeconfig = lab
        .kubeconfig_of(crate::lab::identity::Identity::Controller)
        .ok_or_else(|| LabError::Missing("the lab has no control plane".into()))?
        .display()
        .to_string();
    let mut args = vec!["--metrics-addr", "0.0.0.0:7472"];
    args.extend_from_slice(extra_args);
    let what =
        crate::lab::process::Spawn::new(crate::lab::binaries::locate("ferrolb-controller")?, &args)
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info");
    lab.spawn("controller", &cp.netns, &what)
}

/// GET `path` over plain HTTP from inside `netns` (metrics, health).
pub fn http_get(netns: &str, addr: std::net::SocketAddr, path: &str) -> Result<String, LabError> {
    use std::io::{Read, Write};
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    crate::lab::netns::run_in(netns, move || {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| LabError::io(format!("connect {addr}"), e))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| LabError::io("set timeout", e))?;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| LabError::io(format!("write to {addr}"), e))?;
        let mut body = String::new();
        stream
            .read_to_string(&mut body)
            .map_err(|e| LabError::io(format!("read from {addr}"), e))?;
        Ok(body)
    })?
}
