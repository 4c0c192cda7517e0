//! The HTTP face of the simulated cluster: parses Kubernetes API paths and query parameters,
//! calls the store, and answers as the API server would (objects, lists, tables, watch streams).

use super::discovery;
use super::meta;
use super::options::Options;
use super::patch::PatchType;
use super::resources::ResourceType;
use super::selector::{FieldSelector, LabelSelector, selectable_fields};
use super::status::ApiError;
use super::store::{Caller, DeleteOpts, EventType, Propagation, Store, Subresource, WriteOpts, event_object};
use super::table;
use super::users::UserInfo;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub server_address: String,
    pub bookmark_interval: Duration,
    pub requests: Arc<super::requests::RequestCounts>,
    pub faults: Arc<super::faults::Faults>,
    /// The ServiceAccount tokens issued by TokenRequests.
    pub tokens: Arc<super::tokens::Tokens>,
}

pub fn router(state: ApiState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

struct Query(Vec<(String, String)>);

impl Query {
    fn of(uri: &Uri) -> Result<Self, ApiError> {
        serde_urlencoded::from_str(uri.query().unwrap_or(""))
            .map(Query)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// A boolean parameter as the API server reads one: absent, `0` or `false` in any case is
    /// false, anything else (`true`, `True`, `1`, even an empty value) true.
    fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(truthy)
    }
}

fn truthy(value: &str) -> bool {
    value != "0" && !value.eq_ignore_ascii_case("false")
}

/// A request for a resource: `/api/v1/namespaces/ns/pods/name/status` and the like.
#[derive(Debug, PartialEq)]
struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Version,
    Healthz,
    CoreVersions,
    Groups,
    Group(String),
    GroupVersion(String, String),
    OpenApiV2,
    OpenApiRoot,
    OpenApiGroupVersion(String, String),
    Resource(ResourcePath),
}

fn parse_route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Some(Route::Version),
        ["healthz"] | ["readyz"] | ["livez"] => return Some(Route::Healthz),
        ["openapi", "v2"] => return Some(Route::OpenApiV2),
        ["openapi", "v3"] => return Some(Route::OpenApiRoot),
        ["openapi", "v3", "api", v] => {
            return Some(Route::OpenApiGroupVersion(String::new(), v.to_string()));
        }
        ["openapi", "v3", "apis", g, v] => {
            return Some(Route::OpenApiGroupVersion(g.to_string(), v.to_string()));
        }
        ["api"] => return Some(Route::CoreVersions),
        ["apis"] => return Some(Route::Groups),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let rp = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Some(Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            namespace: namespace.map(String::from),
            plural: plural.to_string(),
            name: name.map(String::from),
            sub: sub.map(String::from),
        }))
    };
    match rest {
        [] => Some(Route::GroupVersion(group.to_string(), version.to_string())),
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            rp(None, "namespaces", Some(name), Some(sub))
        }
        ["namespaces", ns, plural] => rp(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => rp(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => rp(Some(ns), plural, Some(name), Some(sub)),
        [plural] => rp(None, plural, None, None),
        [plural, name] => rp(None, plural, Some(name), None),
        [plural, name, sub] => rp(None, plural, Some(name), Some(sub)),
        _ => None,
    }
}

