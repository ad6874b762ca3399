//! The real `ferrolb` binary on files: `validate`, `convert`, `crds`, and
//! their exit codes (0 ok, 1 invalid configuration, 2 unreadable input or
//! bad usage, 3 `validate`'s warning); `--version` of every binary; the
//! controller daemon's log output.

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
fn validate_shows_the_bfd_profiles_their_peers_and_graceful_restart() {
    let config = "peers:
- {peer-address: 10.0.0.1, peer-asn: 64500, my-asn: 64512, bfd-profile: fast, graceful-restart: true}
- {peer-address: 10.0.0.2, peer-asn: 64500, my-asn: 64512, bfd-profile: fast}
bfd-profiles:
- {name: fast, receive-interval: 100, transmit-interval: 100}
- {name: spare}
address-pools:
- {name: p, protocol: bgp, addresses: [10.1.0.0/24]}
";
    let out = ferrolb(&["validate", "-"], config);
    assert_exit(&out, 0);
    assert_eq!(
        text(&out.stdout),
        "ok: 1 pools, 2 peers, 2 BFD profiles (fast: peer0, peer1; spare: unused), graceful restart: peer0\n"
    );
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
    let file = data("invalid-configmap.yaml");
    let out = ferrolb(&["validate", p(&file)], "");
    assert_exit(&out, 1);
    assert!(out.stdout.is_empty());
    let mut got: Vec<String> = text(&out.stderr).lines().map(String::from).collect();
    got.sort();
    let mut want: Vec<String> = [
        "peers[0] \"10.0.0.1\": hold-time \"2s\": must be 0 or at least 3s",
        "peers[0] \"10.0.0.1\": ebgp-multihop: not allowed for an iBGP peer (my-asn equals peer-asn)",
        "address-pools[0] \"prod\": addresses[0] \"10.0.0.0/33\": invalid prefix length",
        "address-pools[1] \"dev\": addresses[0] \"10.0.1.128/25\": overlaps address-pools[0] \"prod\" addresses[1] \"10.0.1.0/24\"",
        "address-pools[1] \"dev\": bgp-advertisements[0]: aggregation-length 24: shorter than the prefix length 25 of address-pools[1] \"dev\" addresses[0] \"10.0.1.128/25\"",
    ]
    .iter()
    .map(|line| format!("{}: {line}", file.display()))
    .collect();
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

/// Write `content` to `name` in `dir`.
fn file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// A ConfigMap manifest named `ns/name` holding `config` (indented here).
fn configmap(ns: &str, name: &str, config: &str) -> String {
    let body: String = config.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: {ns}\n  name: {name}\ndata:\n  config: |\n{body}"
    )
}

const POOL: &str = "address-pools:\n- name: web\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n";

#[test]
fn validate_refuses_input_without_any_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let empty = file(&dir, "empty.yaml", "");
    let comments = file(
        &dir,
        "comments.yaml",
        "# nothing yet\n---\n# still nothing\n\n",
    );
    for path in [&empty, &comments] {
        let out = ferrolb(&["validate", p(path)], "");
        assert_exit(&out, 1);
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
        assert_eq!(
            text(&out.stderr),
            format!("{}: no configuration found\n", path.display())
        );
    }
    // Next to a real configuration, the empty file is still named.
    let out = ferrolb(&["validate", p(&example()), p(&empty)], "");
    assert_exit(&out, 1);
    assert_eq!(
        text(&out.stderr),
        format!("{}: no configuration found\n", empty.display())
    );
    let out = ferrolb(&["validate", "-"], "# only a comment\n");
    assert_exit(&out, 1);
    assert_eq!(text(&out.stderr), "<stdin>: no configuration found\n");
}

#[test]
fn validate_warns_about_a_configmap_the_controller_does_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let wrong_name = file(
        &dir,
        "name.yaml",
        &configmap("metallb-system", "metallb-config", POOL),
    );
    let wrong_ns = file(&dir, "ns.yaml", &configmap("lb", "config", POOL));
    let cases = [
        (
            &wrong_name,
            "metallb-system/metallb-config",
            "metallb-system/config",
        ),
        (&wrong_ns, "lb/config", "metallb-system/config"),
    ];
    for (path, found, read) in cases {
        let out = ferrolb(&["validate", p(path)], "");
        assert_exit(&out, 3);
        assert_eq!(text(&out.stdout), "ok: 1 pools, 0 peers\n");
        assert_eq!(
            text(&out.stderr),
            format!(
                "{}: warning: ConfigMap {found} is not the one the controller reads ({read})\n",
                path.display()
            )
        );
    }
    // --namespace / --name say which one the controller reads.
    let out = ferrolb(
        &["validate", "--name", "metallb-config", p(&wrong_name)],
        "",
    );
    assert_exit(&out, 0);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let out = ferrolb(&["validate", "--namespace", "lb", p(&wrong_ns)], "");
    assert_exit(&out, 0);
    let out = ferrolb(&["validate", "--namespace", "lb", p(&example())], "");
    assert_exit(&out, 3);
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}: warning: ConfigMap metallb-system/config is not the one the controller reads (lb/config)\n",
            example().display()
        )
    );
    // An error outranks the warning: exit 1, and both are printed.
    let bad = file(
        &dir,
        "bad.yaml",
        &configmap("lb", "config", &POOL.replace("/24", "/33")),
    );
    let out = ferrolb(&["validate", p(&bad)], "");
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("warning: ConfigMap lb/config"), "{stderr}");
    assert!(stderr.contains("invalid prefix length"), "{stderr}");
    // The bare `config` text has no name to check.
    let bare = file(&dir, "bare.yaml", POOL);
    let out = ferrolb(&["validate", "--namespace", "lb", p(&bare)], "");
    assert_exit(&out, 0);
}

