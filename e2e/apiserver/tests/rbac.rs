//! Service-account tokens, bearer authentication and RBAC, checked with kube-rs clients holding
//! a TokenRequest token against the exact answers of the real kube-apiserver 1.24.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use common::{api_error, client_with_token, raw, service_account_token, start, start_with};
use ferrolb_e2e_apiserver::{ServerConfig, spawn};

const CONTROLLER: &str = "system:serviceaccount:metallb-system:controller";

fn from<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Creates a cluster-scoped object as the admin (no credentials: full access).
async fn create_cluster<K>(admin: &Client, object: Value)
where
    K: Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    Api::<K>::all(admin.clone())
        .create(&PostParams::default(), &from(object))
        .await
        .unwrap();
}

/// Creates a namespaced object as the admin.
async fn create_namespaced<K>(admin: &Client, ns: &str, object: Value)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    Api::<K>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &from(object))
        .await
        .unwrap();
}

/// A ClusterRole with `rules`, bound cluster-wide to `metallb-system/controller`.
async fn grant_cluster_wide(admin: &Client, name: &str, rules: Value) {
    create_cluster::<ClusterRole>(admin, json!({"metadata": {"name": name}, "rules": rules})).await;
    create_cluster::<ClusterRoleBinding>(
        admin,
        json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": "metallb-system"}]
        }),
    )
    .await;
}

fn web() -> Service {
    from(
        json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
    )
}

fn forbidden_status(message: String, details: Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Forbidden", "details": details, "code": 403
    })
}

/// conformance: the real kube-apiserver 1.24 lets a service account do what a ClusterRole bound
/// by a ClusterRoleBinding allows, in every namespace, and authenticates the token's user.
#[tokio::test]
async fn allowed_verb_works_with_a_service_account_token() {
    let c = start().await;
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    grant_cluster_wide(
        &c.client,
        "svc-reader",
        json!([{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}]),
    )
    .await;
    let sa = client_with_token(&c.server.url(), &token);
    let all: Api<Service> = Api::all(sa.clone());
    assert!(
        all.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some("kubernetes"))
    );
    let default: Api<Service> = Api::namespaced(sa.clone(), "default");
    default.get("kubernetes").await.unwrap();
    // Discovery (non-resource URLs) is open to every authenticated user.
    sa.apiserver_version().await.unwrap();
    kube::discovery::Discovery::new(sa.clone())
        .run()
        .await
        .unwrap();
}

/// conformance: the real kube-apiserver 1.24 answers a request no rule allows with 403 and the
/// Status built by `NewForbidden(groupResource, name, forbiddenMessage(attributes))`: the
/// qualified resource and name, the user, the verb, `resource/subresource`, the API group and
/// the scope; details carry name, group and the bare resource as kind.
#[tokio::test]
async fn missing_verb_is_forbidden_with_the_real_status_body() {
    let c = start().await;
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    Api::<Service>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &web())
        .await
        .unwrap();
    grant_cluster_wide(
        &c.client,
        "svc-reader",
        json!([{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch", "patch"]}]),
    )
    .await;
    let sa = client_with_token(&c.server.url(), &token);
    let merge = "application/merge-patch+json";
    let cases: &[(&str, &str, &str, Value)] = &[
        (
            "PATCH",
            "/api/v1/namespaces/default/services/web/status",
            r#"{"status":{}}"#,
            forbidden_status(
                format!(
                    "services \"web\" is forbidden: User \"{CONTROLLER}\" cannot patch resource \"services/status\" in API group \"\" in the namespace \"default\""
                ),
                json!({"name": "web", "kind": "services"}),
            ),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/services/web",
            "",
            forbidden_status(
                format!(
                    "services \"web\" is forbidden: User \"{CONTROLLER}\" cannot delete resource \"services\" in API group \"\" in the namespace \"default\""
                ),
                json!({"name": "web", "kind": "services"}),
            ),
        ),
        (
            "GET",
            "/api/v1/configmaps",
            "",
            forbidden_status(
                format!(
                    "configmaps is forbidden: User \"{CONTROLLER}\" cannot list resource \"configmaps\" in API group \"\" at the cluster scope"
                ),
                json!({"kind": "configmaps"}),
            ),
        ),
        (
            "POST",
            "/api/v1/namespaces/x/configmaps",
            r#"{"metadata":{"name":"a"}}"#,
            forbidden_status(
                format!(
                    "configmaps is forbidden: User \"{CONTROLLER}\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"x\""
                ),
                json!({"kind": "configmaps"}),
            ),
        ),
        (
            "GET",
            "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools",
            "",
            forbidden_status(
                format!(
                    "ipaddresspools.metallb.io is forbidden: User \"{CONTROLLER}\" cannot list resource \"ipaddresspools\" in API group \"metallb.io\" in the namespace \"metallb-system\""
                ),
                json!({"group": "metallb.io", "kind": "ipaddresspools"}),
            ),
        ),
        (
            "GET",
            "/",
            "",
            forbidden_status(
                format!("forbidden: User \"{CONTROLLER}\" cannot get path \"/\""),
                json!({}),
            ),
        ),
    ];
    for (method, path, body, want) in cases {
        let (code, got) = raw(&sa, method, path, merge, body).await;
        assert_eq!(code, 403, "{method} {path}");
        assert_eq!(&got, want, "{method} {path}");
    }
    // The same refusal through kube-rs.
    let err = api_error(
        Api::<Service>::namespaced(sa, "default")
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {}})),
            )
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
}