async fn handle(State(st): State<ApiState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if uri.path() == "/metrics" {
        return (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            st.requests.render(),
        )
            .into_response();
    }
    if uri.path() == "/sim/faults" {
        return super::faults::endpoint(&st.faults, &method, &body);
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let watching = method == Method::GET && Query::of(&uri).is_ok_and(|q| q.flag("watch"));
    let fault = match parse_route(uri.path()) {
        Some(Route::Resource(_)) => st.faults.draw(agent, method != Method::GET, watching),
        _ => None,
    };
    let injected = match fault {
        Some(super::faults::Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(f) => f.refusal(),
        None => None,
    };
    let response = match injected {
        Some(e) => e.into_response(),
        None => match dispatch(&st, &method, &uri, &headers, &body) {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
    };
    if let Some(Route::Resource(rp)) = parse_route(uri.path()) {
        let watch = watching;
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let resource = match &rp.sub {
            Some(sub) => format!("{}/{sub}", rp.plural),
            None => rp.plural.clone(),
        };
        st.requests.record(super::requests::RequestKey {
            client: headers
                .get("x-serin-client")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
                .unwrap_or_else(|| default_manager(&headers)),
            verb: super::requests::verb(method.as_str(), rp.name.is_some(), watch, ct).into(),
            group: rp.group.clone(),
            resource,
            code: response.status().as_u16(),
        });
    }
    response
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// `/openapi/v2` as JSON, or as protobuf when the client asks for it as kubectl does.
fn openapi_v2(registry: &super::registry::Registry, headers: &HeaderMap) -> Response {
    const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2";
    let doc = super::openapi_v2::document(registry);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    match accept.split(',').map(str::trim).find(|a| a.starts_with(PROTOBUF)) {
        Some(_) => {
            // Asked for as `...spec.v2@v1.0+protobuf`, named with a dot: `@` is not allowed in
            // a Content-Type, and Go clients refuse one that has it.
            let content_type = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
            let body = super::protobuf::openapi_v2::document(&doc);
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        None => json_response(StatusCode::OK, &doc),
    }
}

fn dispatch(
    st: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let query = Query::of(uri)?;
    let route = parse_route(path).ok_or_else(|| ApiError::path_not_found(path))?;
    // As in a real cluster, version and health answer anyone; the rest needs good credentials.
    let user = match route {
        Route::Version | Route::Healthz => UserInfo::admin(),
        _ => super::authn::authenticate(&st.store, &st.tokens, headers)?,
    };
    let registry = || st.store.registry();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match route {
        Route::Version => ok(discovery::version()),
        Route::Healthz => Ok((StatusCode::OK, "ok").into_response()),
        Route::OpenApiV2 => Ok(openapi_v2(&registry(), headers)),
        Route::OpenApiRoot => ok(super::openapi::root(&registry())),
        Route::OpenApiGroupVersion(g, v) => {
            super::openapi::group_version(&registry(), &g, &v).map_or_else(|| Err(ApiError::path_not_found(path)), ok)
        }
        Route::CoreVersions => ok(discovery::core_versions(&st.server_address)),
        Route::Groups => ok(discovery::group_list(&registry())),
        Route::Group(g) => discovery::group(&registry(), &g).map_or_else(|| Err(ApiError::path_not_found(path)), ok),
        Route::GroupVersion(g, v) => {
            discovery::resource_list(&registry(), &g, &v).map_or_else(|| Err(ApiError::path_not_found(path)), ok)
        }
        Route::Resource(rp) => resource(st, method, &rp, &query, headers, body, user),
    }
}

fn default_manager(headers: &HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let prefix = ua.split('/').next().unwrap_or("").trim();
    if prefix.is_empty() {
        "unknown".into()
    } else {
        prefix.chars().take(128).collect()
    }
}

fn decode_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.starts_with(b"k8s\0") {
        return super::protobuf::decode(body);
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the request has no body"));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is neither JSON nor UTF-8 YAML"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("the request body could not be decoded: {e}")))
}

fn wants_table(headers: &HeaderMap) -> bool {
    wants_as(headers, "Table")
}

/// `Accept: application/json;as=PartialObjectMetadata(List);g=meta.k8s.io;v=v1`: objects reduced
/// to their metadata, as clients that only need names and labels ask.
fn wants_metadata(headers: &HeaderMap) -> bool {
    wants_as(headers, "PartialObjectMetadata") || wants_as(headers, "PartialObjectMetadataList")
}

/// Whether the first media type the client accepts asks for objects `as` this kind.
fn wants_as(headers: &HeaderMap, kind: &str) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let first = accept.split(',').next().unwrap_or_default();
    first.split(';').any(|param| param.trim() == format!("as={kind}"))
}

fn metadata_only(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn resource(
    st: &ApiState,
    method: &Method,
    rp: &ResourcePath,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    user: UserInfo,
) -> Result<Response, ApiError> {
    let rt = st
        .store
        .find_type(&rp.group, &rp.version, &rp.plural)
        .ok_or_else(|| ApiError::path_not_found(&format!("{}/{}/{}", rp.group, rp.version, rp.plural)))?;
    if !rt.namespaced && rp.namespace.is_some() {
        return Err(ApiError::path_not_found(&format!(
            "{} is not namespaced",
            rt.group_resource()
        )));
    }
    if super::reviews::handles(&rt, rp.sub.as_deref()) {
        return review(st, &rt, method, rp, body, &user);
    }
    let sub = match rp.sub.as_deref() {
        None => None,
        Some("status") if rt.status_subresource || (rt.group.is_empty() && rt.plural == "namespaces") => Some("status"),
        Some("scale") if rt.scale.is_some() => Some("scale"),
        Some("eviction") if rt.group.is_empty() && rt.plural == "pods" => Some("eviction"),
        Some(other) => {
            return Err(ApiError::path_not_found(&format!("{}/{other}", rt.group_resource())));
        }
    };
    let options = match (method.clone(), rp.name.is_some()) {
        (Method::GET, false) => Options::List,
        (Method::POST, _) => Options::Create,
        (Method::PUT, _) => Options::Update,
        (Method::PATCH, _) => Options::Patch,
        (Method::DELETE, _) => Options::Delete,
        _ => Options::Get,
    };
    super::options::check(options, &q.0)?;
    let manager = q
        .get("fieldManager")
        .map(String::from)
        .unwrap_or_else(|| default_manager(headers));
    let dry_run = q.get("dryRun") == Some("All");
    let caller = Caller::new(user);
    let opts = WriteOpts {
        manager: &manager,
        dry_run,
        force: q.flag("force"),
        subresource: if sub == Some("status") {
            Subresource::Status
        } else {
            Subresource::Main
        },
        caller: Some(&caller),
    };
    let mut warnings = field_validation(&rt, method, q, headers, body)?;
    // Admission's warnings reach the client on a refusal too, as the API server sends them.
    let response =
        resource_verb(st, &rt, method, rp, sub, q, headers, body, &opts).unwrap_or_else(|e| e.into_response());
    warnings.extend(caller.take_warnings());
    Ok(with_warnings(response, &warnings))
}

/// A create-only review (TokenRequest, TokenReview, the access reviews): answered, never stored.
fn review(
    st: &ApiState,
    rt: &ResourceType,
    method: &Method,
    rp: &ResourcePath,
    body: &Bytes,
    user: &UserInfo,
) -> Result<Response, ApiError> {
    if *method != Method::POST || (rp.name.is_some() && rp.sub.is_none()) {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            rt.group_resource()
        )));
    }
    let ctx = super::reviews::Context {
        store: &st.store,
        tokens: &st.tokens,
        user,
    };
    let req = super::reviews::Request {
        namespace: rp.namespace.as_deref(),
        name: rp.name.as_deref(),
        body: decode_body(body)?,
    };
    let answer = super::reviews::serve(&ctx, rt, req)?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// Unknown fields, of a custom resource or a built-in kind: an error with `fieldValidation=Strict`,
/// a warning by default, nothing with `Ignore`; kubectl asks for Strict. Either way they are not
/// stored (see `Store::admit`). A server-side apply with one is refused whatever is asked.
fn field_validation(
    rt: &ResourceType,
    method: &Method,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<String>, ApiError> {
    let Some(schema) = rt.schema.clone().or_else(|| super::builtin_schemas::of(rt)) else {
        return Ok(Vec::new());
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let strategic = ct.starts_with("application/strategic-merge-patch");
    let checked = matches!(*method, Method::POST | Method::PUT)
        || (*method == Method::PATCH
            && (ct.starts_with("application/apply-patch") || ct.starts_with("application/merge-patch") || strategic));
    let apply = ct.starts_with("application/apply-patch");
    if !checked || body.is_empty() || (q.get("fieldValidation") == Some("Ignore") && !apply) {
        return Ok(Vec::new());
    }
    let mut obj = decode_body(body)?;
    if strategic {
        // A strategic merge patch's directives (`$patch`, `$setElementOrder/...`) are not fields.
        without_directives(&mut obj);
    }
    let unknown = super::schema::unknown_fields(&obj, &schema);
    if apply && let Some(first) = unknown.iter().min() {
        // Server-side apply types the patch before anything else, and refuses the first field
        // (in path order) its schema lacks whatever fieldValidation says.
        return Err(ApiError::untyped(format!(
            "failed to create typed patch object ({}/{}; {}, Kind={}): {first}: field not declared in schema",
            obj["metadata"]["namespace"].as_str().unwrap_or(""),
            obj["metadata"]["name"].as_str().unwrap_or(""),
            if rt.group.is_empty() {
                rt.version.clone()
            } else {
                format!("{}/{}", rt.group, rt.version)
            },
            rt.kind
        )));
    }
    let unknown: Vec<String> = unknown
        .into_iter()
        .map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.')))
        .collect();
    if !unknown.is_empty() && q.get("fieldValidation") == Some("Strict") {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            rt.kind,
            rt.version,
            rt.kind,
            unknown.join(", ")
        )));
    }
    Ok(unknown)
}

