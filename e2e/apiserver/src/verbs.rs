//! The verbs (get, list, create, update, patch, delete) over the shared state, with the kind
//! rules applied. Everything here is synchronous and runs under the state lock.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::allocator::Allocators;
use crate::apply::{self, Scope};
use crate::kinds::{Behaviour, Registry, ResourceKind};
use crate::meta::{self, NameRule};
use crate::patch::{self, PatchType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::service::{self, Plan};
use crate::status::{ApiError, FieldError};
use crate::store::{ObjectKey, Store};
use crate::{core_rules, crd, events};

/// The namespaces that exist from the start, like on a fresh cluster (plus ferrolb's own).
pub const INITIAL_NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "metallb-system",
];

/// Everything the server holds.
#[derive(Debug)]
pub struct State {
    /// Objects and their history.
    pub store: Store,
    /// Served kinds.
    pub registry: Registry,
    /// Service cluster IPs and node ports.
    pub alloc: Allocators,
    /// Service-account tokens issued by TokenRequest, by token.
    pub tokens: crate::auth::Tokens,
}

/// Which endpoint a write came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// The object itself.
    Main,
    /// The /status subresource.
    Status,
}

/// Options of a write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager`, or the user agent's product name.
    pub manager: String,
    /// Whether `fieldManager` was given explicitly.
    pub manager_given: bool,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `force` (apply only).
    pub force: Option<bool>,
}

/// The outcome of a write: HTTP code and the object as the client sees it.
#[derive(Debug)]
pub struct Written {
    /// 200 or 201.
    pub code: u16,
    /// The object in the requested kind's form.
    pub object: Value,
}

/// How managedFields are updated by a write.
enum Managed<'a> {
    /// A create/update/patch by this manager.
    Update(&'a str),
    /// An apply already rewrote them.
    Applied,
}

impl State {
    /// A fresh state with the initial namespaces and the `kubernetes` Service.
    pub fn new(history_limit: usize) -> Self {
        let mut state = Self {
            store: Store::new(history_limit),
            registry: Registry::builtin(),
            alloc: Allocators::default(),
            tokens: crate::auth::Tokens::default(),
        };
        state.seed();
        state
    }

    fn seed(&mut self) {
        let opts = WriteOptions {
            manager: "kube-apiserver".into(),
            ..Default::default()
        };
        for ns in INITIAL_NAMESPACES {
            if let Some(kind) = self.registry.find("", "v1", "namespaces") {
                let body =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                if let Err(e) = create(self, &kind, None, body, &opts) {
                    tracing::error!(namespace = ns, error = %e, "seeding a namespace failed");
                }
            }
        }
        if let Some(kind) = self.registry.find("", "v1", "services") {
            let body = json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}
            });
            if let Err(e) = create(self, &kind, Some("default"), body, &opts) {
                tracing::error!(error = %e, "seeding the kubernetes Service failed");
            }
        }
    }
}

/// The object as the requested kind shows it.
pub fn to_view(kind: &ResourceKind, stored: &Value) -> Value {
    match kind.behaviour {
        Behaviour::EventsV1 => events::to_events_v1(stored),
        Behaviour::Custom if stored["apiVersion"] != json!(kind.api_version()) => {
            let mut v = stored.clone();
            v["apiVersion"] = json!(kind.api_version());
            v
        }
        _ => stored.clone(),
    }
}

/// Whether `to_view` would return the stored object unchanged.
pub fn view_is_identity(kind: &ResourceKind, stored: &Value) -> bool {
    match kind.behaviour {
        Behaviour::EventsV1 => false,
        Behaviour::Custom => stored["apiVersion"] == json!(kind.api_version()),
        _ => true,
    }
}

fn from_view(kind: &ResourceKind, v: Value) -> Value {
    match kind.behaviour {
        Behaviour::EventsV1 => events::from_events_v1(&v),
        _ => v,
    }
}

fn key_for(kind: &ResourceKind, namespace: Option<&str>, name: &str) -> ObjectKey {
    let ns = if kind.namespaced {
        namespace.unwrap_or("")
    } else {
        ""
    };
    ObjectKey::new(ns, name)
}

