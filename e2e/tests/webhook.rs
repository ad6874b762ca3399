//! The admission webhook in the lab: the real `ferrolb-controller` serves it, registers
//! itself in the installed ValidatingWebhookConfiguration (by URL: the lab has no Service
//! network), and `kubectl apply` of a bad pool is refused with exactly what `ferrolb validate`
//! prints; a change orphaning a Service's IP is refused naming it; with the controller stopped
//! nothing is blocked (failurePolicy Ignore). Same test on the test API server and a real one.
//! Needs root, iproute2 and kubectl; fails, never skips, when they are missing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_e2e::cluster::{Cluster, http_get, lb_service, spawn_controller};
use ferrolb_e2e::lab::{Lab, LabConfig, binaries};

const WAIT: Duration = Duration::from_secs(30);
const WEBHOOK_PORT: u16 = 9443;
/// The webhook entry for the metallb.io kinds in manifests/ferrolb.yaml.
const CRD_WEBHOOK: &str = "config.metallb.io";

fn pool(name: &str, address: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  namespace: metallb-system\nspec:\n  addresses:\n  - {address}\n"
    )
}

struct Env {
    lab: Lab,
    cluster: Cluster,
    controller: usize,
}

impl Env {
    fn up() -> Env {
        let mut lab =
            Lab::up(&LabConfig::control_plane_only()).expect("lab up (needs root and iproute2)");
        let cluster = Cluster::new(lab.control_plane().expect("control plane"));
        let cp = lab.topology().control_plane.ipv4;
        let addr = format!("{cp}:{WEBHOOK_PORT}");
        let url = format!("https://{addr}/validate");
        let controller =
            spawn_controller(&mut lab, &["--webhook-addr", &addr, "--webhook-url", &url])
                .expect("start ferrolb-controller");
        let env = Env {
            lab,
            cluster,
            controller,
        };
        env.wait_registered(&url);
        env.wait_ready();
        env
    }

    fn log(&self) -> String {
        self.lab
            .processes()
            .get(self.controller)
            .map(|p| p.log())
            .unwrap_or_default()
    }

