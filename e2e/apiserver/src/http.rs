//! HTTP routing: Kubernetes API paths to verbs, query options, bodies, and responses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::admission;
use crate::auth;
use crate::discovery;
use crate::events;
use crate::kinds::{Behaviour, ResourceKind};
use crate::patch::PatchType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::status::ApiError;
use crate::verbs::{self, DeletePreconditions, ListParams, PatchRequest, Sub, WriteOptions};
use crate::watch::{self, WatchParams};

/// The largest request body accepted (the real server's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

fn json_response(code: u16, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

fn text_response(text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// Query parameters (the last value of a repeated key wins).
struct Query(HashMap<String, String>);

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// A request for an API resource, after routing.
struct Target {
    kind: Arc<ResourceKind>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Sub,
    /// `serviceaccounts/{name}/token` (TokenRequest).
    token: bool,
}

/// The single handler: every path of the API.
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let err = ApiError {
                code: 413,
                reason: "RequestEntityTooLarge",
                message: format!("the request body could not be read: {e}"),
                details: None,
            };
            return error_response(&err);
        }
    };
    let response = route(&shared, &method, &path, &query, &headers, body).await;
    tracing::debug!(%method, %path, code = response.status().as_u16(), "request");
    response
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = check_access(shared, method, path, query, headers) {
        return error_response(&e);
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let read_only = *method == Method::GET || *method == Method::HEAD;
    match segments.as_slice() {
        ["healthz" | "livez" | "readyz", ..] if read_only => text_response("ok"),
        ["version"] if read_only => json_response(200, &discovery::version()),
        [] if read_only => json_response(
            200,
            &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}),
        ),
        ["api"] if read_only => json_response(200, &discovery::core_versions(&host)),
        ["apis"] if read_only => {
            json_response(200, &discovery::group_list(&shared.lock().registry))
        }
        ["apis", group] if read_only => match discovery::group(&shared.lock().registry, group) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::no_such_path()),
        },
        ["openapi", "v3"] if read_only => {
            json_response(200, &discovery::openapi_v3_root(&shared.lock().registry))
        }
        ["openapi", "v3", "api", version] if read_only => openapi_doc(shared, "", version),
        ["openapi", "v3", "apis", group, version] if read_only => {
            openapi_doc(shared, group, version)
        }
        ["api", "v1"] if read_only => discovery_list(shared, "", "v1"),
        ["apis", group, version] if read_only => discovery_list(shared, group, version),
        ["api", "v1", rest @ ..] if !rest.is_empty() => {
            resource(shared, method, "", "v1", rest, query, headers, body).await
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            resource(shared, method, group, version, rest, query, headers, body).await
        }
        _ => error_response(&ApiError::no_such_path()),
    }
}

/// Authentication, then RBAC for a service-account user (a request without credentials has
/// full access), before anything else, as the real server's filters run before its handlers.
fn check_access(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let state = shared.lock();
    let Some(user) = auth::authenticate(&state, headers)? else {
        return Ok(());
    };
    let attrs = auth::attributes(
        method,
        path,
        query.flag("watch"),
        query.get("fieldSelector"),
    );
    let allowed = auth::authorize(&state, &user, &attrs);
    if let Err(e) = &allowed {
        tracing::debug!(user = %user.name, %method, %path, message = %e.message, "forbidden");
    }
    allowed
}

fn discovery_list(shared: &Shared, group: &str, version: &str) -> Response {
    match discovery::resource_list(&shared.lock().registry, group, version) {
        Some(doc) => json_response(200, &doc),
        None => error_response(&ApiError::no_such_path()),
    }
}

fn openapi_doc(shared: &Shared, group: &str, version: &str) -> Response {
    match discovery::openapi_v3_group_version(&shared.lock().registry, group, version) {
        Some(doc) => json_response(200, &doc),
        None => error_response(&ApiError::no_such_path()),
    }
}

fn resolve(shared: &Shared, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let state = shared.lock();
    let namespaced_kind = if rest.len() >= 3 && rest[0] == "namespaces" {
        state
            .registry
            .find(group, version, rest[2])
            .filter(|k| k.namespaced)
    } else {
        None
    };
    let (kind, namespace, tail) = match namespaced_kind {
        Some(k) => (k, Some(rest[1].to_string()), &rest[3..]),
        None => {
            let k = state
                .registry
                .find(group, version, rest[0])
                .ok_or_else(ApiError::no_such_path)?;
            (k, None, &rest[1..])
        }
    };
    let mut token = false;
    let (name, sub) = match tail {
        [] => (None, Sub::Main),
        [name] => (Some((*name).to_string()), Sub::Main),
        [name, "status"] if kind.status_subresource => (Some((*name).to_string()), Sub::Status),
        [name, "token"] if kind.group.is_empty() && kind.plural == "serviceaccounts" => {
            token = true;
            (Some((*name).to_string()), Sub::Main)
        }
        _ => return Err(ApiError::no_such_path()),
    };
    Ok(Target {
        kind,
        namespace,
        name,
        sub,
        token,
    })
}

