//! The controller in the lab: the real `ferrolb-controller` process against
//! the lab's API server, configured with the seed tutorial's ConfigMap.
//! Needs root and iproute2 (the lab); fails, never skips, when they are missing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferrolb_e2e::cluster::{Cluster, http_get, lb_service, spawn_controller};
use ferrolb_e2e::lab::{Lab, LabConfig};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

/// The seed tutorial's layer-2 pool (001_*.txt).
const TUTORIAL: &str = "address-pools:\n- name: my-ip-space\n  protocol: layer2\n  addresses:\n  - 192.168.5.5-192.168.5.9\n";

/// The tutorial's pool plus a second, manual one and a dual-stack one.
const THREE_POOLS: &str = "address-pools:
- name: my-ip-space
  protocol: layer2
  addresses:
  - 192.168.5.5-192.168.5.9
- name: production-public-ips
  protocol: layer2
  auto-assign: false
  addresses:
  - 192.168.5.64/29
- name: dual
  protocol: layer2
  auto-assign: false
  addresses:
  - 192.168.5.128/28
  - fd00:5::100/124
";

struct Env {
    lab: Lab,
    cluster: Cluster,
    controller: usize,
}

impl Env {
    /// A lab with a control plane (no routers) and the controller running on `config`.
    fn up(config: &str) -> Env {
        let mut lab =
            Lab::up(&LabConfig::control_plane_only()).expect("lab up (needs root and iproute2)");
        let cluster = Cluster::new(lab.control_plane().expect("control plane"));
        cluster.apply_config(config).expect("apply the ConfigMap");
        let controller = spawn_controller(&mut lab, &[]).expect("start ferrolb-controller");
        Env {
            lab,
            cluster,
            controller,
        }
    }

    fn ip_of(&self, name: &str) -> Vec<IpAddr> {
        self.cluster
            .wait_for_ips("default", name, WAIT, |ips| !ips.is_empty())
            .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", self.controller_log()))
    }

    fn controller_log(&self) -> String {
        self.lab
            .processes()
            .get(self.controller)
            .map(|p| p.log())
            .unwrap_or_default()
    }

