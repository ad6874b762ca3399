//! Who the lab's clients are: the admin (the lab and the tests) or one of ferrolb's
//! ServiceAccounts (the daemons), and the manifests that create those accounts.
//!
//! The lab installs ferrolb as a user does (`manifests/namespace.yaml`, `crds.yaml`,
//! `ferrolb.yaml`), then runs the controller and the speakers with tokens of their own
//! ServiceAccounts (TokenRequest), so the manifests' RBAC rules are what lets them work: a
//! permission the manifests lack fails the suite, on the test API server as on a real one.

use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Api, Client};
use serde_json::{Value, json};

use super::LabError;

/// The namespace ferrolb's manifests install into.
pub const NAMESPACE: &str = "metallb-system";
/// The one-command install: `kubectl apply -k manifests/` applies what it lists.
pub const KUSTOMIZATION: &str = "kustomization.yaml";
/// The field manager of the lab's applies on the test API server.
const FIELD_MANAGER: &str = "ferrolb-lab";
/// Lifetime asked for the daemons' tokens: longer than any test.
const TOKEN_SECONDS: i64 = 6 * 3600;

/// Who a client in the lab acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Identity {
    /// The cluster admin: the lab itself, the tests, the `ferrolb` CLI.
    Admin,
    /// The `controller` ServiceAccount of manifests/ferrolb.yaml.
    Controller,
    /// The `speaker` ServiceAccount of manifests/ferrolb.yaml.
    Speaker,
}

impl Identity {
    /// The identities whose kubeconfig the lab writes from a token.
    pub const SERVICE_ACCOUNTS: [Identity; 2] = [Identity::Controller, Identity::Speaker];

    /// The ServiceAccount's name, if this is one.
    pub fn service_account(self) -> Option<&'static str> {
        match self {
            Identity::Admin => None,
            Identity::Controller => Some("controller"),
            Identity::Speaker => Some("speaker"),
        }
    }

    /// The identity a ferrolb binary runs as in the lab (the CLI is the admin's).
    pub fn of_binary(binary: &str) -> Identity {
        match binary {
            "ferrolb-controller" => Identity::Controller,
            "ferrolb-speaker" => Identity::Speaker,
            _ => Identity::Admin,
        }
    }

    /// The user name the API server gives this identity's requests.
    pub fn user_name(self) -> Option<String> {
        self.service_account()
            .map(|sa| format!("system:serviceaccount:{NAMESPACE}:{sa}"))
    }
}

/// The repository's `manifests/` folder.
pub fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// The files `manifests/kustomization.yaml` installs, in its order (what the lab applies
/// without kubectl, so that the one-command install and the lab never drift apart).
pub fn install_manifests() -> Result<Vec<PathBuf>, LabError> {
    let path = manifests_dir().join(KUSTOMIZATION);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LabError::io(format!("read {}", path.display()), e))?;
    let doc: Value = serde_saphyr::from_str(&text).map_err(|e| LabError::Parse {
        what: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let files: Vec<PathBuf> = doc["resources"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(|f| manifests_dir().join(f))
                .collect()
        })
        .unwrap_or_default();
    if files.is_empty() {
        return Err(LabError::Parse {
            what: path.display().to_string(),
            detail: "no resources listed".into(),
        });
    }
    Ok(files)
}

/// Every Kubernetes object of a multi-document YAML text, in order (empty documents skipped).
pub fn objects_of(text: &str) -> Result<Vec<Value>, LabError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| LabError::Parse {
        what: "a manifest".into(),
        detail: e.to_string(),
    })?;
    Ok(docs
        .into_iter()
        .filter(|d| d.get("kind").is_some_and(Value::is_string))
        .collect())
}

/// Kinds that live outside namespaces, among those ferrolb's manifests hold.
fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "CustomResourceDefinition"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "ValidatingWebhookConfiguration"
    )
}