fn without_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(without_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(without_directives),
        _ => {}
    }
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for w in warnings {
        // A quoted-string, as Go writes it and kubectl reads it: quotes and backslashes escaped.
        let quoted = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = format!("299 - \"{quoted}\"").parse() {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}

#[allow(clippy::too_many_arguments)]
fn resource_verb(
    st: &ApiState,
    rt: &Arc<ResourceType>,
    method: &Method,
    rp: &ResourcePath,
    sub: Option<&str>,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    opts: &WriteOpts,
) -> Result<Response, ApiError> {
    let rt = rt.clone();
    let ns = rp.namespace.clone().unwrap_or_default();
    let store = &st.store;
    match (method.clone(), rp.name.as_deref(), sub) {
        (Method::GET, None, None) => {
            if q.flag("watch") {
                watch(st, rt, rp.namespace.as_deref(), q, headers)
            } else {
                list(st, &rt, rp.namespace.as_deref(), q, headers)
            }
        }
        (Method::GET, Some(name), Some("scale")) => {
            let obj = store.get(&rt, &ns, name)?;
            Ok(json_response(StatusCode::OK, &scale_of(&rt, &obj)))
        }
        (Method::GET, Some(name), _) => {
            let obj = store.get(&rt, &ns, name)?;
            if wants_table(headers) {
                let t = table::table(
                    &rt,
                    std::slice::from_ref(&obj),
                    q.get("includeObject").unwrap_or("Metadata"),
                    json!({"resourceVersion": meta::resource_version(&obj)}),
                );
                return Ok(json_response(StatusCode::OK, &t));
            }
            if wants_metadata(headers) {
                return Ok(json_response(StatusCode::OK, &metadata_only(&obj)));
            }
            Ok(json_response(StatusCode::OK, &obj))
        }
        (Method::POST, None, None) => {
            if rt.namespaced && rp.namespace.is_none() {
                return Err(ApiError::method_not_allowed(format!(
                    "create of {} needs a namespace in the path",
                    rt.group_resource()
                )));
            }
            let obj = decode_body(body)?;
            let created = store.create(&rt, rp.namespace.as_deref(), obj, opts)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        // An eviction deletes the Pod: the simulated cluster keeps no PodDisruptionBudgets.
        (Method::POST, Some(name), Some("eviction")) => {
            let d = DeleteOpts {
                caller: opts.caller,
                ..delete_opts(q, &Bytes::new())?
            };
            store.delete(&rt, &ns, name, &d)?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ))
        }
        (Method::PUT, Some(name), Some("scale")) => {
            let scale = decode_body(body)?;
            write_scale(store, &rt, &ns, name, &scale, opts)
        }
        (Method::PUT, Some(name), _) => {
            let obj = decode_body(body)?;
            let updated = store.update(&rt, &ns, name, obj, opts)?;
            Ok(json_response(StatusCode::OK, &updated))
        }
        (Method::PATCH, Some(name), sub) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let patch_type = PatchType::from_content_type(ct)?;
            let patch = decode_body(body)?;
            if patch_type == PatchType::Apply && q.get("fieldManager").is_none() {
                return Err(ApiError::bad_request(
                    "PATCH requests of type apply must specify fieldManager",
                ));
            }
            if sub == Some("scale") {
                let current = scale_of(&rt, &store.get(&rt, &ns, name)?);
                let patched = match patch_type {
                    PatchType::Json => super::patch::json_patch(&current, &patch)?,
                    _ => super::patch::merge_patch(&current, &patch)?,
                };
                return write_scale(store, &rt, &ns, name, &patched, opts);
            }
            let patched = store.patch(&rt, &ns, name, patch_type, &patch, opts)?;
            Ok(json_response(StatusCode::OK, &patched))
        }
        (Method::DELETE, Some(name), None) => {
            let d = DeleteOpts {
                caller: opts.caller,
                ..delete_opts(q, body)?
            };
            let deleted = store.delete(&rt, &ns, name, &d)?;
            Ok(json_response(StatusCode::OK, &delete_answer(&rt, deleted)))
        }
        (Method::DELETE, None, None) => {
            let d = DeleteOpts {
                caller: opts.caller,
                ..delete_opts(q, body)?
            };
            let (labels, fields) = selectors(&rt, q)?;
            let page = store.list(&rt.storage_key(), rp.namespace.as_deref(), None, None, &|o| {
                labels.matches(meta::labels(o)) && fields.matches(o)
            });
            let mut items = Vec::new();
            for o in page.items {
                match store.delete(&rt, meta::namespace(&o), meta::name(&o), &d) {
                    Ok(v) => items.push(v),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let list = json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": store.current_rv().to_string()}, "items": items});
            Ok(json_response(StatusCode::OK, &list))
        }
        (m, _, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m} {})",
            rt.group_resource()
        ))),
    }
}