fn name_rule(kind: &ResourceKind) -> NameRule {
    match kind.behaviour {
        Behaviour::Service => NameRule::Dns1035Label,
        Behaviour::Namespace => NameRule::Label,
        Behaviour::Rbac => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

fn stamp_rv(object: &mut Value, rv: u64) {
    meta::metadata_mut(object).insert("resourceVersion".into(), json!(rv.to_string()));
}

/// Checks apiVersion/kind of a body against the URL, filling them when absent.
fn check_type(kind: &ResourceKind, body: &mut Value) -> Result<(), ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let want_av = kind.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(av) if av != want_av => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
        Some(_) => {}
        None => {
            map.insert("apiVersion".into(), json!(want_av));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != kind.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            kind.kind
        ))),
        Some(_) => Ok(()),
        None => {
            map.insert("kind".into(), json!(kind.kind));
            Ok(())
        }
    }
}

/// Checks or fills metadata.namespace against the URL.
fn check_namespace(
    kind: &ResourceKind,
    body: &mut Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let md = meta::metadata_mut(body);
    if !kind.namespaced {
        md.remove("namespace");
        return Ok(());
    }
    let Some(url_ns) = namespace else {
        return Err(ApiError::method_not_allowed(
            "namespaced resource without namespace",
        ));
    };
    match md
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(ns) if ns != url_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            md.insert("namespace".into(), json!(url_ns));
            Ok(())
        }
    }
}

fn namespace_exists(state: &State, namespace: &str) -> bool {
    let Some(ns_kind) = state.registry.find("", "v1", "namespaces") else {
        return false;
    };
    state
        .store
        .get(&ns_kind.storage, &ObjectKey::new("", namespace))
        .is_some()
}

fn metadata_errors(object: &Value) -> Vec<FieldError> {
    let mut e = meta::validate_string_map(object, "labels");
    e.extend(meta::validate_string_map(object, "annotations"));
    e
}

fn scope_of(kind: &ResourceKind, sub: Sub) -> Scope {
    match sub {
        Sub::Main => Scope::Main {
            status_subresource: kind.status_subresource,
        },
        Sub::Status => Scope::Status,
    }
}

fn none_or(errors: Vec<FieldError>) -> Result<Option<Plan>, Vec<FieldError>> {
    if errors.is_empty() {
        Ok(None)
    } else {
        Err(errors)
    }
}