#[test]
fn validate_gives_yaml_errors_inside_data_config_in_file_lines_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    // Line 12 of the file, `    - name: b`: the `:` is in column 11.
    let text_ = "# a comment line\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: metallb-system\n  name: config\ndata:\n  config: |\n    address-pools:\n    - name: a\n      addresses: [10.0.0.0/24\n    - name: b\n";
    let path = file(&dir, "syntax.yaml", text_);
    let line = text_.lines().nth(11).unwrap();
    assert_eq!(line.find(':'), Some(10));
    let out = ferrolb(&["validate", p(&path)], "");
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}: document 1: ConfigMap metallb-system/config: config: ",
            path.display()
        )) && stderr.trim_end().ends_with("at line 12, column 11"),
        "{stderr}"
    );
    // The same ConfigMap as the second document, after a pool, indented by 6.
    let second = format!(
        "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: fast}}\n---\n{}",
        text_.replace("\n    ", "\n      ")
    );
    let path = file(&dir, "second.yaml", &second);
    let out = ferrolb(&["validate", p(&path)], "");
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("document 2: ConfigMap")
            && stderr.trim_end().ends_with("at line 16, column 13"),
        "{stderr}"
    );
    // An unknown key in the block: its own line and column too.
    let path = file(
        &dir,
        "unknown.yaml",
        &configmap(
            "metallb-system",
            "config",
            "address-pools:\n- name: a\n  protocol: layer2\n  adresses: [10.0.0.0/24]\n",
        ),
    );
    let out = ferrolb(&["validate", p(&path)], "");
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    // Line 11 is `      adresses: ...`: the key starts in column 7.
    assert!(
        stderr.trim_end().ends_with("at line 11, column 7"),
        "{stderr}"
    );
}

#[test]
fn validate_cites_each_duplicate_pools_own_block() {
    let dir = tempfile::tempdir().unwrap();
    // Pool 0's advertisement aggregates at /24: fine for its own /24, too
    // short for the other "web"'s /28, which it must not be checked against.
    let path = file(
        &dir,
        "dup.yaml",
        "address-pools:\n- name: web\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - aggregation-length: 24\n- name: web\n  protocol: bgp\n  addresses: [10.1.0.0/28]\n",
    );
    let out = ferrolb(&["validate", p(&path)], "");
    assert_exit(&out, 1);
    let f = path.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "{f}: address-pools[1] \"web\": pool name \"web\" is already used by address-pools[0] \"web\"\n\
             {f}: address-pools[1] \"web\": default BGP advertisement: BGP advertisement name \"web-0\" is already used by address-pools[0] \"web\": bgp-advertisements[0]\n"
        )
    );
    // Each pool's own block is the one a too-short aggregation names.
    let path = file(
        &dir,
        "dup2.yaml",
        "address-pools:\n- name: web\n  protocol: bgp\n  addresses: [10.0.0.0/28]\n  bgp-advertisements:\n  - aggregation-length: 24\n- name: web\n  protocol: bgp\n  addresses: [10.1.0.0/24]\n  bgp-advertisements:\n  - aggregation-length: 16\n",
    );
    let out = ferrolb(&["validate", p(&path)], "");
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    for own in [
        "address-pools[0] \"web\": bgp-advertisements[0]: aggregation-length 24: shorter than the prefix length 28 of address-pools[0] \"web\" addresses[0] \"10.0.0.0/28\"",
        "address-pools[1] \"web\": bgp-advertisements[0]: aggregation-length 16: shorter than the prefix length 24 of address-pools[1] \"web\" addresses[0] \"10.1.0.0/24\"",
    ] {
        assert!(
            stderr.contains(&format!("{f}: {own}\n", f = path.display())),
            "{stderr}"
        );
    }
    assert_eq!(stderr.matches("aggregation-length").count(), 2, "{stderr}");
}

#[test]
fn validate_names_the_file_of_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let cm = file(&dir, "cm.yaml", POOL);
    let crd = file(
        &dir,
        "pools.yaml",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: other, namespace: metallb-system}\nspec: {addresses: [10.0.0.128/25]}\n",
    );
    let out = ferrolb(&["validate", p(&cm), p(&crd)], "");
    assert_exit(&out, 1);
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}: IPAddressPool metallb-system/other: spec.addresses[0] \"10.0.0.128/25\": overlaps address-pools[0] \"web\" addresses[0] \"10.0.0.0/24\"\n",
            crd.display()
        )
    );
}