/// What a delete answers: the object while it waits for finalizers, and for the kinds whose
/// storage returns the deleted object (Pods, Services, ServiceAccounts, Namespaces, custom
/// resources); otherwise a `Status` of success naming what went, as the API server's generic store
/// does.
fn delete_answer(rt: &ResourceType, deleted: Value) -> Value {
    let pending = store_has_finalizers(&deleted);
    let returns_object = rt.crd.is_some()
        || matches!(
            (rt.group.as_str(), rt.plural.as_str()),
            ("", "pods" | "services" | "serviceaccounts" | "namespaces")
        );
    if pending || returns_object {
        return deleted;
    }
    let mut details = json!({"name": meta::name(&deleted)});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    details["kind"] = json!(rt.plural);
    details["uid"] = json!(meta::uid(&deleted));
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn store_has_finalizers(obj: &Value) -> bool {
    meta::is_deleting(obj) && obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty())
}

fn delete_opts(q: &Query, body: &Bytes) -> Result<DeleteOpts<'static>, ApiError> {
    let body: Value = if body.is_empty() { json!({}) } else { decode_body(body)? };
    let policy = body["propagationPolicy"]
        .as_str()
        .map(String::from)
        .or_else(|| q.get("propagationPolicy").map(String::from));
    let propagation = match policy.as_deref() {
        None => None,
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported propagationPolicy {other:?}: must be Background, Foreground or Orphan"
            )));
        }
    };
    let orphan = body["orphanDependents"] == true || q.flag("orphanDependents");
    Ok(DeleteOpts {
        propagation: if orphan { Some(Propagation::Orphan) } else { propagation },
        precondition_uid: body["preconditions"]["uid"].as_str().map(String::from),
        precondition_rv: body["preconditions"]["resourceVersion"].as_str().map(String::from),
        dry_run: q.get("dryRun") == Some("All")
            || body["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All")),
        caller: None,
    })
}