/// The API of a manifest object (cluster-scoped kinds at the cluster, the others in their
/// namespace, `default` when none) and the object's name.
pub fn api_of(client: &Client, object: &Value) -> (Api<DynamicObject>, String) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let api = if cluster_scoped(kind) {
        Api::all_with(client.clone(), &resource)
    } else {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        Api::namespaced_with(client.clone(), namespace, &resource)
    };
    (api, name)
}

/// `Kind name` of a manifest object, for messages.
pub fn describe(object: &Value) -> String {
    format!(
        "{} {}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Server-side applies every object of `text` through kube-rs (what the lab does on the test
/// API server, where no kubectl is assumed).
pub async fn apply_objects(client: &Client, text: &str) -> Result<(), LabError> {
    for object in objects_of(text)? {
        let (api, name) = api_of(client, &object);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| LabError::Api(format!("apply {}: {e}", describe(&object))))?;
    }
    Ok(())
}

/// A token of ServiceAccount `name` in ferrolb's namespace (TokenRequest, like
/// `kubectl create token`).
pub async fn token(client: &Client, name: &str) -> Result<String, LabError> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(|e| LabError::Api(format!("a token for ServiceAccount {name}: {e}")))?;
    answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| LabError::Api(format!("the token for {name} came back empty")))
}

/// A kubeconfig for the admin kubeconfig's cluster (same server and CA) that authenticates
/// with `token` as `user`.
pub fn token_kubeconfig(admin: &Path, user: &str, token: &str) -> Result<String, LabError> {
    let file = Kubeconfig::read_from(admin)
        .map_err(|e| LabError::Api(format!("read {}: {e}", admin.display())))?;
    let context = file.current_context.clone().unwrap_or_default();
    let cluster_name = file
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .or_else(|| file.clusters.first().map(|c| c.name.clone()))
        .unwrap_or_default();
    let cluster = file
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| LabError::Api(format!("{} names no cluster", admin.display())))?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": user}}],
        "current-context": "lab",
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemons_run_as_their_own_service_accounts_and_the_cli_as_admin() {
        for (binary, identity, user) in [
            (
                "ferrolb-controller",
                Identity::Controller,
                Some("system:serviceaccount:metallb-system:controller"),
            ),
            (
                "ferrolb-speaker",
                Identity::Speaker,
                Some("system:serviceaccount:metallb-system:speaker"),
            ),
            ("ferrolb", Identity::Admin, None),
        ] {
            assert_eq!(Identity::of_binary(binary), identity, "{binary}");
            assert_eq!(identity.user_name().as_deref(), user, "{binary}");
        }
    }

    #[test]
    fn the_kustomization_installs_namespace_crds_and_daemons_in_that_order() {
        let names: Vec<String> = install_manifests()
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["namespace.yaml", "crds.yaml", "ferrolb.yaml"]);
    }

    #[test]
    fn install_manifests_hold_both_service_accounts_and_their_bindings() {
        let text = std::fs::read_to_string(manifests_dir().join("ferrolb.yaml")).unwrap();
        let objects = objects_of(&text).unwrap();
        for sa in Identity::SERVICE_ACCOUNTS.map(|i| i.service_account().unwrap()) {
            assert!(
                objects
                    .iter()
                    .any(|o| o["kind"] == "ServiceAccount" && o["metadata"]["name"] == sa),
                "{sa}"
            );
        }
        assert!(objects.iter().any(|o| o["kind"] == "ClusterRoleBinding"));
    }

    #[test]
    fn token_kubeconfigs_keep_the_admins_server_and_ca() {
        let dir = std::env::temp_dir().join(format!("flb-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let admin = dir.join("kubeconfig");
        std::fs::write(
            &admin,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://192.168.4.2:6443\", certificate-authority-data: Q0E=}\nusers:\n- name: a\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: a}\ncurrent-context: x\n",
        )
        .unwrap();
        let text = token_kubeconfig(&admin, "speaker", "tok").unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://192.168.4.2:6443"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(v["users"][0]["user"]["token"], "tok");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