/// conformance: the real kube-apiserver 1.24 applies a Role's rules only in the RoleBinding's
/// namespace, so the same request in another namespace is 403.
#[tokio::test]
async fn role_in_another_namespace_is_forbidden() {
    let c = start().await;
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    create_namespaced::<Role>(
        &c.client,
        "metallb-system",
        json!({"metadata": {"name": "cm"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}),
    )
    .await;
    create_namespaced::<RoleBinding>(
        &c.client,
        "metallb-system",
        // A ServiceAccount subject without a namespace is in the binding's namespace.
        json!({"metadata": {"name": "cm"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm"},
               "subjects": [{"kind": "ServiceAccount", "name": "controller"}]}),
    )
    .await;
    let sa = client_with_token(&c.server.url(), &token);
    Api::<ConfigMap>::namespaced(sa.clone(), "metallb-system")
        .list(&ListParams::default())
        .await
        .unwrap();
    let err = api_error(
        Api::<ConfigMap>::namespaced(sa, "default")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        format!(
            "configmaps is forbidden: User \"{CONTROLLER}\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        )
    );
}

/// conformance: the real kube-apiserver 1.24 grants a ClusterRole referenced by a RoleBinding
/// only inside that RoleBinding's namespace (not cluster-wide, not elsewhere); User and Group
/// subjects match the user name and its groups.
#[tokio::test]
async fn cluster_role_bound_by_a_role_binding_is_limited_to_its_namespace() {
    let c = start().await;
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    create_cluster::<ClusterRole>(
        &c.client,
        json!({"metadata": {"name": "cm-reader"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
    )
    .await;
    let sa = client_with_token(&c.server.url(), &token);
    let subjects_cases = [
        (
            "by-user",
            json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": CONTROLLER}]),
        ),
        (
            "by-group",
            json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:serviceaccounts:metallb-system"}]),
        ),
        (
            "by-account",
            json!([{"kind": "ServiceAccount", "name": "controller", "namespace": "metallb-system"}]),
        ),
    ];
    for (i, (binding, subjects)) in subjects_cases.into_iter().enumerate() {
        let ns = ["kube-public", "kube-node-lease", "kube-system"][i];
        create_namespaced::<RoleBinding>(
            &c.client,
            ns,
            json!({"metadata": {"name": binding}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-reader"},
                   "subjects": subjects}),
        )
        .await;
        Api::<ConfigMap>::namespaced(sa.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("{binding}: {e}"));
    }
    for ns in ["default", "metallb-system"] {
        let err = api_error(
            Api::<ConfigMap>::namespaced(sa.clone(), ns)
                .list(&ListParams::default())
                .await,
        );
        assert_eq!(err.code, 403, "{ns}");
    }
    let err = api_error(
        Api::<ConfigMap>::all(sa.clone())
            .list(&ListParams::default())
            .await,
    );
    assert!(
        err.message.ends_with("at the cluster scope"),
        "{}",
        err.message
    );
}

/// conformance: the real kube-apiserver 1.24 matches `resourceNames` against the request's
/// object name: a named get is allowed only for the listed names; a plain list has no name and
/// is refused; a list whose field selector is exactly `metadata.name=<listed>` carries that name
/// (RequestInfo takes it) and is allowed; a create has no name and is refused.
#[tokio::test]
async fn resource_names_restrict_named_requests() {
    let c = start().await;
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    for name in ["memberlist", "other"] {
        create_namespaced::<Secret>(
            &c.client,
            "metallb-system",
            json!({"metadata": {"name": name}}),
        )
        .await;
    }
    create_namespaced::<Role>(
        &c.client,
        "metallb-system",
        json!({"metadata": {"name": "memberlist"}, "rules": [{"apiGroups": [""], "resources": ["secrets"],
               "resourceNames": ["memberlist"], "verbs": ["get", "list", "create"]}]}),
    )
    .await;
    create_namespaced::<RoleBinding>(
        &c.client,
        "metallb-system",
        json!({"metadata": {"name": "memberlist"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "memberlist"},
               "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": "metallb-system"}]}),
    )
    .await;
    let secrets: Api<Secret> =
        Api::namespaced(client_with_token(&c.server.url(), &token), "metallb-system");
    secrets.get("memberlist").await.unwrap();
    let by_name = secrets
        .list(&ListParams::default().fields("metadata.name=memberlist"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    let err = api_error(secrets.get("other").await);
    assert_eq!(err.code, 403);
    let details = err.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("other", "secrets")
    );
    assert_eq!(
        api_error(secrets.list(&ListParams::default()).await).code,
        403
    );
    let created = secrets
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "memberlist2"}})),
        )
        .await;
    assert_eq!(api_error(created).code, 403);
}