fn selectors(rt: &ResourceType, q: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(
        q.get("fieldSelector").unwrap_or(""),
        selectable_fields(&rt.group, &rt.plural),
    )?;
    Ok((labels, fields))
}

/// A continue token: the list's resourceVersion and the last key returned.
fn encode_continue(rv: u64, key: &(String, String)) -> String {
    format!("{rv}/{}/{}", key.0, key.1)
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let mut parts = token.splitn(3, '/');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}

fn list(
    st: &ApiState,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(rt, q)?;
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let (snapshot_rv, after) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, key) = decode_continue(token)?;
            if rv < st.store.compacted_rv() {
                return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ));
            }
            (Some(rv), Some(key))
        }
        None => (None, None),
    };
    let keep =
        |o: &Value| labels.matches(meta::labels(o)) && (fields.is_empty() || fields.matches(&event_object(rt, o)));
    let page = st.store.list(&rt.storage_key(), ns, after.as_ref(), limit, &keep);
    let rv = snapshot_rv.unwrap_or(page.rv);
    let mut list_meta = json!({"resourceVersion": rv.to_string()});
    if let Some(next) = &page.next {
        list_meta["continue"] = json!(encode_continue(rv, next));
    }
    let items: Vec<Value> = page.items.iter().map(|o| event_object(rt, o)).collect();
    if wants_table(headers) {
        let t = table::table(rt, &items, q.get("includeObject").unwrap_or("Metadata"), list_meta);
        return Ok(json_response(StatusCode::OK, &t));
    }
    if wants_metadata(headers) {
        let items: Vec<Value> = items.iter().map(metadata_only).collect();
        let list = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "items": items});
        return Ok(json_response(StatusCode::OK, &list));
    }
    let list = json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": list_meta, "items": items});
    Ok(json_response(StatusCode::OK, &list))
}