    /// Until every webhook of the configuration carries our URL and a caBundle.
    fn wait_registered(&self, url: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = self
                .lab
                .kubectl(&[
                    "get",
                    "validatingwebhookconfiguration",
                    "ferrolb-webhook",
                    "-o",
                    "json",
                ])
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let hooks = v["webhooks"].as_array().cloned().unwrap_or_default();
            if hooks.len() == 2
                && hooks.iter().all(|h| {
                    h["clientConfig"]["url"] == url
                        && h["clientConfig"]["caBundle"]
                            .as_str()
                            .is_some_and(|b| !b.is_empty())
                })
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the controller did not register its webhook: {out}\ncontroller log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_ready(&self) {
        let cp = &self.lab.topology().control_plane;
        let addr = SocketAddr::new(IpAddr::V4(cp.ipv4), 7472);
        let deadline = Instant::now() + WAIT;
        while !http_get(&cp.netns, addr, "/readyz")
            .map(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"))
            .unwrap_or(false)
        {
            assert!(
                Instant::now() < deadline,
                "controller not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kubectl apply -f` of `text`: Ok(stdout) or Err(stderr).
    fn apply(&self, file: &str, text: &str) -> Result<String, String> {
        let path = self.lab.run_dir().join(file);
        std::fs::write(&path, text).unwrap();
        self.lab
            .kubectl(&["apply", "-f", &path.display().to_string()])
            .map_err(|e| e.to_string())
    }
}

/// What `ferrolb validate` prints for these objects (in one file), without the file's name:
/// the text the webhook must give.
fn validate_says(lab: &Lab, objects: &[&str]) -> String {
    let path = lab.run_dir().join("validate.yaml");
    std::fs::write(&path, objects.join("---\n")).unwrap();
    let out = std::process::Command::new(binaries::locate("ferrolb").unwrap())
        .args(["validate", &path.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "ferrolb validate accepted {objects:?}"
    );
    let prefix = format!("{}: ", path.display());
    String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn assert_refused(result: Result<String, String>, expected: &str) {
    let err = result.expect_err("kubectl apply succeeded");
    let needle = format!("admission webhook \"{CRD_WEBHOOK}\" denied the request: {expected}");
    assert!(err.contains(&needle), "expected\n{needle}\nin\n{err}");
}

#[test]
fn kubectl_apply_of_a_bad_pool_is_refused_with_what_ferrolb_validate_says() {
    let env = Env::up();
    let base = pool("base", "192.168.5.0/26");
    env.apply("base.yaml", &base)
        .unwrap_or_else(|e| panic!("a good pool is accepted: {e}\n{}", env.log()));
    for (name, address) in [("bad", "192.168.6.0/33"), ("over", "192.168.5.32/27")] {
        let proposed = pool(name, address);
        // The webhook orders objects by name, as this file does.
        let mut objects = [base.as_str(), proposed.as_str()];
        objects.sort_by_key(|o| {
            o.lines()
                .find(|l| l.starts_with("  name:"))
                .map(str::to_string)
        });
        let expected = validate_says(&env.lab, &objects);
        assert!(!expected.is_empty());
        assert_refused(env.apply(&format!("{name}.yaml"), &proposed), &expected);
    }
    // The exact Status body the API server answers (the test server is checked against the real
    // one here): the webhook's code and reason, the message prefixed with the webhook's name.
    let proposed = pool("bad", "192.168.6.0/33");
    let mut objects = [base.as_str(), proposed.as_str()];
    objects.sort();
    let expected = validate_says(&env.lab, &objects);
    let object: serde_json::Value = serde_saphyr::from_str(&proposed).unwrap();
    let (code, body) = env
        .lab
        .control_plane()
        .unwrap()
        .run(move |client| async move {
            let req = http::Request::post(
                "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools",
            )
            .header("content-type", "application/json")
            .body(kube::client::Body::from(
                serde_json::to_vec(&object).unwrap(),
            ))
            .unwrap();
            let resp = client.send(req).await.unwrap();
            let code = resp.status().as_u16();
            let bytes = resp.into_body().collect_bytes().await.unwrap();
            (
                code,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            )
        })
        .unwrap();
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("admission webhook \"{CRD_WEBHOOK}\" denied the request: {expected}"),
        "reason": "Invalid", "code": 422,
    });
    assert_eq!((code, body), (422, status));
    // Refused means not stored.
    let err = env
        .lab
        .kubectl(&["get", "ipaddresspool", "-n", "metallb-system", "bad"])
        .expect_err("a refused pool is not stored");
    assert!(
        err.to_string().contains("NotFound") || err.to_string().contains("not found"),
        "{err}"
    );
}

#[test]
fn a_change_that_would_orphan_a_services_ip_is_refused_naming_it() {
    let env = Env::up();
    env.apply("base.yaml", &pool("base", "192.168.5.0/26"))
        .unwrap();
    env.cluster
        .create_service(&lb_service("web", &[80], &[]))
        .unwrap();
    let ips = env
        .cluster
        .wait_for_ips("default", "web", WAIT, |ips| !ips.is_empty())
        .unwrap_or_else(|e| panic!("{e}\n{}", env.log()));
    let expected = format!(
        "config refused (stale): it would leave 1 assigned IP(s) outside every pool: {} (default/web)",
        ips[0]
    );
    assert_refused(
        env.apply("moved.yaml", &pool("base", "192.168.7.0/26")),
        &expected,
    );
    let err = env
        .lab
        .kubectl(&["delete", "ipaddresspool", "-n", "metallb-system", "base"])
        .expect_err("deleting the pool that holds web's IP is refused");
    assert!(err.to_string().contains(&expected), "{err}");
    // A change keeping the IP inside a pool is accepted.
    env.apply("grown.yaml", &pool("base", "192.168.5.0/25"))
        .unwrap();
}

fn configmap(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: metallb-system\ndata:\n  a: b\n"
    )
}

#[test]
fn with_the_controller_stopped_nothing_is_blocked() {
    let mut env = Env::up();
    // Running: an unrelated ConfigMap of metallb-system passes at once, a bad `config` does not.
    env.apply("unrelated.yaml", &configmap("unrelated"))
        .unwrap();
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: metallb-system\ndata:\n  config: |\n    address-pools:\n    - name: cm\n      protocol: layer2\n      addresses: [192.168.6.0/33]\n";
    let expected = validate_says(&env.lab, &[config]);
    let err = env
        .apply("config.yaml", config)
        .expect_err("a bad config ConfigMap is refused");
    let needle =
        format!("admission webhook \"configmap.metallb.io\" denied the request: {expected}");
    assert!(err.contains(&needle), "expected\n{needle}\nin\n{err}");
    env.lab.process(env.controller).unwrap().stop().unwrap();
    let started = Instant::now();
    env.apply("unrelated2.yaml", &configmap("unrelated2"))
        .unwrap();
    // failurePolicy Ignore: even a bad pool is stored; the controller refuses it when it runs.
    env.apply("bad.yaml", &pool("bad", "192.168.6.0/33"))
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a stopped webhook must not stall writes"
    );
}
