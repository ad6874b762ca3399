//! The real `ferrolb` binary on files: `validate`, `convert`, `crds`, and
//! their exit codes (0 ok, 1 invalid configuration, 2 unreadable input or
//! bad usage).

// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/example-config.yaml")
}

/// Run `ferrolb` with `args`, feeding `stdin`.
fn ferrolb(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the ferrolb binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn validate_accepts_the_tutorial_configmaps() {
    let cases = [
        (example(), "ok: 1 pools, 0 peers\n"),
        (data("bgp-configmap.yaml"), "ok: 1 pools, 1 peers\n"),
        (data("crds.yaml"), "ok: 2 pools, 1 peers\n"),
    ];
    for (file, want) in cases {
        let out = ferrolb(&["validate", p(&file)], "");
        assert_exit(&out, 0);
        assert_eq!(text(&out.stdout), want, "{}", file.display());
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn validate_merges_configmap_and_crd_files() {
    let out = ferrolb(&["validate", p(&example()), p(&data("crds.yaml"))], "");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "ok: 3 pools, 1 peers\n");
}

#[test]
fn validate_reads_standard_input_for_dash() {
    let config = std::fs::read_to_string(data("bgp-configmap.yaml")).unwrap();
    let out = ferrolb(&["validate", "-"], &config);
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "ok: 1 pools, 1 peers\n");
    let out = ferrolb(&["validate", "-", p(&data("crds.yaml"))], &config);
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "ok: 3 pools, 2 peers\n");
    // Two ConfigMaps cannot both be the configuration.
    let out = ferrolb(&["validate", p(&example()), "-"], &config);
    assert_exit(&out, 1);
    assert_eq!(
        text(&out.stderr),
        format!(
            "<stdin>: a second ConfigMap config (the first is in {}); ferrolb reads exactly one\n",
            example().display()
        )
    );
}

#[test]
fn validate_prints_every_error_one_per_line() {
    let out = ferrolb(&["validate", p(&data("invalid-configmap.yaml"))], "");
    assert_exit(&out, 1);
    assert!(out.stdout.is_empty());
    let mut got: Vec<String> = text(&out.stderr).lines().map(String::from).collect();
    got.sort();
    let mut want = vec![
        "peers[0] \"10.0.0.1\": hold-time \"2s\": must be 0 or at least 3s",
        "peers[0] \"10.0.0.1\": ebgp-multihop: not allowed for an iBGP peer (my-asn equals peer-asn)",
        "address-pools[0] \"prod\": addresses[0] \"10.0.0.0/33\": invalid prefix length",
        "address-pools[1] \"dev\": addresses[0] \"10.0.1.128/25\": overlaps address-pools[0] \"prod\" addresses[1] \"10.0.1.0/24\"",
        "address-pools[1] \"dev\": bgp-advertisements[0]: aggregation-length 24: shorter than the prefix length 25 of address-pools[1] \"dev\" addresses[0] \"10.0.1.128/25\"",
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn validate_names_the_file_and_document_of_an_unknown_kind() {
    let file = data("not-metallb.yaml");
    let out = ferrolb(&["validate", p(&example()), p(&file)], "");
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}: document 1 (Deployment default/web): unknown kind \"Deployment\"",
            file.display()
        )),
        "{stderr}"
    );
}

#[test]
fn unreadable_input_and_bad_usage_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let example = example();
    let cases: [(&str, Vec<&str>, &str); 7] = [
        (
            "missing file",
            vec!["validate", p(&missing)],
            "missing.yaml",
        ),
        ("not UTF-8", vec!["validate", p(&binary)], "binary.yaml"),
        ("no file", vec!["validate"], "FILE"),
        ("stdin twice", vec!["validate", "-", "-"], "only once"),
        ("unknown subcommand", vec!["frobnicate"], "frobnicate"),
        (
            "convert of a missing file",
            vec!["convert", p(&missing)],
            "missing.yaml",
        ),
        (
            "convert of two files",
            vec!["convert", p(&example), p(&example)],
            "unexpected argument",
        ),
    ];
    for (case, args, mention) in cases {
        let out = ferrolb(&args, "");
        assert_eq!(out.status.code(), Some(2), "{case}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(mention),
            "{case}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{case}");
    }
}

#[test]
fn convert_output_validates_to_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    for (file, counts) in [
        (example(), "ok: 1 pools, 0 peers\n"),
        (data("bgp-configmap.yaml"), "ok: 1 pools, 1 peers\n"),
    ] {
        let out = ferrolb(&["convert", p(&file)], "");
        assert_exit(&out, 0);
        let converted = dir.path().join("converted.yaml");
        std::fs::write(&converted, &out.stdout).unwrap();

        let check = ferrolb(&["validate", p(&converted)], "");
        assert_exit(&check, 0);
        assert_eq!(text(&check.stdout), counts);

        // Same model as the ConfigMap, by the library's definition of equivalence.
        let original =
            ferrolb_config::load_documents(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let again = ferrolb_config::load_documents(&text(&out.stdout)).unwrap();
        assert!(
            ferrolb_config::convert::equivalent(&original, &again),
            "{}",
            text(&out.stdout)
        );
        // The objects land in the ConfigMap's namespace.
        assert!(text(&out.stdout).contains("namespace: metallb-system"));
    }
}

#[test]
fn convert_of_an_invalid_configmap_prints_the_errors_and_exits_1() {
    let out = ferrolb(&["convert", p(&data("invalid-configmap.yaml"))], "");
    assert_exit(&out, 1);
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).lines().count(),
        5,
        "{}",
        text(&out.stderr)
    );
    let out = ferrolb(&["convert", p(&data("crds.yaml"))], "");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("convert reads a ConfigMap only"));
}

#[test]
fn convert_reads_standard_input_and_keeps_its_namespace() {
    let manifest = std::fs::read_to_string(example())
        .unwrap()
        .replace("metallb-system", "lb");
    let out = ferrolb(&["convert", "-"], &manifest);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("namespace: lb") && !stdout.contains("namespace: metallb-system"),
        "{stdout}"
    );
}

#[test]
fn crds_prints_manifests_crds_yaml() {
    let out = ferrolb(&["crds"], "");
    assert_exit(&out, 0);
    let on_disk = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds.yaml"),
    )
    .unwrap();
    assert!(
        text(&out.stdout) == on_disk,
        "manifests/crds.yaml is out of date: cargo run -p ferrolb-controller --bin ferrolb -- crds > manifests/crds.yaml"
    );
}
