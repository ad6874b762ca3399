//! The webhook's decisions, one rule per test; refusal texts are compared
//! with what `ferrolb validate` prints for the same objects.

// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::cli::{Io, validate};

const NS: &str = "metallb-system";

fn scope() -> Scope {
    Scope {
        namespace: NS.into(),
        config_name: "config".into(),
        lb_class: None,
    }
}

fn pool(name: &str, addresses: &[&str]) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": addresses},
    })
}

fn resources(objects: &[Value]) -> Resources {
    let text = objects
        .iter()
        .map(|o| serde_saphyr::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    let docs = documents::read(&text);
    assert!(docs.errors.is_empty(), "{}", docs.errors);
    docs.resources
}

fn service(name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }))
    .unwrap()
}

fn request(operation: &str, kind: (&str, &str), name: &str, object: Option<&Value>) -> Value {
    let mut r = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": kind.0, "version": if kind.0.is_empty() { "v1" } else { "v1beta1" }, "kind": kind.1},
        "resource": {"group": kind.0, "version": "v1beta1", "resource": "ipaddresspools"},
        "name": name, "namespace": NS, "operation": operation,
        "userInfo": {"username": "admin"}, "dryRun": false,
    });
    if let Some(o) = object {
        r["object"] = o.clone();
    }
    r
}

fn body(request: &Value) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": request}),
    )
    .unwrap()
}

fn run(request: &Value, current: &[Value], services: &[Service], terminating: bool) -> Value {
    let res = resources(current);
    let refs: Vec<&Service> = services.iter().collect();
    let cluster = Cluster {
        configmap: None,
        resources: &res,
        services: &refs,
        namespace_terminating: terminating,
    };
    review(&body(request), &cluster, &scope()).unwrap()
}