/// Kind rules for a new object; returns the Service allocation plan if any.
fn prepare_create(
    state: &mut State,
    kind: &ResourceKind,
    obj: &mut Value,
) -> Result<Option<Plan>, Vec<FieldError>> {
    match kind.behaviour {
        Behaviour::Namespace => {
            let name = meta::name_of(obj).to_string();
            let md = meta::metadata_mut(obj);
            let labels = md.entry("labels").or_insert_with(|| json!({}));
            if labels.is_object() {
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            obj["status"] = json!({"phase": "Active"});
            Ok(None)
        }
        Behaviour::Service => {
            obj["status"] = json!({"loadBalancer": {}});
            service::prepare(obj, None, &mut state.alloc).map(Some)
        }
        Behaviour::Pod => {
            let mut errors = Vec::new();
            match obj["spec"]["containers"].as_array() {
                Some(cs) if !cs.is_empty() => {
                    for (i, c) in cs.iter().enumerate() {
                        for field in ["name", "image"] {
                            if c[field].as_str().unwrap_or("").is_empty() {
                                errors.push(FieldError::required(
                                    format!("spec.containers[{i}].{field}"),
                                    "",
                                ));
                            }
                        }
                    }
                }
                _ => errors.push(FieldError::required("spec.containers", "")),
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("restartPolicy", json!("Always")),
                ("dnsPolicy", json!("ClusterFirst")),
                ("schedulerName", json!("default-scheduler")),
                ("terminationGracePeriodSeconds", json!(30)),
            ] {
                if spec[k].is_null() {
                    spec[k] = v;
                }
            }
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            Ok(None)
        }
        Behaviour::Crd => {
            let errors = crd::validate(obj);
            if !errors.is_empty() {
                return Err(errors);
            }
            crd::establish(obj);
            Ok(None)
        }
        Behaviour::Custom => {
            if kind.status_subresource
                && let Some(m) = obj.as_object_mut()
            {
                m.remove("status");
            }
            Ok(None)
        }
        Behaviour::Secret => none_or(core_rules::prepare_secret(obj, None)),
        Behaviour::EndpointSlice => none_or(core_rules::validate_endpoint_slice(obj, None)),
        Behaviour::Node
        | Behaviour::CoreEvent
        | Behaviour::EventsV1
        | Behaviour::Plain
        | Behaviour::Rbac => Ok(None),
    }
}

/// Kind rules for an updated object.
fn prepare_update(
    state: &mut State,
    kind: &ResourceKind,
    old: &Value,
    obj: &mut Value,
    sub: Sub,
) -> Result<Option<Plan>, Vec<FieldError>> {
    match (kind.behaviour, sub) {
        (Behaviour::Service, Sub::Main) => {
            let errors = service::prepare_status(obj);
            if !errors.is_empty() {
                return Err(errors);
            }
            service::prepare(obj, Some(old), &mut state.alloc).map(Some)
        }
        (Behaviour::Service, Sub::Status) => {
            let errors = service::prepare_status(obj);
            if errors.is_empty() {
                Ok(None)
            } else {
                Err(errors)
            }
        }
        (Behaviour::Namespace, _) => {
            let name = meta::name_of(obj).to_string();
            let md = meta::metadata_mut(obj);
            let labels = md.entry("labels").or_insert_with(|| json!({}));
            if labels.is_object() {
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
            Ok(None)
        }
        (Behaviour::Crd, Sub::Main) => {
            let errors = crd::validate(obj);
            if !errors.is_empty() {
                return Err(errors);
            }
            for field in ["group", "scope"] {
                if obj["spec"][field] != old["spec"][field] {
                    return Err(vec![FieldError::invalid(
                        format!("spec.{field}"),
                        &obj["spec"][field],
                        "field is immutable",
                    )]);
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Registers the kinds of a CRD after it was stored.
fn after_crd_write(state: &mut State, crd_obj: &Value) {
    for mut k in crd::served_kinds(crd_obj) {
        let builtin = state
            .registry
            .find(&k.group, &k.version, &k.plural)
            .is_some_and(|existing| !existing.from_crd);
        if builtin {
            k.from_crd = false;
        }
        state.registry.register(k);
    }
}

fn rollback(state: &mut State, plan: Option<Plan>) {
    if let Some(p) = plan {
        p.rollback(&mut state.alloc);
    }
}

/// create: POST to a collection.
pub fn create(
    state: &mut State,
    kind: &Arc<ResourceKind>,
    namespace: Option<&str>,
    body: Value,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    create_object(
        state,
        kind,
        namespace,
        body,
        opts,
        Managed::Update(&opts.manager),
    )
}

fn create_object(
    state: &mut State,
    kind: &Arc<ResourceKind>,
    namespace: Option<&str>,
    mut body: Value,
    opts: &WriteOptions,
    managed: Managed<'_>,
) -> Result<Written, ApiError> {
    check_type(kind, &mut body)?;
    if kind.behaviour == Behaviour::EventsV1 {
        let errors = events::validate_v1_create(&body);
        if !errors.is_empty() {
            return Err(ApiError::invalid(kind, meta::name_of(&body), &errors));
        }
    }
    let mut obj = from_view(kind, body);
    check_namespace(kind, &mut obj, namespace)?;
    let ns = if kind.namespaced {
        namespace.unwrap_or("")
    } else {
        ""
    };

    // The real ValidateObjectMeta checks generateName with the kind's name rule in prefix
    // mode, after the name was generated from it (so the message names the generated name).
    let generate_name = meta::meta_str(&obj, "generateName")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut errors: Vec<FieldError> = generate_name
        .as_deref()
        .map(|g| meta::name_errors(g, name_rule(kind), true, "metadata.generateName"))
        .unwrap_or_default();
    let mut name = meta::name_of(&obj).to_string();
    if name.is_empty() {
        let Some(prefix) = meta::meta_str(&obj, "generateName").filter(|s| !s.is_empty()) else {
            return Err(ApiError::invalid(
                kind,
                "",
                &[FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        };
        let prefix = prefix.to_string();
        name = format!("{prefix}{}", meta::random_suffix());
        for _ in 0..8 {
            if state
                .store
                .get(&kind.storage, &ObjectKey::new(ns, &name))
                .is_none()
            {
                break;
            }
            name = format!("{prefix}{}", meta::random_suffix());
        }
        meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
    }
    errors.extend(meta::name_errors(
        &name,
        name_rule(kind),
        false,
        "metadata.name",
    ));
    errors.extend(metadata_errors(&obj));
    if !errors.is_empty() {
        return Err(ApiError::invalid(kind, &name, &errors));
    }
    if kind.namespaced && !namespace_exists(state, ns) {
        return Err(ApiError::namespace_not_found(ns));
    }
    let key = ObjectKey::new(ns, &name);
    if state.store.get(&kind.storage, &key).is_some() {
        return Err(ApiError::already_exists(kind, &name));
    }

    {
        let md = meta::metadata_mut(&mut obj);
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            md.remove(field);
        }
        if matches!(managed, Managed::Update(_)) {
            md.remove("managedFields");
        }
        md.insert("uid".into(), json!(meta::new_uid()));
        md.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        if kind.tracks_generation {
            md.insert("generation".into(), json!(1));
        } else {
            md.remove("generation");
        }
    }
    let plan =
        prepare_create(state, kind, &mut obj).map_err(|e| ApiError::invalid(kind, &name, &e))?;
    if let Managed::Update(manager) = managed {
        apply::record_update(
            None,
            &mut obj,
            manager,
            scope_of(kind, Sub::Main),
            &kind.api_version(),
        );
    }
    if opts.dry_run {
        rollback(state, plan);
        return Ok(Written {
            code: 201,
            object: to_view(kind, &obj),
        });
    }
    let rv = state.store.next_rv();
    stamp_rv(&mut obj, rv);
    let stored = state.store.put(&kind.storage, key, rv, obj);
    if let Some(p) = plan {
        p.commit(&mut state.alloc);
    }
    if kind.behaviour == Behaviour::Crd {
        after_crd_write(state, &stored);
    }
    Ok(Written {
        code: 201,
        object: to_view(kind, &stored),
    })
}

/// get: one object.
pub fn get(
    state: &State,
    kind: &ResourceKind,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    state
        .store
        .get(&kind.storage, &key_for(kind, namespace, name))
        .map(|o| to_view(kind, &o))
        .ok_or_else(|| ApiError::not_found(kind, name))
}

/// Parameters of a list request.
#[derive(Debug, Default)]
pub struct ListParams {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// Whether either selector was given (the real server then omits remainingItemCount).
    pub selective: bool,
    /// `limit` (0 = all).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
}

/// A page of objects as stored, with list metadata.
#[derive(Debug)]
pub struct ListPage {
    /// Matching objects in key order (stored form).
    pub items: Vec<Arc<Value>>,
    /// The list's resourceVersion.
    pub resource_version: u64,
    /// The continue token, if more items remain.
    pub continue_token: Option<String>,
    /// How many matching items remain after this page.
    pub remaining: Option<usize>,
}

fn parse_continue(token: &str) -> Result<(u64, ObjectKey), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let (rv, rest) = token.split_once(':').ok_or_else(bad)?;
    let (ns, name) = rest.split_once('/').ok_or_else(bad)?;
    Ok((rv.parse().map_err(|_| bad())?, ObjectKey::new(ns, name)))
}

/// list: the objects of a kind, filtered and paged.
pub fn list(
    state: &State,
    kind: &ResourceKind,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<ListPage, ApiError> {
    let (rv, after) = match &params.continue_token {
        Some(t) => {
            let (rv, key) = parse_continue(t)?;
            (rv, Some(key))
        }
        None => (state.store.current_rv(), None),
    };
    let ns_filter = if kind.namespaced { namespace } else { None };
    let mut items = Vec::new();
    let mut remaining = 0usize;
    let mut last_key = None;
    if let Some(coll) = state.store.get_collection(&kind.storage) {
        let mut objects = coll.iter_after(ns_filter, after.as_ref());
        for (key, obj) in objects.by_ref() {
            if !params.labels.matches(obj) || !params.fields.matches(obj) {
                continue;
            }
            if params.limit > 0 && items.len() >= params.limit {
                // One more exists: enough for a continue token. The real
                // server counts the rest only when nothing is filtered out.
                remaining = 1;
                break;
            }
            last_key = Some(key.clone());
            items.push(obj.clone());
        }
        if remaining > 0 && !params.selective {
            remaining += objects.count();
        }
    }
    let continue_token = (remaining > 0)
        .then(|| last_key.map(|k| format!("{rv}:{}/{}", k.namespace, k.name)))
        .flatten();
    Ok(ListPage {
        items,
        resource_version: rv,
        remaining: (continue_token.is_some() && !params.selective).then_some(remaining),
        continue_token,
    })
}

/// update: PUT of the object or its status.
pub fn update(
    state: &mut State,
    kind: &Arc<ResourceKind>,
    namespace: Option<&str>,
    name: &str,
    mut body: Value,
    sub: Sub,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    check_type(kind, &mut body)?;
    let body_name = meta::name_of(&body).to_string();
    if body_name.is_empty() {
        meta::metadata_mut(&mut body).insert("name".into(), json!(name));
    } else if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let key = key_for(kind, namespace, name);
    let Some(old) = state.store.get(&kind.storage, &key) else {
        if kind.allow_create_on_update && sub == Sub::Main {
            return create(state, kind, namespace, body, opts);
        }
        return Err(ApiError::not_found(kind, name));
    };
    let mut obj = from_view(kind, body);
    check_namespace(kind, &mut obj, namespace)?;
    match meta::resource_version_of(&obj) {
        Some(rv) if Some(rv) != meta::resource_version_of(&old) => {
            return Err(ApiError::conflict(kind, name));
        }
        Some(_) => {}
        None if kind.allow_unconditional_update => {}
        None => {
            return Err(ApiError::invalid(
                kind,
                name,
                &[FieldError::invalid(
                    "metadata.resourceVersion",
                    &json!(0),
                    "must be specified for an update",
                )],
            ));
        }
    }
    commit_update(
        state,
        kind,
        &old,
        obj,
        sub,
        Managed::Update(&opts.manager),
        opts,
    )
}

/// Writes a new version of an existing object: system metadata kept, status/spec isolation,
/// kind rules, generation, managedFields, no-op detection, finalizer-driven deletion.
fn commit_update(
    state: &mut State,
    kind: &Arc<ResourceKind>,
    old: &Arc<Value>,
    mut obj: Value,
    sub: Sub,
    managed: Managed<'_>,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    let name = meta::name_of(old).to_string();
    if sub == Sub::Status {
        let status = obj.get("status").cloned();
        let managed_fields = obj["metadata"].get("managedFields").cloned();
        obj = (**old).clone();
        match status {
            Some(s) => obj["status"] = s,
            None => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        if let (Managed::Applied, Some(mf)) = (&managed, managed_fields) {
            meta::metadata_mut(&mut obj).insert("managedFields".into(), mf);
        }
    } else if kind.status_subresource {
        match old.get("status") {
            Some(s) => obj["status"] = s.clone(),
            None => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    {
        let old_md = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let md = meta::metadata_mut(&mut obj);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old_md.get(field) {
                Some(v) => md.insert(field.into(), v.clone()),
                None => md.remove(field),
            };
        }
        if matches!(managed, Managed::Update(_)) {
            match old_md.get("managedFields") {
                Some(v) => md.insert("managedFields".into(), v.clone()),
                None => md.remove("managedFields"),
            };
        }
        md.remove("selfLink");
    }
    if old["metadata"].get("deletionTimestamp").is_some() {
        // Once deleting, finalizers may only be removed, not added.
        let old_f = old["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let new_f = obj["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if new_f.iter().any(|f| !old_f.contains(f)) {
            return Err(ApiError::invalid(
                kind,
                &name,
                &[FieldError::forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                )],
            ));
        }
    }
    let errors = metadata_errors(&obj);
    if !errors.is_empty() {
        return Err(ApiError::invalid(kind, &name, &errors));
    }
    let plan = prepare_update(state, kind, old, &mut obj, sub)
        .map_err(|e| ApiError::invalid(kind, &name, &e))?;

    if kind.tracks_generation && sub == Sub::Main {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        if strip(old) != strip(&obj) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta::metadata_mut(&mut obj).insert("generation".into(), json!(g));
        }
    }
    if let Managed::Update(manager) = managed {
        apply::record_update(
            Some(old),
            &mut obj,
            manager,
            scope_of(kind, sub),
            &kind.api_version(),
        );
    }
    let noop = obj == **old;
    if noop || opts.dry_run {
        rollback(state, plan);
        let shown = if noop { (**old).clone() } else { obj };
        return Ok(Written {
            code: 200,
            object: to_view(kind, &shown),
        });
    }
    let deleting = obj["metadata"].get("deletionTimestamp").is_some()
        && obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
    let key = key_for(kind, meta::meta_str(old, "namespace"), &name);
    let rv = state.store.next_rv();
    stamp_rv(&mut obj, rv);
    if let Some(p) = plan {
        p.commit(&mut state.alloc);
    }
    if deleting {
        let gone = finish_delete(state, kind, &key, obj, rv);
        return Ok(Written {
            code: 200,
            object: to_view(kind, &gone),
        });
    }
    let stored = state.store.put(&kind.storage, key, rv, obj);
    if kind.behaviour == Behaviour::Crd {
        after_crd_write(state, &stored);
    }
    Ok(Written {
        code: 200,
        object: to_view(kind, &stored),
    })
}

/// The parsed body of a patch request.
#[derive(Debug, Clone)]
pub struct PatchRequest {
    /// Patch type from Content-Type.
    pub patch_type: PatchType,
    /// The patch document (YAML apply bodies already converted).
    pub body: Value,
}

/// patch: PATCH of the object or its status.
pub fn patch(
    state: &mut State,
    kind: &Arc<ResourceKind>,
    namespace: Option<&str>,
    name: &str,
    req: PatchRequest,
    sub: Sub,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    if req.patch_type == PatchType::Apply {
        return apply_patch(state, kind, namespace, name, req.body, sub, opts);
    }
    if opts.force.is_some() {
        return Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch".into(),
            details: None,
        });
    }
    if req.patch_type == PatchType::Strategic && !kind.accepts_strategic_merge() {
        return Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json",
        ));
    }
    let key = key_for(kind, namespace, name);
    let Some(old) = state.store.get(&kind.storage, &key) else {
        return Err(ApiError::not_found(kind, name));
    };
    let mut view = to_view(kind, &old);
    match req.patch_type {
        PatchType::Merge => patch::merge(&mut view, &req.body),
        PatchType::Json => patch::json(&mut view, &req.body)?,
        PatchType::Strategic => patch::strategic(&mut view, &req.body, &kind.kind)?,
        PatchType::Apply => {}
    }
    if !view.is_object() {
        return Err(ApiError::bad_request(
            "the patched object is not a JSON object",
        ));
    }
    if meta::name_of(&view) != name {
        return Err(ApiError::invalid(
            kind,
            name,
            &[FieldError::invalid(
                "metadata.name",
                &json!(meta::name_of(&view)),
                "field is immutable",
            )],
        ));
    }
    if let Some(rv) = meta::resource_version_of(&view)
        && Some(rv) != meta::resource_version_of(&old)
    {
        return Err(ApiError::conflict(kind, name));
    }
    check_type(kind, &mut view)?;
    let obj = from_view(kind, view);
    commit_update(
        state,
        kind,
        &old,
        obj,
        sub,
        Managed::Update(&opts.manager),
        opts,
    )
}

fn apply_patch(
    state: &mut State,
    kind: &Arc<ResourceKind>,
    namespace: Option<&str>,
    name: &str,
    mut config: Value,
    sub: Sub,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    if !opts.manager_given || opts.manager.is_empty() {
        return Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
            details: None,
        });
    }
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    for field in ["apiVersion", "kind"] {
        if config
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(format!(
                "{field} must be set in an applied configuration"
            )));
        }
    }
    check_type(kind, &mut config)?;
    let cfg_name = meta::name_of(&config);
    if !cfg_name.is_empty() && cfg_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({cfg_name}) does not match the name on the URL ({name})"
        )));
    }
    let force = opts.force.unwrap_or(false);
    let key = key_for(kind, namespace, name);
    let api_version = kind.api_version();
    let Some(old) = state.store.get(&kind.storage, &key) else {
        if sub == Sub::Status {
            return Err(ApiError::not_found(kind, name));
        }
        let base =
            json!({"apiVersion": api_version, "kind": kind.kind, "metadata": {"name": name}});
        let mut created = apply::apply(
            &base,
            &config,
            &opts.manager,
            force,
            scope_of(kind, sub),
            &api_version,
        )
        .map_err(|c| apply_conflict(kind, name, &c))?;
        // Identity fields of the configuration are not part of the tracked merge.
        if let Some(ns) = config["metadata"].get("namespace") {
            meta::metadata_mut(&mut created).insert("namespace".into(), ns.clone());
        }
        return create_object(state, kind, namespace, created, opts, Managed::Applied);
    };
    let current = to_view(kind, &old);
    let merged = apply::apply(
        &current,
        &config,
        &opts.manager,
        force,
        scope_of(kind, sub),
        &api_version,
    )
    .map_err(|c| apply_conflict(kind, name, &c))?;
    if let Some(rv) = meta::resource_version_of(&config)
        && Some(rv) != meta::resource_version_of(&old)
    {
        return Err(ApiError::conflict(kind, name));
    }
    let obj = from_view(kind, merged);
    commit_update(state, kind, &old, obj, sub, Managed::Applied, opts)
}

