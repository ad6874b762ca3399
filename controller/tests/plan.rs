//! `ferrolb plan` run as a real process on files: the seed tutorial's
//! ConfigMap, CRD pools, `--current`, both output formats and every exit status.
// Test helpers: a failed setup step should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

const TUTORIAL: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: my-ip-space
      protocol: layer2
      addresses:
      - 192.168.5.5-192.168.5.9
";

/// A LoadBalancer Service as YAML; `extra` is indented spec/metadata text.
fn service(namespace: &str, name: &str, annotations: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  annotations: {{{annotations}}}\nspec:\n  type: LoadBalancer\n{spec}"
    )
}

fn ports(list: &[u16]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|p| format!("{{port: {p}, protocol: TCP}}"))
        .collect();
    format!("  ports: [{}]\n", items.join(", "))
}

fn with_status(yaml: &str, ip: &str) -> String {
    format!("{yaml}status:\n  loadBalancer:\n    ingress: [{{ip: \"{ip}\"}}]\n")
}

struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn ferrolb(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(args)
        .output()
        .expect("the ferrolb binary runs")
}

fn plan(config: &Path, services: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "plan".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--services".as_ref(),
        services.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    ferrolb(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Row {
    namespace: String,
    name: String,
    ips: Vec<String>,
    pool: String,
    error: String,
}

fn rows(o: &Output) -> Vec<Row> {
    serde_saphyr::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("bad YAML output: {e}\n{}", stdout(o)))
}

#[test]
fn plan_tutorial_five_addresses_then_exhausted_exit_3() {
    let f = Files::new();
    let config = f.write("config.yaml", TUTORIAL);
    let docs: Vec<String> = (1..=6)
        .map(|i| service("default", &format!("s{i}"), "", &ports(&[80])))
        .collect();
    let services = f.write("services.yaml", &docs.join("---\n"));
    let out = plan(&config, &services, &["-o", "yaml"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let got = rows(&out);
    let ips: Vec<Vec<String>> = got.iter().map(|r| r.ips.clone()).collect();
    assert_eq!(
        ips,
        vec![
            vec!["192.168.5.5".to_string()],
            vec!["192.168.5.6".to_string()],
            vec!["192.168.5.7".to_string()],
            vec!["192.168.5.8".to_string()],
            vec!["192.168.5.9".to_string()],
            vec![],
        ]
    );
    assert!(
        got[..5]
            .iter()
            .all(|r| r.pool == "my-ip-space" && r.error.is_empty()),
        "{got:?}"
    );
    assert_eq!(got[5].pool, "");
    assert_eq!(
        got[5].error,
        "pool \"my-ip-space\" is exhausted: no free or shareable address"
    );

    // The table says the same.
    let table = plan(&config, &services, &[]);
    assert_eq!(table.status.code(), Some(3));
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE"), "{text}");
    assert!(
        lines[1].contains("s1") && lines[1].contains("192.168.5.5"),
        "{text}"
    );
    assert!(
        lines[6].contains("<none>") && lines[6].contains("is exhausted"),
        "{text}"
    );
}

#[test]
fn plan_sharing_annotations_and_requested_ips_exit_0() {
    let f = Files::new();
    let config = f.write("config.yaml", TUTORIAL);
    let docs = [
        service(
            "shop",
            "http",
            "metallb.universe.tf/allow-shared-ip: web",
            &ports(&[80]),
        ),
        service(
            "shop",
            "https",
            "metallb.io/allow-shared-ip: web",
            &ports(&[443]),
        ),
        service(
            "shop",
            "clash",
            "metallb.io/allow-shared-ip: web",
            &ports(&[80]),
        ),
        service(
            "shop",
            "fixed",
            "",
            &format!("  loadBalancerIP: 192.168.5.9\n{}", ports(&[80])),
        ),
    ];
    let services = f.write("services.yaml", &docs.join("---\n"));
    let out = plan(&config, &services, &["-o", "yaml"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let got: Vec<(String, Vec<String>)> = rows(&out).into_iter().map(|r| (r.name, r.ips)).collect();
    assert_eq!(
        got,
        vec![
            ("http".into(), vec!["192.168.5.5".into()]),
            ("https".into(), vec!["192.168.5.5".into()]),
            ("clash".into(), vec!["192.168.5.6".into()]),
            ("fixed".into(), vec!["192.168.5.9".into()]),
        ]
    );
}

#[test]
fn plan_crd_pools_namespace_selectors_and_dual_stack() {
    let f = Files::new();
    let config = f.write(
        "pools.yaml",
        "\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: prod, namespace: metallb-system}
spec:
  addresses: [10.0.1.0/31, 'fd00::/127']
  serviceAllocation:
    priority: 1
    namespaceSelectors:
    - matchLabels: {env: prod}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: general, namespace: metallb-system}
spec:
  addresses: [10.0.0.0/30]
",
    );
    let dual = format!(
        "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n{}",
        ports(&[80])
    );
    let docs = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {env: prod}\n"
            .to_string(),
        service("shop", "a", "", &dual),
        service("dev", "b", "", &ports(&[80])),
        service("dev", "c", "", &dual),
    ];
    let services = f.write("services.yaml", &docs.join("---\n"));
    let out = plan(&config, &services, &["-o", "yaml"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let got = rows(&out);
    assert_eq!(
        got[0],
        Row {
            namespace: "shop".into(),
            name: "a".into(),
            ips: vec!["10.0.1.0".into(), "fd00::".into()],
            pool: "prod".into(),
            error: String::new(),
        }
    );
    assert_eq!(
        (got[1].ips.clone(), got[1].pool.as_str()),
        (vec!["10.0.0.0".to_string()], "general")
    );
    assert!(got[2].ips.is_empty());
    assert!(
        got[2]
            .error
            .contains("\"prod\" serviceAllocation does not admit it"),
        "{}",
        got[2].error
    );
    assert!(
        got[2].error.contains("\"general\" lacks the IP family"),
        "{}",
        got[2].error
    );
}

#[test]
fn plan_current_services_are_restored_first() {
    let f = Files::new();
    let config = f.write("config.yaml", TUTORIAL);
    let old = with_status(&service("shop", "old", "", &ports(&[80])), "192.168.5.5");
    let current = f.write(
        "current.yaml",
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            old.replace('\n', "\n  ")
        ),
    );
    let new = service("shop", "new", "", &ports(&[80]));
    let services = f.write("services.yaml", &format!("{new}---\n{old}"));
    let out = plan(
        &config,
        &services,
        &["--current", current.to_str().unwrap(), "-o", "yaml"],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let got: Vec<(String, Vec<String>)> = rows(&out).into_iter().map(|r| (r.name, r.ips)).collect();
    assert_eq!(
        got,
        vec![
            ("new".into(), vec!["192.168.5.6".into()]),
            ("old".into(), vec!["192.168.5.5".into()]),
        ]
    );
    // Without --current, `new` comes first and takes .5; `old` moves, and the table says so.
    let out = plan(&config, &services, &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let old_line = text
        .lines()
        .find(|l| l.contains(" old "))
        .unwrap_or_default();
    assert!(
        old_line.contains("192.168.5.6") && old_line.contains("changed (was 192.168.5.5)"),
        "{text}"
    );
}

#[test]
fn plan_config_orphaning_current_ips_is_refused_exit_4() {
    let f = Files::new();
    let config = f.write("config.yaml", TUTORIAL);
    let current = f.write(
        "current.yaml",
        &[
            with_status(&service("shop", "kept", "", &ports(&[80])), "192.168.5.7"),
            with_status(&service("shop", "lost", "", &ports(&[80])), "10.9.9.9"),
        ]
        .join("---\n"),
    );
    let services = f.write("services.yaml", &service("shop", "new", "", &ports(&[80])));
    let out = plan(
        &config,
        &services,
        &["--current", current.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(4), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("config refused (stale)"), "{err}");
    assert!(err.contains("10.9.9.9 (shop/lost)"), "{err}");
    assert!(!err.contains("192.168.5.7"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn plan_lb_class_and_non_load_balancers_are_skipped_with_a_note() {
    let f = Files::new();
    let config = f.write("config.yaml", TUTORIAL);
    let docs = [
        service("a", "ours", "", &format!("  loadBalancerClass: example.com/ferrolb\n{}", ports(&[80]))),
        service("a", "default-class", "", &ports(&[80])),
        "apiVersion: v1\nkind: Service\nmetadata: {name: cip, namespace: a}\nspec: {type: ClusterIP}\n".to_string(),
    ];
    let services = f.write("services.yaml", &docs.join("---\n"));
    let out = plan(
        &config,
        &services,
        &["--lb-class", "example.com/ferrolb", "-o", "yaml"],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let got = rows(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].name.as_str(), got[0].ips.clone()),
        ("ours", vec!["192.168.5.5".to_string()])
    );
    let err = stderr(&out);
    assert!(
        err.contains("note: a/default-class skipped: no loadBalancerClass while --lb-class is set"),
        "{err}"
    );
    assert!(
        err.contains("note: a/cip skipped: type ClusterIP is not LoadBalancer"),
        "{err}"
    );
}

#[test]
fn plan_bad_inputs_exit_1_or_2() {
    let f = Files::new();
    let good = f.write("config.yaml", TUTORIAL);
    let bad_config = f.write(
        "bad.yaml",
        "address-pools:\n- name: x\n  protocol: layer2\n  addresses: [10.0.0.0/33]\n",
    );
    let services = f.write("services.yaml", &service("a", "s", "", &ports(&[80])));
    let wrong_kind = f.write(
        "wrong.yaml",
        &format!("{}---\n{TUTORIAL}", service("a", "s", "", &ports(&[80]))),
    );

    let out = plan(&bad_config, &services, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "invalid config: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("10.0.0.0/33"), "{}", stderr(&out));

    let out = plan(&good, &wrong_kind, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("document 2: kind ConfigMap is not Service, Namespace or List"),
        "{}",
        stderr(&out)
    );

    let out = plan(&good, &f.0.path().join("missing.yaml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.yaml"), "{}", stderr(&out));

    let out = ferrolb(&["plan".as_ref(), "--services".as_ref(), services.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "--config is required");
}