/// What `ferrolb validate -` prints on stderr for these objects, without the
/// input's name (an admission request has no file).
fn validate_says(objects: &[Value]) -> String {
    let text = objects
        .iter()
        .map(|o| serde_saphyr::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    let args = validate::Args {
        files: vec!["-".into()],
        namespace: NS.into(),
        name: "config".into(),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut stdin = text.as_bytes();
    let exit = validate::run(
        &args,
        &mut Io {
            stdin: &mut stdin,
            stdout: &mut out,
            stderr: &mut err,
        },
    );
    assert_eq!(exit, crate::cli::Exit::Invalid, "validate accepted it");
    String::from_utf8(err)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("<stdin>: ").unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn allowed(response: &Value) -> bool {
    response["response"]["allowed"]
        .as_bool()
        .expect("allowed is a bool")
}

fn message(response: &Value) -> String {
    assert!(!allowed(response), "expected a refusal: {response}");
    response["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn response_echoes_the_uid_in_an_admission_review_v1() {
    let p = pool("good", &["192.168.5.0/24"]);
    let out = run(
        &request("CREATE", ("metallb.io", "IPAddressPool"), "good", Some(&p)),
        &[],
        &[],
        false,
    );
    assert_eq!(out["apiVersion"], API_VERSION);
    assert_eq!(out["kind"], "AdmissionReview");
    assert_eq!(
        out["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert!(allowed(&out));
}

#[test]
fn a_change_that_does_not_validate_is_refused_with_validates_text() {
    let base = pool("base", &["192.168.5.0/26"]);
    let cases: Vec<(&str, Value)> = vec![
        ("bad prefix", pool("bad", &["192.168.6.0/33"])),
        ("overlap", pool("zover", &["192.168.5.32/27"])),
        (
            "range start after end",
            pool("rev", &["192.168.7.9-192.168.7.1"]),
        ),
    ];
    for (what, proposed) in cases {
        let out = run(
            &request(
                "CREATE",
                ("metallb.io", "IPAddressPool"),
                proposed["metadata"]["name"].as_str().unwrap(),
                Some(&proposed),
            ),
            std::slice::from_ref(&base),
            &[],
            false,
        );
        assert_eq!(out["response"]["status"]["code"], DENIED_CODE, "{what}");
        assert_eq!(
            message(&out),
            validate_says(&[base.clone(), proposed]),
            "{what}"
        );
    }
}

#[test]
fn an_update_is_judged_with_the_new_object_in_place_of_the_old() {
    let old = pool("a", &["192.168.5.0/26"]);
    // Shrinking the pool it replaces overlaps nothing: the old version is gone.
    let new = pool("a", &["192.168.5.0/27"]);
    let mut r = request("UPDATE", ("metallb.io", "IPAddressPool"), "a", Some(&new));
    r["oldObject"] = old.clone();
    assert!(allowed(&run(&r, &[old], &[], false)));
}

#[test]
fn a_change_that_would_orphan_an_assigned_ip_is_refused_naming_the_service() {
    let old = pool("a", &["192.168.5.0/26"]);
    let svc = service("web", "192.168.5.10");
    let moved = pool("a", &["192.168.6.0/26"]);
    let cases = [
        (
            "update",
            request("UPDATE", ("metallb.io", "IPAddressPool"), "a", Some(&moved)),
        ),
        (
            "delete",
            request("DELETE", ("metallb.io", "IPAddressPool"), "a", None),
        ),
    ];
    for (what, r) in cases {
        let out = run(
            &r,
            std::slice::from_ref(&old),
            std::slice::from_ref(&svc),
            false,
        );
        let expected = ConfigRefused {
            orphaned: vec![OrphanedIp {
                service: crate::service::ServiceKey::new("default", "web"),
                ip: "192.168.5.10".parse().unwrap(),
            }],
        }
        .to_string();
        assert_eq!(message(&out), expected, "{what}");
        assert!(
            expected.contains("192.168.5.10 (default/web)"),
            "{expected}"
        );
    }
}

#[test]
fn deleting_inside_a_terminating_namespace_is_allowed_so_uninstall_works() {
    let old = pool("a", &["192.168.5.0/26"]);
    let svc = service("web", "192.168.5.10");
    let r = request("DELETE", ("metallb.io", "IPAddressPool"), "a", None);
    assert!(allowed(&run(&r, &[old], &[svc], true)));
}

#[test]
fn problems_already_there_do_not_block_an_unrelated_change() {
    // An IP already outside every pool, and a pool already broken.
    let svc = service("old", "10.9.9.9");
    let broken = pool("broken", &["192.168.9.0/33"]);
    let fine = pool("fine", &["192.168.5.0/26"]);
    let r = request(
        "CREATE",
        ("metallb.io", "IPAddressPool"),
        "fine",
        Some(&fine),
    );
    assert!(allowed(&run(
        &r,
        std::slice::from_ref(&broken),
        &[svc],
        false
    )));
    // A new problem is still refused, and every problem is listed.
    let bad = pool("worse", &["192.168.8.0/40"]);
    let r = request(
        "CREATE",
        ("metallb.io", "IPAddressPool"),
        "worse",
        Some(&bad),
    );
    let out = run(&r, std::slice::from_ref(&broken), &[], false);
    assert_eq!(message(&out), validate_says(&[broken, bad]));
}

#[test]
fn configmaps_other_than_the_controllers_config_are_allowed_whatever_they_hold() {
    let garbage =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"config": "address-pools: [[["}});
    for (ns, name) in [(NS, "other"), ("default", "config")] {
        let mut r = request("CREATE", ("", "ConfigMap"), name, Some(&garbage));
        r["namespace"] = json!(ns);
        assert!(allowed(&run(&r, &[], &[], false)), "{ns}/{name}");
    }
    // The same text in the controller's own ConfigMap is refused.
    let r = request("CREATE", ("", "ConfigMap"), "config", Some(&garbage));
    assert!(!allowed(&run(&r, &[], &[], false)));
}

#[test]
fn the_config_configmap_is_merged_with_the_custom_resources() {
    let crd_pool = pool("crd", &["192.168.5.0/26"]);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config", "namespace": NS},
        "data": {"config": "address-pools:\n- name: cm\n  protocol: layer2\n  addresses: [192.168.5.0/28]\n"}});
    let r = request("UPDATE", ("", "ConfigMap"), "config", Some(&cm));
    let out = run(&r, std::slice::from_ref(&crd_pool), &[], false);
    assert_eq!(message(&out), validate_says(&[cm, crd_pool]));
}

#[test]
fn objects_outside_the_controllers_namespace_and_other_kinds_are_allowed() {
    let bad = pool("bad", &["192.168.6.0/33"]);
    let mut r = request("CREATE", ("metallb.io", "IPAddressPool"), "bad", Some(&bad));
    r["namespace"] = json!("default");
    assert!(allowed(&run(&r, &[], &[], false)));
    let r = request("CREATE", ("apps", "Deployment"), "x", Some(&json!({})));
    assert!(allowed(&run(&r, &[], &[], false)));
}

#[test]
fn malformed_bodies_are_precise_errors_not_panics() {
    let res = Resources::default();
    let cluster = Cluster {
        configmap: None,
        resources: &res,
        services: &[],
        namespace_terminating: false,
    };
    let cases: Vec<(&[u8], ReviewError)> = vec![
        (
            b"not json",
            ReviewError::Malformed("expected ident at line 1 column 2".into()),
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1beta1","request":{}}"#,
            ReviewError::Version("admission.k8s.io/v1beta1".into()),
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1"}"#,
            ReviewError::NoRequest,
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","request":{"kind":{}}}"#,
            ReviewError::Malformed("request.uid is missing".into()),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(review(input, &cluster, &scope()), Err(expected));
    }
}

#[test]
fn a_request_with_a_uid_but_unreadable_fields_is_refused_with_the_reason() {
    let cases = [
        (
            json!({"uid": "u1", "kind": {"kind": "IPAddressPool"}, "operation": "FROB"}),
            "unknown variant `FROB`",
        ),
        (
            json!({"uid": "u1", "kind": {"group": "metallb.io", "kind": "IPAddressPool"}, "namespace": NS, "name": "a", "operation": "CREATE"}),
            "request.object is missing for IPAddressPool \"a\"",
        ),
    ];
    for (r, needle) in cases {
        let out = run(&r, &[], &[], false);
        assert_eq!(out["response"]["uid"], "u1");
        assert_eq!(out["response"]["status"]["code"], 400);
        assert!(message(&out).contains(needle), "{}", message(&out));
    }
}