fn list_params(kind: &ResourceKind, query: &Query) -> Result<ListParams, ApiError> {
    let labels = match query.get("labelSelector") {
        Some(s) => LabelSelector::parse(s)?,
        None => LabelSelector::default(),
    };
    let fields = match query.get("fieldSelector") {
        Some(s) if kind.behaviour == Behaviour::EventsV1 => {
            FieldSelector::parse_renamed(s, &kind.field_labels, &events::core_field_label)?
        }
        Some(s) => FieldSelector::parse(s, &kind.field_labels)?,
        None => FieldSelector::default(),
    };
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        None => 0,
    };
    Ok(ListParams {
        labels,
        fields,
        selective: query.get("labelSelector").is_some_and(|s| !s.is_empty())
            || query.get("fieldSelector").is_some_and(|s| !s.is_empty()),
        limit,
        continue_token: query
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    })
}

fn write_options(query: &Query, headers: &HeaderMap) -> WriteOptions {
    let given = query.get("fieldManager").filter(|m| !m.is_empty());
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown");
    WriteOptions {
        manager: given.unwrap_or(agent).to_string(),
        manager_given: given.is_some(),
        dry_run: query.get("dryRun") == Some("All"),
        force: query.get("force").map(|f| f == "true"),
    }
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    match resource_inner(shared, method, group, version, rest, query, headers, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource_inner(
    shared: &Arc<Shared>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = resolve(shared, group, version, rest)?;
    let ns = t.namespace.as_deref();
    let opts = write_options(query, headers);
    if t.token {
        let (Some(ns), Some(name)) = (ns, t.name.as_deref()) else {
            return Err(ApiError::no_such_path());
        };
        if *method != Method::POST {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        let request = parse_json(&body)?;
        let answer = auth::create_token(&mut shared.lock(), ns, name, request, opts.dry_run)?;
        return Ok(json_response(201, &answer));
    }
    match (method, t.name.as_deref()) {
        (&Method::GET, None) if query.flag("watch") => start_watch(shared, &t, query),
        (&Method::GET, None) => {
            let params = list_params(&t.kind, query)?;
            let page = verbs::list(&shared.lock(), &t.kind, ns, &params)?;
            Ok(list_response(&t.kind, page))
        }
        (&Method::GET, Some(name)) => {
            let obj = verbs::get(&shared.lock(), &t.kind, ns, name)?;
            Ok(json_response(200, &obj))
        }
        (&Method::POST, None) => {
            let write = Write::Create(parse_json(&body)?);
            written(shared, &t, &write, headers, &opts).await
        }
        (&Method::PUT, Some(name)) => {
            let write = Write::Update(name.to_string(), parse_json(&body)?);
            written(shared, &t, &write, headers, &opts).await
        }
        (&Method::PATCH, Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let patch_type = PatchType::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            let doc = match patch_type {
                PatchType::Apply => parse_apply_body(&body)?,
                _ => parse_json(&body)?,
            };
            let req = PatchRequest {
                patch_type,
                body: doc,
            };
            let write = Write::Patch(name.to_string(), req);
            written(shared, &t, &write, headers, &opts).await
        }
        (&Method::DELETE, Some(name)) => {
            let (pre, dry_run) = delete_options(&body)?;
            let opts = WriteOptions {
                dry_run: opts.dry_run || dry_run,
                ..opts
            };
            let write = Write::Delete(name.to_string(), pre);
            written(shared, &t, &write, headers, &opts).await
        }
        (&Method::DELETE, None) => {
            let params = list_params(&t.kind, query)?;
            let deleted =
                verbs::delete_collection(&mut shared.lock(), &t.kind, ns, &params, &opts)?;
            let rv = shared.lock().store.current_rv();
            Ok(json_response(
                200,
                &json!({
                    "kind": t.kind.list_kind(),
                    "apiVersion": t.kind.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()},
                    "items": deleted,
                }),
            ))
        }
        (m, _) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

/// A write to one object, run once as a dry run for its webhooks and then for real.
enum Write {
    Create(Value),
    Update(String, Value),
    Patch(String, PatchRequest),
    Delete(String, DeletePreconditions),
}

impl Write {
    fn name(&self) -> Option<&str> {
        match self {
            Write::Create(_) => None,
            Write::Update(n, _) | Write::Patch(n, _) | Write::Delete(n, _) => Some(n),
        }
    }

    fn run(
        &self,
        state: &mut verbs::State,
        t: &Target,
        opts: &WriteOptions,
    ) -> Result<verbs::Written, ApiError> {
        let ns = t.namespace.as_deref();
        match self {
            Write::Create(obj) => verbs::create(state, &t.kind, ns, obj.clone(), opts),
            Write::Update(name, obj) => {
                verbs::update(state, &t.kind, ns, name, obj.clone(), t.sub, opts)
            }
            Write::Patch(name, req) => {
                verbs::patch(state, &t.kind, ns, name, req.clone(), t.sub, opts)
            }
            Write::Delete(name, pre) => verbs::delete(state, &t.kind, ns, name, pre, opts),
        }
    }
}

/// Validating admission (after the object's own validation, as on the real server: the dry run
/// answers first), then the write.
async fn written(
    shared: &Arc<Shared>,
    t: &Target,
    write: &Write,
    headers: &HeaderMap,
    opts: &WriteOptions,
) -> Result<Response, ApiError> {
    if t.sub == Sub::Main
        && let Some(refused) = admit(shared, t, write, headers, opts).await?
    {
        return Ok(refused);
    }
    let w = write.run(&mut shared.lock(), t, opts)?;
    Ok(json_response(w.code, &w.object))
}

/// The webhooks' answer: `Some(response)` when one refused the write.
async fn admit(
    shared: &Arc<Shared>,
    t: &Target,
    write: &Write,
    headers: &HeaderMap,
    opts: &WriteOptions,
) -> Result<Option<Response>, ApiError> {
    let (hooks, attrs) = {
        let mut state = shared.lock();
        let operations: &[admission::Operation] = match write {
            Write::Create(_) => &[admission::Operation::Create],
            Write::Delete(..) => &[admission::Operation::Delete],
            Write::Update(..) | Write::Patch(..) => {
                &[admission::Operation::Create, admission::Operation::Update]
            }
        };
        if !admission::may_match(&state, &t.kind, operations) {
            return Ok(None);
        }
        let ns = t.namespace.as_deref();
        let old = write
            .name()
            .and_then(|name| verbs::get(&state, &t.kind, ns, name).ok());
        let (operation, object) = match (write, &old) {
            // Not found: the delete itself answers 404.
            (Write::Delete(..), None) => return Ok(None),
            (Write::Delete(..), Some(_)) => (admission::Operation::Delete, None),
            _ => {
                let dry = WriteOptions {
                    dry_run: true,
                    ..opts.clone()
                };
                let proposed = write.run(&mut state, t, &dry)?.object;
                let op = if old.is_some() {
                    admission::Operation::Update
                } else {
                    admission::Operation::Create
                };
                (op, Some(proposed))
            }
        };
        let name = object
            .as_ref()
            .or(old.as_ref())
            .map(|o| crate::meta::name_of(o).to_string())
            .unwrap_or_default();
        let user = auth::authenticate(&state, headers)?
            .map(|u| (u.name, u.groups))
            .unwrap_or_else(admission::admin);
        let attrs = admission::Attributes {
            operation,
            kind: t.kind.clone(),
            namespace: ns.unwrap_or_default().to_string(),
            name,
            object,
            old_object: old,
            dry_run: opts.dry_run,
            user,
        };
        (admission::matching(&state, &attrs), attrs)
    };
    if hooks.is_empty() {
        return Ok(None);
    }
    match admission::dispatch(hooks, &attrs).await {
        Ok(()) => Ok(None),
        Err(refusal) => Ok(Some(json_response(refusal.code, &refusal.status))),
    }
}

/// Server-side apply bodies are YAML (JSON is accepted too, being YAML).
fn parse_apply_body(body: &Bytes) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("apply body is not UTF-8: {e}")))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

fn delete_options(body: &Bytes) -> Result<(DeletePreconditions, bool), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((DeletePreconditions::default(), false));
    }
    let v = parse_json(body)?;
    let pre = &v["preconditions"];
    let dry_run = v["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok((
        DeletePreconditions {
            uid: pre["uid"].as_str().map(str::to_string),
            resource_version: pre["resourceVersion"].as_str().map(str::to_string),
        },
        dry_run,
    ))
}