/// conformance: the real kube-apiserver 1.24 treats a subresource as `resource/subresource` in
/// RBAC: a rule on `services` does not allow PATCH of `services/status`; a rule on
/// `services/status` does (`Api::patch_status`).
#[tokio::test]
async fn status_subresource_needs_its_own_rule() {
    let c = start().await;
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    Api::<Service>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &web())
        .await
        .unwrap();
    grant_cluster_wide(
        &c.client,
        "svc-writer",
        json!([{"apiGroups": [""], "resources": ["services"], "verbs": ["*"]}]),
    )
    .await;
    let services: Api<Service> =
        Api::namespaced(client_with_token(&c.server.url(), &token), "default");
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}});
    let err = api_error(
        services
            .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
            .await,
    );
    assert_eq!(err.code, 403);
    assert!(
        err.message
            .contains("cannot patch resource \"services/status\"")
    );
    grant_cluster_wide(
        &c.client,
        "svc-status",
        json!([{"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch", "update"]}]),
    )
    .await;
    let patched = services
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        patched
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()[0]
            .ip
            .as_deref(),
        Some("192.0.2.10")
    );
}

/// conformance: the real kube-apiserver 1.24 answers a bearer token it did not issue with 401
/// and exactly this Status body, on every path (authentication runs first).
#[tokio::test]
async fn unknown_token_is_unauthorized() {
    let c = start().await;
    let stranger = client_with_token(&c.server.url(), "not-a-token");
    let want = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
    for path in ["/api/v1/namespaces/default/services", "/version", "/api"] {
        let (code, body) = raw(&stranger, "GET", path, "application/json", "").await;
        assert_eq!((code, &body), (401, &want), "{path}");
    }
    let err = api_error(
        Api::<Service>::all(stranger)
            .list(&ListParams::default())
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (401, "Unauthorized"));
}

/// conformance: the real kube-apiserver 1.24 stops accepting a service account's tokens once
/// the account is deleted, and a new account of the same name (new uid) does not revive them.
#[tokio::test]
async fn token_of_a_deleted_service_account_is_unauthorized() {
    let c = start().await;
    let token = service_account_token(&c.client, "default", "app").await;
    grant_cluster_wide(
        &c.client,
        "svc-reader",
        json!([{"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}]),
    )
    .await;
    let sa = client_with_token(&c.server.url(), &token);
    // Authenticated (403 from RBAC, not 401): the binding is for metallb-system/controller.
    assert_eq!(
        api_error(
            Api::<Service>::all(sa.clone())
                .list(&ListParams::default())
                .await
        )
        .code,
        403
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "default");
    accounts
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    let err = api_error(
        Api::<Service>::all(sa.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_eq!((err.code, err.message.as_str()), (401, "Unauthorized"));
    accounts
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "app"}})),
        )
        .await
        .unwrap();
    let err = api_error(Api::<Service>::all(sa).list(&ListParams::default()).await);
    assert_eq!(err.code, 401);
}

