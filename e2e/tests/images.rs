//! The OCI images of `manifests/images.sh`, built without a container daemon, are complete:
//! each unpacked root filesystem runs its entry point (`--version`) as the image's user, the
//! controller's image answers `/healthz` and `/readyz` against the lab's API server, and the
//! tarballs carry the names and labels that manifests/ferrolb.yaml and users rely on.
//! Needs root, umoci and skopeo (the README's test command installs them); fails, never
//! skips, when they are missing. Packages the binaries the suite built (`target/debug`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_e2e::cluster::http_get;
use ferrolb_e2e::lab::binaries::{self, require_tools};
use ferrolb_e2e::lab::identity::{self, Identity, manifests_dir};
use ferrolb_e2e::lab::process::Spawn;
use ferrolb_e2e::lab::{Lab, LabConfig};
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds both images from the suite's binaries into a fresh folder.
fn build_images(test: &str) -> PathBuf {
    require_tools(&[
        ("umoci", "umoci"),
        ("skopeo", "skopeo"),
        ("chroot", "coreutils"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let bin_dir = binaries::locate("ferrolb-controller")
        .unwrap_or_else(|e| panic!("{e}"))
        .parent()
        .unwrap()
        .to_path_buf();
    let out = std::env::temp_dir().join(format!("ferrolb-images-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let script = manifests_dir().join("images.sh");
    run(
        "bash",
        &[
            &script.display().to_string(),
            "--bin-dir",
            &bin_dir.display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
    );
    out
}

/// The image references manifests/ferrolb.yaml deploys.
fn manifest_images() -> Vec<String> {
    let text = std::fs::read_to_string(manifests_dir().join("ferrolb.yaml")).unwrap();
    identity::objects_of(&text)
        .unwrap()
        .iter()
        .filter_map(|o| {
            o["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
        })
        .flatten()
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

/// Unpacks `component`'s image; returns the bundle folder (rootfs + runtime config).
fn unpack(out: &Path, component: &str) -> PathBuf {
    let bundle = out.join(format!("bundle-{component}"));
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{component}-{VERSION}", out.join("oci").display()),
            &bundle.display().to_string(),
        ],
    );
    bundle
}

/// The entry point and `uid:gid` of an unpacked bundle's runtime config.
fn process_of(bundle: &Path) -> (Vec<String>, String) {
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json")).unwrap())
            .unwrap();
    let args = config["process"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let user = format!(
        "{}:{}",
        config["process"]["user"]["uid"], config["process"]["user"]["gid"]
    );
    (args, user)
}

#[test]
fn images_are_complete_named_as_the_manifests_say_and_labelled() {
    let out = build_images("complete");
    let deployed = manifest_images();
    for component in ["controller", "speaker"] {
        let name = format!("ferrolb/{component}:{VERSION}");
        assert!(deployed.contains(&name), "{name} not in {deployed:?}");
        // The docker-archive loads under the manifest's name; both archives carry the labels.
        let docker = out.join(format!("{component}.docker.tar"));
        let listing = run(
            "tar",
            &["-xOf", &docker.display().to_string(), "manifest.json"],
        );
        let manifest: Value = serde_json::from_str(&listing).unwrap();
        assert_eq!(
            manifest[0]["RepoTags"][0],
            format!("docker.io/{name}"),
            "{listing}"
        );
        for archive in [
            format!("docker-archive:{}", docker.display()),
            format!("oci-archive:{}/{component}.oci.tar", out.display()),
        ] {
            let inspect: Value = serde_json::from_str(&run("skopeo", &["inspect", &archive]))
                .unwrap_or_else(|e| panic!("{archive}: {e}"));
            let labels = &inspect["Labels"];
            assert_eq!(
                labels["org.opencontainers.image.version"], VERSION,
                "{archive}"
            );
            assert!(
                labels["org.opencontainers.image.revision"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty()),
                "{archive}: {labels}"
            );
            assert!(
                labels["org.opencontainers.image.source"].is_string(),
                "{archive}"
            );
        }
        // The root filesystem alone runs the entry point, as the image's user.
        let bundle = unpack(&out, component);
        let (args, user) = process_of(&bundle);
        assert_eq!(args, vec![format!("/ferrolb-{component}")]);
        let expected_user = if component == "controller" {
            "65534:65534"
        } else {
            "0:0"
        };
        assert_eq!(user, expected_user, "{component}");
        let rootfs = bundle.join("rootfs");
        let version = run(
            "chroot",
            &[
                &format!("--userspec={user}"),
                &rootfs.display().to_string(),
                &args[0],
                "--version",
            ],
        );
        assert!(
            version.contains(VERSION),
            "{component} --version: {version}"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn controller_image_answers_health_checks_against_the_lab_api_server() {
    let out = build_images("health");
    let bundle = unpack(&out, "controller");
    let (args, user) = process_of(&bundle);
    let rootfs = bundle.join("rootfs");
    let mut lab =
        Lab::up(&LabConfig::control_plane_only()).expect("lab up (needs root and iproute2)");
    // The controller's own ServiceAccount kubeconfig, readable by the image's user.
    let kubeconfig = lab
        .kubeconfig_of(Identity::Controller)
        .unwrap()
        .to_path_buf();
    std::fs::copy(&kubeconfig, rootfs.join("tmp/kubeconfig")).unwrap();
    run(
        "chmod",
        &["0644", &rootfs.join("tmp/kubeconfig").display().to_string()],
    );
    let cp = lab.topology().control_plane.clone();
    let userspec = format!("--userspec={user}");
    let root = rootfs.display().to_string();
    let what = Spawn::new(
        "chroot",
        &[&userspec, &root, &args[0], "--metrics-addr", "0.0.0.0:7472"],
    )
    .env("KUBECONFIG", "/tmp/kubeconfig");
    let index = lab.spawn("image-controller", &cp.netns, &what).unwrap();
    let addr = SocketAddr::new(IpAddr::V4(cp.ipv4), 7472);
    for path in ["/healthz", "/readyz"] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http_get(&cp.netns, addr, path) {
                Ok(body)
                    if body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200") =>
                {
                    break;
                }
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "{path}: {other:?}\ncontroller log:\n{}",
                        lab.processes()[index].log()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    drop(lab);
    std::fs::remove_dir_all(&out).unwrap();
}