/// Writes a list body without cloning each item.
fn list_response(kind: &ResourceKind, page: verbs::ListPage) -> Response {
    let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        metadata["remainingItemCount"] = json!(r);
    }
    let head =
        json!({"kind": kind.list_kind(), "apiVersion": kind.api_version(), "metadata": metadata});
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    // Replace the closing brace with the items array.
    out.pop();
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let written = if verbs::view_is_identity(kind, item) {
            serde_json::to_writer(&mut out, &**item)
        } else {
            serde_json::to_writer(&mut out, &verbs::to_view(kind, item))
        };
        if let Err(e) = written {
            return error_response(&ApiError::internal(format!("encoding a list failed: {e}")));
        }
    }
    out.extend_from_slice(b"]}");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

fn start_watch(shared: &Arc<Shared>, t: &Target, query: &Query) -> Result<Response, ApiError> {
    let params = list_params(&t.kind, query)?;
    let resource_version = match query.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(s) => Duration::from_secs(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {s}")))?,
        ),
        None => shared.config.max_watch_timeout,
    };
    let body: Body = watch::start(
        shared.clone(),
        WatchParams {
            kind: t.kind.clone(),
            namespace: t.namespace.clone(),
            labels: params.labels,
            fields: params.fields,
            resource_version,
            send_initial_events: query.flag("sendInitialEvents"),
            bookmarks: query.flag("allowWatchBookmarks"),
            timeout,
        },
    )?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