fn scale_of(rt: &ResourceType, obj: &Value) -> Value {
    let Some(paths) = &rt.scale else {
        return Value::Null;
    };
    let selector = match &paths.label_selector {
        Some(p) if rt.crd.is_some() => meta::lookup(obj, p).cloned().unwrap_or(json!("")),
        _ => json!(LabelSelector::from_object(&obj["spec"]["selector"]).to_query()),
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta::name(obj),
            "namespace": meta::namespace(obj),
            "uid": meta::uid(obj),
            "resourceVersion": meta::resource_version(obj),
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": meta::lookup(obj, &paths.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": meta::lookup(obj, &paths.status_replicas).and_then(Value::as_i64).unwrap_or(0), "selector": selector},
    })
}

fn write_scale(
    store: &Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    scale: &Value,
    opts: &WriteOpts,
) -> Result<Response, ApiError> {
    let Some(paths) = &rt.scale else {
        return Err(ApiError::path_not_found("scale"));
    };
    let replicas = scale["spec"]["replicas"].as_i64().filter(|r| *r >= 0).ok_or_else(|| {
        ApiError::invalid(
            "Scale",
            name,
            vec![(
                "spec.replicas".into(),
                "Invalid value: must be a non-negative integer".into(),
            )],
        )
    })?;
    let current = store.get(rt, ns, name)?;
    super::store::ensure_fresh(rt, name, meta::resource_version(scale), &current)?;
    let path = paths.spec_replicas.clone();
    let main = WriteOpts {
        manager: opts.manager,
        dry_run: opts.dry_run,
        force: false,
        subresource: Subresource::Scale,
        caller: opts.caller,
    };
    let updated = store.modify(rt, ns, name, &main, &move |o| meta::set_path(o, &path, json!(replicas)))?;
    Ok(json_response(
        StatusCode::OK,
        &scale_of(rt, &event_object(rt, &updated)),
    ))
}