    fn metrics(&self) -> String {
        let cp = &self.lab.topology().control_plane;
        let addr = SocketAddr::new(IpAddr::V4(cp.ipv4), 7472);
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            match http_get(&cp.netns, addr, "/metrics") {
                Ok(body) => return body,
                Err(e) if std::time::Instant::now() > deadline => panic!("metrics: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn restart_controller(&mut self) {
        self.lab
            .process(self.controller)
            .expect("controller process")
            .kill()
            .expect("SIGKILL the controller");
        self.controller = spawn_controller(&mut self.lab, &[]).expect("restart ferrolb-controller");
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

#[test]
fn plain_service_gets_the_first_tutorial_address_and_an_event() {
    let env = Env::up(TUTORIAL);
    env.cluster
        .create_service(&lb_service("myapp-svc", &[80], &[]))
        .unwrap();
    assert_eq!(env.ip_of("myapp-svc"), vec![ip("192.168.5.5")]);
    let message = env
        .cluster
        .wait_for_event("default", "myapp-svc", "IPAllocated", WAIT)
        .unwrap();
    assert!(message.contains("192.168.5.5"), "{message}");
    let metrics = env.metrics();
    for line in [
        "metallb_allocator_addresses_total{pool=\"my-ip-space\"} 5.0",
        "metallb_allocator_addresses_in_use_total{pool=\"my-ip-space\"} 1.0",
        "metallb_k8s_client_config_loaded_bool 1",
        "metallb_k8s_client_config_stale_bool 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
}

#[test]
fn address_pool_annotation_picks_the_pool() {
    let env = Env::up(THREE_POOLS);
    // Both annotation prefixes; one after the other so the order is known.
    for (prefix, want) in [
        ("metallb.universe.tf", "192.168.5.64"),
        ("metallb.io", "192.168.5.65"),
    ] {
        let name = format!("nginx-{}", prefix.replace('.', "-"));
        let annotation = format!("{prefix}/address-pool");
        env.cluster
            .create_service(&lb_service(
                &name,
                &[80],
                &[(&annotation, "production-public-ips")],
            ))
            .unwrap();
        assert_eq!(env.ip_of(&name), vec![ip(want)], "{annotation}");
    }
    env.cluster
        .create_service(&lb_service(
            "bad-pool",
            &[80],
            &[("metallb.universe.tf/address-pool", "nope")],
        ))
        .unwrap();
    let message = env
        .cluster
        .wait_for_event("default", "bad-pool", "AllocationFailed", WAIT)
        .unwrap();
    assert!(message.contains("nope"), "{message}");
}

#[test]
fn sharing_key_with_disjoint_ports_shares_and_same_port_does_not() {
    let env = Env::up(TUTORIAL);
    let key = ("metallb.universe.tf/allow-shared-ip", "192.168.5.9");
    let want = ("metallb.universe.tf/loadBalancerIPs", "192.168.5.9");
    env.cluster
        .create_service(&lb_service("myapp-svc", &[80], &[key, want]))
        .unwrap();
    env.cluster
        .create_service(&lb_service("webapp-svc-2", &[443], &[key, want]))
        .unwrap();
    assert_eq!(env.ip_of("myapp-svc"), vec![ip("192.168.5.9")]);
    assert_eq!(env.ip_of("webapp-svc-2"), vec![ip("192.168.5.9")]);

    // Both on tcp/80 with the same key: they may not share.
    let other = ("metallb.universe.tf/allow-shared-ip", "other");
    env.cluster
        .create_service(&lb_service("a80", &[80], &[other]))
        .unwrap();
    let a = env.ip_of("a80");
    env.cluster
        .create_service(&lb_service("b80", &[80], &[other]))
        .unwrap();
    let b = env.ip_of("b80");
    assert_ne!(a, b, "tcp/80 twice must not share");
}

#[test]
fn load_balancer_ip_inside_the_pool_is_honoured_and_outside_fails() {
    let env = Env::up(TUTORIAL);
    let mut inside = lb_service("inside", &[80], &[]);
    inside.spec.as_mut().unwrap().load_balancer_ip = Some("192.168.5.8".into());
    env.cluster.create_service(&inside).unwrap();
    assert_eq!(env.ip_of("inside"), vec![ip("192.168.5.8")]);

    let mut outside = lb_service("outside", &[80], &[]);
    outside.spec.as_mut().unwrap().load_balancer_ip = Some("192.168.5.200".into());
    env.cluster.create_service(&outside).unwrap();
    let message = env
        .cluster
        .wait_for_event("default", "outside", "AllocationFailed", WAIT)
        .unwrap();
    assert!(message.contains("192.168.5.200"), "{message}");
    assert!(
        env.cluster
            .service_ips("default", "outside")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn sixth_service_waits_for_a_freed_address() {
    let env = Env::up(TUTORIAL);
    for i in 0..5 {
        env.cluster
            .create_service(&lb_service(&format!("s{i}"), &[80], &[]))
            .unwrap();
    }
    for i in 0..5 {
        env.ip_of(&format!("s{i}"));
    }
    env.cluster
        .create_service(&lb_service("sixth", &[80], &[]))
        .unwrap();
    let message = env
        .cluster
        .wait_for_event("default", "sixth", "AllocationFailed", WAIT)
        .unwrap();
    assert!(
        message.contains("my-ip-space")
            || message.contains("exhausted")
            || message.contains("no available"),
        "{message}"
    );
    let freed = env.cluster.service_ips("default", "s2").unwrap();
    env.cluster.delete_service("default", "s2").unwrap();
    assert_eq!(env.ip_of("sixth"), freed);
}

#[test]
fn dual_stack_service_gets_one_address_of_each_family() {
    let env = Env::up(THREE_POOLS);
    let mut svc = lb_service(
        "dual",
        &[80],
        &[("metallb.universe.tf/address-pool", "dual")],
    );
    let spec = svc.spec.as_mut().unwrap();
    spec.ip_family_policy = Some("RequireDualStack".into());
    spec.ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
    env.cluster.create_service(&svc).unwrap();
    let ips = env
        .cluster
        .wait_for_ips("default", "dual", WAIT, |ips| ips.len() == 2)
        .unwrap();
    assert_eq!(ips, vec![ip("192.168.5.128"), ip("fd00:5::100")]);
}

#[test]
fn config_orphaning_an_ip_is_refused_and_ips_stay() {
    let env = Env::up(TUTORIAL);
    env.cluster
        .create_service(&lb_service("keep", &[80], &[]))
        .unwrap();
    let before = env.ip_of("keep");
    env.cluster
        .apply_config("address-pools:\n- name: elsewhere\n  protocol: layer2\n  addresses:\n  - 192.168.5.100/30\n")
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !env
        .metrics()
        .lines()
        .any(|l| l == "metallb_k8s_client_config_stale_bool 1")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "config never marked stale:\n{}",
            env.controller_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.cluster.service_ips("default", "keep").unwrap(), before);
    // The old config is still in force: a new Service gets an address of it.
    env.cluster
        .create_service(&lb_service("new", &[80], &[]))
        .unwrap();
    assert_eq!(env.ip_of("new"), vec![ip("192.168.5.6")]);
    assert!(env.controller_log().contains("orphan"), "the log says why");
}

#[test]
fn type_change_to_cluster_ip_frees_the_address() {
    let env = Env::up(TUTORIAL);
    env.cluster
        .create_service(&lb_service("web", &[80], &[]))
        .unwrap();
    assert_eq!(env.ip_of("web"), vec![ip("192.168.5.5")]);
    env.cluster
        .patch_service("default", "web", json!({ "spec": { "type": "ClusterIP" } }))
        .unwrap();
    env.cluster
        .wait_for_ips("default", "web", WAIT, |ips| ips.is_empty())
        .unwrap();
    env.cluster
        .wait_for_event("default", "web", "ClearAssignment", WAIT)
        .unwrap();
    env.cluster
        .create_service(&lb_service("next", &[80], &[]))
        .unwrap();
    assert_eq!(env.ip_of("next"), vec![ip("192.168.5.5")]);
}

#[test]
fn killed_and_restarted_controller_changes_no_ip() {
    let mut env = Env::up(TUTORIAL);
    for name in ["a", "b", "c"] {
        env.cluster
            .create_service(&lb_service(name, &[80], &[]))
            .unwrap();
        env.ip_of(name);
    }
    // Free the first address so that a controller that forgot the state would move "b" or "c".
    env.cluster.delete_service("default", "a").unwrap();
    let before = env.cluster.all_service_ips().unwrap();
    env.restart_controller();
    env.cluster
        .create_service(&lb_service("d", &[80], &[]))
        .unwrap();
    assert_eq!(
        env.ip_of("d"),
        vec![ip("192.168.5.5")],
        "the freed address, not a held one"
    );
    let after = env.cluster.all_service_ips().unwrap();
    for (name, ips) in &before {
        assert_eq!(after.get(name), Some(ips), "{name} kept its IPs");
    }
}

#[test]
fn api_server_restarted_under_the_controller() {
    let mut env = Env::up(TUTORIAL);
    env.cluster
        .create_service(&lb_service("before", &[80], &[]))
        .unwrap();
    assert_eq!(env.ip_of("before"), vec![ip("192.168.5.5")]);
    env.lab.restart_apiserver().expect("restart the API server");
    // The controller's watches broke and got 410 on resuming; it re-lists and carries on.
    env.cluster
        .create_service(&lb_service("after", &[80], &[]))
        .unwrap();
    assert_eq!(env.ip_of("after"), vec![ip("192.168.5.6")]);
    assert_eq!(
        env.cluster.service_ips("default", "before").unwrap(),
        vec![ip("192.168.5.5")]
    );
    assert!(
        env.lab.processes()[env.controller].pid().is_some(),
        "the controller is still the same process"
    );
}

/// The controller's permissions from manifests/ferrolb.yaml, as an admin edits them.
fn set_controller_cluster_role(env: &Env, rules: serde_json::Value) {
    env.cluster
        .control_plane()
        .run(move |client| async move {
            let api: kube::Api<k8s_openapi::api::rbac::v1::ClusterRole> = kube::Api::all(client);
            api.patch(
                "metallb-system:controller",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({ "rules": rules })),
            )
            .await
        })
        .unwrap()
        .unwrap();
}

/// The rules of the controller's ClusterRole as the manifest has them.
fn manifest_controller_rules() -> serde_json::Value {
    let text =
        std::fs::read_to_string(ferrolb_e2e::lab::identity::manifests_dir().join("ferrolb.yaml"))
            .unwrap();
    ferrolb_e2e::lab::identity::objects_of(&text)
        .unwrap()
        .into_iter()
        .find(|o| {
            o["kind"] == "ClusterRole" && o["metadata"]["name"] == "metallb-system:controller"
        })
        .expect("the controller's ClusterRole")["rules"]
        .clone()
}

/// The controller runs with its own ServiceAccount's token: without the manifest's
/// `services/status` rule its status write is refused (403), the log names the refusal,
/// the IP it already gave stays, and once the rule is back the pending Service gets its IP.
#[test]
fn controller_refused_a_verb_logs_the_403_keeps_its_ips_and_recovers() {
    let env = Env::up(TUTORIAL);
    env.cluster
        .create_service(&lb_service("kept", &[80], &[]))
        .unwrap();
    assert_eq!(env.ip_of("kept"), vec![ip("192.168.5.5")]);
    let full = manifest_controller_rules();
    let without_status: Vec<serde_json::Value> = full
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resources"] != json!(["services/status"]))
        .cloned()
        .collect();
    assert_eq!(without_status.len() + 1, full.as_array().unwrap().len());
    set_controller_cluster_role(&env, json!(without_status));
    env.cluster
        .create_service(&lb_service("pending", &[80], &[]))
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let wanted = "cannot patch resource \"services/status\"";
    while !env.controller_log().contains(wanted) {
        assert!(
            std::time::Instant::now() < deadline,
            "no refusal in the controller log:\n{}",
            env.controller_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = env.controller_log();
    assert!(log.contains("status update failed"), "{log}");
    assert!(
        log.contains("system:serviceaccount:metallb-system:controller"),
        "{log}"
    );
    assert!(
        env.cluster
            .service_ips("default", "pending")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        env.cluster.service_ips("default", "kept").unwrap(),
        vec![ip("192.168.5.5")]
    );
    set_controller_cluster_role(&env, full);
    assert_eq!(env.ip_of("pending"), vec![ip("192.168.5.6")]);
    assert_eq!(
        env.cluster.service_ips("default", "kept").unwrap(),
        vec![ip("192.168.5.5")]
    );
}

/// What the manifests deliberately do not grant is refused with the real 403 Status: the
/// controller may not change a Service's spec or delete it, nor touch another namespace's
/// Secrets; the speaker may not write Service status.
#[test]
fn service_account_tokens_get_only_what_the_manifests_grant() {
    use ferrolb_e2e::lab::identity::Identity;
    use k8s_openapi::api::core::v1::{Secret, Service};
    let env = Env::up(TUTORIAL);
    env.cluster
        .create_service(&lb_service("web", &[80], &[]))
        .unwrap();
    env.ip_of("web");
    let as_controller = env.lab.control_plane_as(Identity::Controller).unwrap();
    let as_speaker = env.lab.control_plane_as(Identity::Speaker).unwrap();
    let refusals = as_controller
        .run(|client| async move {
            let services: kube::Api<Service> = kube::Api::namespaced(client.clone(), "default");
            let listed = services.list(&Default::default()).await.map(|l| {
                l.items
                    .iter()
                    .any(|s| s.metadata.name.as_deref() == Some("web"))
            });
            let patched = services
                .patch(
                    "web",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
                )
                .await
                .err();
            let deleted = services.delete("web", &Default::default()).await.err();
            let secrets: kube::Api<Secret> = kube::Api::namespaced(client, "default");
            let other_ns = secrets.get("anything").await.err();
            (listed, patched, deleted, other_ns)
        })
        .unwrap();
    assert!(refusals.0.unwrap(), "the controller may list Services");
    for (what, error, text) in [
        (
            "patch",
            refusals.1,
            "cannot patch resource \"services\" in API group \"\" in the namespace \"default\"",
        ),
        (
            "delete",
            refusals.2,
            "cannot delete resource \"services\" in API group \"\" in the namespace \"default\"",
        ),
        (
            "secret",
            refusals.3,
            "cannot get resource \"secrets\" in API group \"\" in the namespace \"default\"",
        ),
    ] {
        match error {
            Some(kube::Error::Api(s)) => {
                assert_eq!(s.code, 403, "{what}: {s:?}");
                assert_eq!(s.reason, "Forbidden", "{what}");
                assert!(s.message.contains(text), "{what}: {}", s.message);
                assert!(
                    s.message
                        .contains("User \"system:serviceaccount:metallb-system:controller\""),
                    "{what}: {}",
                    s.message
                );
            }
            other => panic!("{what}: expected 403, got {other:?}"),
        }
    }
    let speaker = as_speaker
        .run(|client| async move {
            kube::Api::<Service>::namespaced(client, "default")
                .patch_status(
                    "web",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(json!({"status": {"loadBalancer": {}}})),
                )
                .await
                .err()
        })
        .unwrap();
    match speaker {
        Some(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message
                    .contains("cannot patch resource \"services/status\""),
                "{}",
                s.message
            );
        }
        other => panic!("speaker status write: expected 403, got {other:?}"),
    }
    assert_eq!(
        env.cluster.service_ips("default", "web").unwrap(),
        vec![ip("192.168.5.5")]
    );
}