/// conformance: the real kube-apiserver 1.24 answers a TokenRequest for a ServiceAccount that
/// does not exist with 404 NotFound `serviceaccounts "<name>" not found`, and a granted one
/// with 201, `status.token` and `status.expirationTimestamp`, audiences and expiry defaulted.
#[tokio::test]
async fn token_request_for_a_missing_service_account_is_not_found() {
    let c = start().await;
    let accounts: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "default");
    let request: TokenRequest = from(json!({"spec": {"audiences": []}}));
    let err = api_error(
        accounts
            .create_token_request("ghost", &PostParams::default(), &request)
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "serviceaccounts \"ghost\" not found");
    let details = err.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("ghost", "serviceaccounts")
    );

    accounts
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "app"}})),
        )
        .await
        .unwrap();
    let (code, body) = raw(
        &c.client,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/app/token",
        "application/json",
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}"#,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(body["kind"], "TokenRequest");
    assert_eq!(body["metadata"]["name"], "app");
    assert_eq!(body["spec"]["expirationSeconds"], 3600);
    assert!(!body["spec"]["audiences"][0].as_str().unwrap().is_empty());
    assert!(!body["status"]["token"].as_str().unwrap().is_empty());
    assert!(
        body["status"]["expirationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let short: TokenRequest = from(json!({"spec": {"audiences": [], "expirationSeconds": 60}}));
    let err = api_error(
        accounts
            .create_token_request("app", &PostParams::default(), &short)
            .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
    );
}

/// conformance: the real kube-apiserver 1.24 keeps accepting a token across its own restart
/// (tokens are signed, not stored); here they are kept in the state file.
#[tokio::test]
async fn tokens_survive_a_restart_with_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        state_file: Some(dir.path().join("state.json")),
        ..ServerConfig::default()
    };
    let c = start_with(config.clone()).await;
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    grant_cluster_wide(
        &c.client,
        "svc-reader",
        json!([{"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}]),
    )
    .await;
    let addr = c.server.addr;
    c.server.shutdown().await.unwrap();
    let server = spawn(addr, config).await.unwrap();
    let sa = client_with_token(&server.url(), &token);
    Api::<Service>::all(sa.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_error(Api::<ConfigMap>::all(sa).list(&ListParams::default()).await).code,
        403
    );
    let stranger = client_with_token(&server.url(), "not-a-token");
    assert_eq!(
        api_error(
            Api::<Service>::all(stranger)
                .list(&ListParams::default())
                .await
        )
        .code,
        401
    );
}

/// conformance: the real kube-apiserver 1.24 authorizes a watch as verb `watch`: `list`
/// alone does not allow it, and the refusal is a 403 before the stream starts.
#[tokio::test]
async fn watch_without_the_watch_verb_is_forbidden() {
    let c = start().await;
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    grant_cluster_wide(
        &c.client,
        "pool-lister",
        json!([{"apiGroups": ["metallb.io"], "resources": ["ipaddresspools"], "verbs": ["list"]}]),
    )
    .await;
    let sa = client_with_token(&c.server.url(), &token);
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool"),
        "ipaddresspools",
    );
    let pools: Api<DynamicObject> = Api::all_with(sa, &resource);
    pools.list(&ListParams::default()).await.unwrap();
    let err = match pools.watch(&WatchParams::default(), "0").await {
        Err(kube::Error::Api(s)) => *s,
        Ok(stream) => {
            let first = stream.boxed().next().await;
            panic!("the watch started: {first:?}");
        }
        Err(e) => panic!("unexpected error {e}"),
    };
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        format!(
            "ipaddresspools.metallb.io is forbidden: User \"{CONTROLLER}\" cannot watch resource \"ipaddresspools\" in API group \"metallb.io\" at the cluster scope"
        )
    );
}

/// conformance: the real kube-apiserver 1.24 adds `RBAC: <role> not found` to the refusal when
/// a binding that applies to the user references a missing role.
#[tokio::test]
async fn binding_to_a_missing_role_is_named_in_the_refusal() {
    let c = start().await;
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    create_cluster::<ClusterRoleBinding>(
        &c.client,
        json!({"metadata": {"name": "dangling"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "absent"},
               "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": "metallb-system"}]}),
    )
    .await;
    let sa = client_with_token(&c.server.url(), &token);
    let err = api_error(Api::<Service>::all(sa).list(&ListParams::default()).await);
    assert_eq!(
        err.message,
        format!(
            "services is forbidden: User \"{CONTROLLER}\" cannot list resource \"services\" in API group \"\" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io \"absent\" not found"
        )
    );
}