fn event_line(type_: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": type_, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// A watch stream: replayed history (or the current objects), then live changes, bookmarks, and
/// a 410 ERROR event when the requested resourceVersion is gone.
fn watch(
    st: &ApiState,
    rt: Arc<ResourceType>,
    ns: Option<&str>,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(&rt, q)?;
    let rv_param = q.get("resourceVersion").unwrap_or("");
    let send_initial = q.flag("sendInitialEvents");
    let from = match rv_param {
        "" | "0" => None,
        _ if send_initial => None,
        n => Some(
            n.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {n:?}")))?,
        ),
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let asked = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    // An injected cut ends the stream early, as a dropped connection would; faults set while the
    // watch runs apply to it too.
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let faults = st.faults.clone();
    let timeout = asked;
    let as_table = wants_table(headers);
    let as_metadata = wants_metadata(headers);
    let include = q.get("includeObject").unwrap_or("Metadata").to_string();
    let ns = ns.map(String::from);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let started = st.store.watch(&rt.storage_key(), from);
    let interval = st.bookmark_interval;
    tokio::spawn(async move {
        let render = |o: &Value| -> Value {
            let external = event_object(&rt, o);
            if as_table {
                table::table(
                    &rt,
                    std::slice::from_ref(&external),
                    &include,
                    json!({"resourceVersion": meta::resource_version(o)}),
                )
            } else if as_metadata {
                metadata_only(&external)
            } else {
                external
            }
        };
        let visible = |o: &Value| {
            ns.as_deref().is_none_or(|n| meta::namespace(o) == n)
                && labels.matches(meta::labels(o))
                && (fields.is_empty() || fields.matches(&event_object(&rt, o)))
        };
        let (replay, mut live, now_rv) = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Ok(event_line("ERROR", &e.to_status()))).await;
                return;
            }
        };
        for e in &replay {
            if visible(&e.object)
                && tx
                    .send(Ok(event_line(e.type_.as_str(), &render(&e.object))))
                    .await
                    .is_err()
            {
                return;
            }
        }
        let mut last_rv = now_rv.max(replay.last().map_or(0, |e| e.rv));
        let bookmark = |rv: u64, initial_end: bool| {
            let mut m = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            event_line(
                "BOOKMARK",
                &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": m}),
            )
        };
        if send_initial && tx.send(Ok(bookmark(last_rv, true))).await.is_err() {
            return;
        }
        let began = tokio::time::Instant::now();
        let deadline = timeout.map(|t| began + t);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        let mut faults_tick = tokio::time::interval(Duration::from_millis(250));
        let key = rt.storage_key();
        loop {
            let cut = faults.watch_cut(&agent).map(|c| began + c);
            let sleep_until = match (deadline, cut) {
                (Some(d), Some(c)) => d.min(c),
                (d, c) => d
                    .or(c)
                    .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400 * 365)),
            };
            tokio::select! {
                received = live.recv() => match received {
                    Ok(e) => {
                        if e.rv <= last_rv {
                            continue;
                        }
                        last_rv = e.rv;
                        if e.key != key {
                            continue;
                        }
                        let now_visible = visible(&e.object);
                        let was_visible = e.old.as_ref().is_some_and(|o| visible(o));
                        let type_ = match e.type_ {
                            EventType::Added if now_visible => "ADDED",
                            EventType::Modified if now_visible && was_visible => "MODIFIED",
                            EventType::Modified if now_visible => "ADDED",
                            EventType::Modified if was_visible => "DELETED",
                            EventType::Deleted if now_visible || was_visible => "DELETED",
                            _ => continue,
                        };
                        if tx.send(Ok(event_line(type_, &render(&e.object)))).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let gone = ApiError::gone("the watcher fell too far behind; restart the watch from a newer resourceVersion");
                        let _ = tx.send(Ok(event_line("ERROR", &gone.to_status()))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(Ok(bookmark(last_rv, false))).await.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(sleep_until) => return,
                _ = faults_tick.tick() => {}
                _ = tx.closed() => return,
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_parameters_are_read_as_the_api_server_reads_them() {
        let q = |s: &str| Query::of(&format!("/api/v1/pods?{s}").parse::<Uri>().unwrap()).unwrap();
        for yes in [
            "watch=true",
            "watch=True",
            "watch=TRUE",
            "watch=1",
            "watch=t",
            "watch=yes",
            "watch=",
        ] {
            assert!(q(yes).flag("watch"), "{yes}");
        }
        for no in ["watch=false", "watch=False", "watch=FALSE", "watch=0", "limit=5", ""] {
            assert!(!q(no).flag("watch"), "{no}");
        }
    }

    #[test]
    fn parses_paths() {
        let Some(Route::Resource(r)) = parse_route("/api/v1/namespaces/shop/pods/web-1/status") else {
            panic!()
        };
        assert_eq!(
            (
                r.namespace.as_deref(),
                r.plural.as_str(),
                r.name.as_deref(),
                r.sub.as_deref()
            ),
            (Some("shop"), "pods", Some("web-1"), Some("status"))
        );
        let Some(Route::Resource(r)) = parse_route("/api/v1/namespaces/shop") else {
            panic!()
        };
        assert_eq!((r.plural.as_str(), r.name.as_deref()), ("namespaces", Some("shop")));
        let Some(Route::Resource(r)) = parse_route("/apis/serin.dev/v1alpha1/rollouts") else {
            panic!()
        };
        assert_eq!((r.group.as_str(), r.namespace, r.name), ("serin.dev", None, None));
        assert!(parse_route("/nope").is_none());
    }
}