#[test]
fn convert_says_there_is_nothing_to_convert() {
    let dir = tempfile::tempdir().unwrap();
    let crds = data("crds.yaml");
    let empty = file(&dir, "empty.yaml", "# nothing\n");
    for (path, message) in [
        (
            &crds,
            "no ConfigMap to convert: the input holds only metallb.io/v1beta1 objects, which are CRDs already (check them with `ferrolb validate`)",
        ),
        (&empty, "no configuration found"),
    ] {
        let out = ferrolb(&["convert", p(path)], "");
        assert_exit(&out, 1);
        assert!(out.stdout.is_empty());
        assert_eq!(
            text(&out.stderr),
            format!("{}: {message}\n", path.display())
        );
    }
}

#[test]
fn convert_suggests_and_applies_a_rename_for_invalid_pool_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        &dir,
        "cm.yaml",
        &configmap(
            "metallb-system",
            "config",
            &POOL.replace("name: web", "name: Web_Pool"),
        ),
    );
    let out = ferrolb(&["convert", p(&path)], "");
    assert_exit(&out, 1);
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}: address-pools[0] \"Web_Pool\": cannot become an IPAddressPool name (lowercase letters, digits, '-' and '.', at most 253 characters): rename it, e.g. `ferrolb convert --rename 'Web_Pool=web-pool'`\n",
            path.display()
        )
    );
    let out = ferrolb(&["convert", "--rename", "Web_Pool=web-pool", p(&path)], "");
    assert_exit(&out, 0);
    let converted = file(&dir, "crds.yaml", &text(&out.stdout));
    let config = ferrolb_config::load_documents(&text(&out.stdout)).unwrap();
    assert_eq!(config.pools[0].name, "web-pool");
    assert_eq!(config.l2_advertisements[0].pools, ["web-pool"]);
    let check = ferrolb(&["validate", p(&converted)], "");
    assert_exit(&check, 0);
    // A rename to another invalid name, or of no pool, is an error.
    let out = ferrolb(&["convert", "--rename", "Web_Pool=Bad_Name", p(&path)], "");
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("for example \"bad-name\""),
        "{}",
        text(&out.stderr)
    );
    let out = ferrolb(&["convert", "--rename", "nope=x", p(&path)], "");
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("no address pool is named \"nope\""),
        "{}",
        text(&out.stderr)
    );
    // Not OLD=NEW: bad usage.
    let out = ferrolb(&["convert", "--rename", "Web_Pool", p(&path)], "");
    assert_exit(&out, 2);
}

/// Whether `line` is `<name> <version> (commit <7+ hex digits or unknown>)`.
fn is_version_line(line: &str, name: &str) -> bool {
    let Some(rest) = line.strip_prefix(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION")))
    else {
        return false;
    };
    let Some(commit) = rest.strip_suffix(')') else {
        return false;
    };
    commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn version_names_the_git_commit() {
    for (bin, name) in [
        (BIN, "ferrolb"),
        (
            env!("CARGO_BIN_EXE_ferrolb-controller"),
            "ferrolb-controller",
        ),
    ] {
        let out = Command::new(bin).arg("--version").output().unwrap();
        assert_exit(&out, 0);
        let stdout = text(&out.stdout);
        assert!(is_version_line(stdout.trim_end(), name), "{stdout:?}");
    }
}

/// Run the controller daemon with a kubeconfig that does not exist (it logs
/// one error and exits 2), stderr into a file; that file's bytes.
fn controller_log(extra: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(["--kubeconfig", p(&dir.path().join("missing-kubeconfig"))])
        .args(extra)
        .env_remove("FERROLB_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert_eq!(out.code(), Some(2));
    std::fs::read(&log).unwrap()
}

#[test]
fn controller_logs_without_colours_when_stderr_is_no_terminal() {
    let log = controller_log(&[], &[]);
    let log_text = text(&log);
    assert!(
        log_text.contains("cannot build a Kubernetes client"),
        "{log_text}"
    );
    assert!(!log.contains(&0x1b), "{log_text:?}");
}

#[test]
fn controller_logs_json_lines() {
    for log in [
        controller_log(&["--log-format", "json"], &[]),
        controller_log(&[], &[("FERROLB_LOG_FORMAT", "json")]),
    ] {
        let log_text = text(&log);
        assert!(!log.contains(&0x1b), "{log_text:?}");
        let lines: Vec<&str> = log_text.lines().collect();
        assert!(!lines.is_empty());
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["level"], "ERROR", "{line}");
            assert_eq!(v["message"], "cannot build a Kubernetes client", "{line}");
            assert!(
                v["timestamp"].is_string() && v["target"].is_string(),
                "{line}"
            );
            assert!(
                v["error"].as_str().unwrap().contains("missing-kubeconfig"),
                "{line}"
            );
        }
    }
}