fn apply_conflict(kind: &ResourceKind, name: &str, conflicts: &[apply::Conflict]) -> ApiError {
    let mut details = json!({"name": name, "kind": kind.plural});
    if !kind.group.is_empty() {
        details["group"] = json!(kind.group);
    }
    details["causes"] = Value::Array(
        conflicts
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                    "field": c.field,
                })
            })
            .collect(),
    );
    ApiError {
        code: 409,
        reason: "Conflict",
        message: apply::conflict_message(conflicts),
        details: Some(details),
    }
}

/// Preconditions of a DeleteOptions body.
#[derive(Debug, Default)]
pub struct DeletePreconditions {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// delete: removes the object (or marks it deleting while finalizers remain).
pub fn delete(
    state: &mut State,
    kind: &Arc<ResourceKind>,
    namespace: Option<&str>,
    name: &str,
    pre: &DeletePreconditions,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    let key = key_for(kind, namespace, name);
    let Some(old) = state.store.get(&kind.storage, &key) else {
        return Err(ApiError::not_found(kind, name));
    };
    if let Some(uid) = &pre.uid {
        let actual = meta::meta_str(&old, "uid").unwrap_or("");
        if uid != actual {
            return Err(ApiError::conflict_with(
                kind,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &pre.resource_version {
        let actual = meta::resource_version_of(&old).unwrap_or("");
        if rv != actual {
            return Err(ApiError::conflict_with(
                kind,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    if opts.dry_run {
        return Ok(Written {
            code: 200,
            object: to_view(kind, &old),
        });
    }
    let has_finalizers = old["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if old["metadata"].get("deletionTimestamp").is_some() {
            return Ok(Written {
                code: 200,
                object: to_view(kind, &old),
            });
        }
        let mut obj = (*old).clone();
        let md = meta::metadata_mut(&mut obj);
        md.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
        md.insert("deletionGracePeriodSeconds".into(), json!(0));
        let rv = state.store.next_rv();
        stamp_rv(&mut obj, rv);
        let stored = state.store.put(&kind.storage, key, rv, obj);
        return Ok(Written {
            code: 200,
            object: to_view(kind, &stored),
        });
    }
    let mut last = (*old).clone();
    let rv = state.store.next_rv();
    stamp_rv(&mut last, rv);
    let gone = finish_delete(state, kind, &key, last, rv);
    Ok(Written {
        code: 200,
        object: to_view(kind, &gone),
    })
}

/// Removes an object for good and cascades: Service grants, namespace contents, CRD objects.
fn finish_delete(
    state: &mut State,
    kind: &ResourceKind,
    key: &ObjectKey,
    last: Value,
    rv: u64,
) -> Value {
    let gone = state.store.remove(&kind.storage, key, rv, last);
    match kind.behaviour {
        Behaviour::Service => {
            for g in service::grants_of(&gone) {
                state.alloc.release(g);
            }
        }
        Behaviour::Namespace => {
            let services = state.registry.find("", "v1", "services");
            for storage in state.store.storages() {
                for k in state.store.keys_in(&storage, Some(&key.name)) {
                    if let Some(obj) = state.store.get(&storage, &k) {
                        if services.as_ref().is_some_and(|s| s.storage == storage) {
                            for g in service::grants_of(&obj) {
                                state.alloc.release(g);
                            }
                        }
                        let mut last = (*obj).clone();
                        let rv = state.store.next_rv();
                        stamp_rv(&mut last, rv);
                        state.store.remove(&storage, &k, rv, last);
                    }
                }
            }
        }
        Behaviour::Crd => {
            let group = gone["spec"]["group"].as_str().unwrap_or("").to_string();
            let plural = gone["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let storage = crate::kinds::StorageKey {
                group: group.clone(),
                plural: plural.clone(),
            };
            for k in state.store.keys_in(&storage, None) {
                if let Some(obj) = state.store.get(&storage, &k) {
                    let mut last = (*obj).clone();
                    let rv = state.store.next_rv();
                    stamp_rv(&mut last, rv);
                    state.store.remove(&storage, &k, rv, last);
                }
            }
            state.registry.unregister_crd(&group, &plural);
        }
        _ => {}
    }
    collect_garbage(state, &gone);
    (*gone).clone()
}

/// The garbage collector's cascade, as kube-controller-manager runs it for
/// a delete with the default (background) propagation: an object whose
/// `ownerReferences` name only owners that no longer exist is deleted too,
/// and so on down. The real collector does it asynchronously (after its
/// next discovery of a new kind, up to 30 s); here it happens at once. A
/// dependent with finalizers is only marked deleting, and one that keeps a
/// live owner stays (the real collector would also drop the dangling reference).
fn collect_garbage(state: &mut State, owner: &Value) {
    let Some(uid) = meta::meta_str(owner, "uid").map(str::to_string) else {
        return;
    };
    // An owner's dependents live in its namespace (cluster-scoped owners: anywhere).
    let namespace = meta::meta_str(owner, "namespace").map(str::to_string);
    let owners_of = |obj: &Value| -> Vec<String> {
        obj["metadata"]["ownerReferences"]
            .as_array()
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r["uid"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut dependents = Vec::new();
    for storage in state.store.storages() {
        for k in state.store.keys_in(&storage, namespace.as_deref()) {
            if let Some(obj) = state.store.get(&storage, &k)
                && owners_of(&obj).contains(&uid)
            {
                dependents.push((storage.clone(), k, obj));
            }
        }
    }
    for (storage, key, obj) in dependents {
        let others_live = owners_of(&obj)
            .iter()
            .any(|o| *o != uid && uid_exists(state, o));
        let Some(kind) = state
            .registry
            .all()
            .iter()
            .find(|k| k.storage == storage)
            .cloned()
        else {
            continue;
        };
        if others_live || obj["metadata"].get("deletionTimestamp").is_some() {
            continue;
        }
        let mut last = (*obj).clone();
        let rv = state.store.next_rv();
        stamp_rv(&mut last, rv);
        if last["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            let md = meta::metadata_mut(&mut last);
            md.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
            md.insert("deletionGracePeriodSeconds".into(), json!(0));
            state.store.put(&storage, key, rv, last);
        } else {
            finish_delete(state, &kind, &key, last, rv);
        }
    }
}

/// Whether any stored object has this uid.
fn uid_exists(state: &State, uid: &str) -> bool {
    state.store.storages().iter().any(|storage| {
        state.store.keys_in(storage, None).iter().any(|k| {
            state
                .store
                .get(storage, k)
                .is_some_and(|o| meta::meta_str(&o, "uid") == Some(uid))
        })
    })
}

/// deletecollection: deletes every matching object; returns the deleted ones.
pub fn delete_collection(
    state: &mut State,
    kind: &Arc<ResourceKind>,
    namespace: Option<&str>,
    params: &ListParams,
    opts: &WriteOptions,
) -> Result<Vec<Value>, ApiError> {
    let page = list(
        state,
        kind,
        namespace,
        &ListParams {
            labels: params.labels.clone(),
            fields: params.fields.clone(),
            selective: params.selective,
            limit: 0,
            continue_token: None,
        },
    )?;
    let mut deleted = Vec::new();
    for obj in page.items {
        let name = meta::name_of(&obj).to_string();
        let ns = meta::meta_str(&obj, "namespace").map(str::to_string);
        match delete(
            state,
            kind,
            ns.as_deref(),
            &name,
            &DeletePreconditions::default(),
            opts,
        ) {
            Ok(w) => deleted.push(w.object),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}
