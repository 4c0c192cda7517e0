//! The dashboard's HTTP API: pages and assets, JSON views from the caches, the live stream, the
//! plan, and the actions (the same status writes the CLI makes).

use super::auth::{self, Mode};
use super::state::{Key, State};
use super::view;
use crate::cli::rollouts::{Action, RolloutCmdError, request_on};
use crate::crd::analysis::{AnalysisTemplate, ClusterAnalysisTemplate};
use crate::crd::rollout::Rollout;
use crate::reconcile::analysis_templates::TemplateId;
use crate::timeline::{self, Options, Templates};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Actions must carry this header: a page of another site cannot send it without the browser
/// asking first (CORS), so it cannot steer Rollouts through a person's open dashboard.
pub const ACTION_HEADER: &str = "x-serin-action";
const MANAGER: &str = "serin-dashboard";

pub struct App {
    pub state: Arc<State>,
    pub mode: Mode,
    /// The `Host` values requests may carry; empty allows any. On loopback with a person's
    /// credentials, a page of another site that rebinds its name to 127.0.0.1 is refused.
    pub hosts: Vec<String>,
}

/// The `Host` values a dashboard listening on `addr` answers to.
pub fn own_hosts(addr: std::net::SocketAddr) -> Vec<String> {
    if !addr.ip().is_loopback() {
        return Vec::new();
    }
    let port = addr.port();
    vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        addr.to_string(),
    ]
}

async fn known_host(
    AxState(app): AxState<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !app.hosts.is_empty() && !app.hosts.iter().any(|h| h == host) {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "this dashboard answers to {} only, not Host {host:?}",
                app.hosts.join(", ")
            ),
        );
    }
    next.run(req).await
}

type Shared = Arc<App>;

pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { page(INDEX, "text/html; charset=utf-8") }))
        .route(
            "/assets/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { page(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/session", get(session))
        .route("/api/rollouts", get(list))
        .route("/api/rollouts/{ns}/{name}", get(detail))
        .route("/api/rollouts/{ns}/{name}/plan", get(plan))
        .route("/api/rollouts/{ns}/{name}/actions/{action}", post(act))
        .route("/api/stream", get(stream))
        .layer(axum::middleware::from_fn_with_state(app.clone(), known_host))
        .with_state(app)
}

fn page(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn session(AxState(app): AxState<Shared>) -> Json<serde_json::Value> {
    Json(json!({
        "mode": if app.mode == Mode::Token { "token" } else { "kubeconfig" },
        "namespace": app.state.namespace,
    }))
}

#[derive(Deserialize, Default)]
struct Filter {
    namespace: Option<String>,
    phase: Option<String>,
    name: Option<String>,
}

impl Filter {
    fn keeps(&self, r: &Rollout) -> bool {
        let ns_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| ns.is_empty() || r.namespace().as_deref() == Some(ns));
        let phase = r.status.as_ref().and_then(|s| s.phase).map(|p| p.as_str());
        let phase_ok = self.phase.as_deref().is_none_or(|p| p.is_empty() || phase == Some(p));
        let name_ok = self.name.as_deref().is_none_or(|n| n.is_empty() || r.name_any() == n);
        ns_ok && phase_ok && name_ok
    }
}

async fn list(AxState(app): AxState<Shared>, Query(f): Query<Filter>) -> Json<Vec<view::Row>> {
    let s = &app.state;
    let rss = s.replica_sets.state();
    let mut rows: Vec<view::Row> = s
        .rollouts
        .state()
        .iter()
        .filter(|r| f.keeps(r))
        .map(|r| view::row(r, &rss))
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Json(rows)
}

fn find(app: &App, ns: &str, name: &str) -> Option<Arc<Rollout>> {
    app.state.rollouts.get(&ObjectRef::new(name).within(ns))
}

fn not_found(ns: &str, name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("rollout {name:?} not found in namespace {ns:?}"),
    )
}

async fn detail(AxState(app): AxState<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let Some(r) = find(&app, &ns, &name) else {
        return not_found(&ns, &name);
    };
    let s = &app.state;
    let (rss, runs) = (s.replica_sets.state(), s.runs.state());
    let d = view::detail(&r, &rss, &runs, &s.lock());
    Json(d).into_response()
}

#[derive(Deserialize, Default)]
struct PlanQuery {
    rps: Option<f64>,
}

/// The templates a plan may need: the Rollout's namespace's and the cluster's.
async fn templates(client: &kube::Client, ns: &str) -> Result<Templates, kube::Error> {
    let mut out = Templates::new();
    let local: Api<AnalysisTemplate> = Api::namespaced(client.clone(), ns);
    for t in local.list(&ListParams::default()).await? {
        out.insert(
            TemplateId {
                cluster: false,
                name: t.name_any(),
            },
            t.spec,
        );
    }
    let cluster: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
    // A dashboard limited to one namespace may not read cluster-wide templates.
    if let Ok(list) = cluster.list(&ListParams::default()).await {
        for t in list {
            out.insert(
                TemplateId {
                    cluster: true,
                    name: t.name_any(),
                },
                t.spec.into(),
            );
        }
    }
    Ok(out)
}

async fn plan(
    AxState(app): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<PlanQuery>,
) -> Response {
    let Some(r) = find(&app, &ns, &name) else {
        return not_found(&ns, &name);
    };
    let templates = match templates(&app.state.client, &ns).await {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("cannot read the analysis templates: {e}"),
            );
        }
    };
    let opts = Options {
        rps: q.rps.filter(|r| r.is_finite() && *r > 0.0),
        ..Default::default()
    };
    match timeline::timeline(&r, &templates, &opts) {
        Ok(t) => Json(t).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

fn action_of(name: &str) -> Option<Action> {
    Some(match name {
        "promote" => Action::Promote { full: false },
        "promote-full" => Action::Promote { full: true },
        "abort" => Action::Abort,
        "retry" => Action::Retry,
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        _ => return None,
    })
}

async fn act(
    AxState(app): AxState<Shared>,
    Path((ns, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !headers.contains_key(ACTION_HEADER) {
        return error(
            StatusCode::FORBIDDEN,
            format!("actions need the {ACTION_HEADER} header (sent by the dashboard's own page)"),
        );
    }
    let Some(a) = action_of(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no action {action:?}: promote, promote-full, abort, retry, pause, resume"),
        );
    };
    let who = match auth::may_steer(&app.state.client, app.mode, &headers, &ns, &name).await {
        Ok(who) => who,
        Err((status, message)) => return error(status, message),
    };
    let api: Api<Rollout> = Api::namespaced(app.state.client.clone(), &ns);
    match request_on(&api, &ns, &name, a, MANAGER).await {
        Ok(said) => {
            tracing::info!(namespace = %ns, rollout = %name, action = %action, by = %who, "{said}");
            Json(json!({"message": said})).into_response()
        }
        Err(RolloutCmdError::NotFound { .. }) => not_found(&ns, &name),
        Err(RolloutCmdError::Refused(m)) => error(StatusCode::CONFLICT, m),
        Err(RolloutCmdError::Kube(kube::Error::Api(s))) => {
            let status = StatusCode::from_u16(s.code).unwrap_or(StatusCode::BAD_GATEWAY);
            error(status, s.message)
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// Server-sent events: `row` for every Rollout the filter keeps, and `update` with the page's
/// pieces when `name` is given. Fed by the watches: an open page adds no API request.
async fn stream(
    AxState(app): AxState<Shared>,
    Query(f): Query<Filter>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = BroadcastStream::new(app.state.changes.subscribe());
    let events = changes.filter_map(move |key| {
        let app = app.clone();
        let f = Filter {
            namespace: f.namespace.clone(),
            phase: f.phase.clone(),
            name: f.name.clone(),
        };
        async move {
            let (ns, name): Key = key.ok()?;
            if f.namespace.as_deref().is_some_and(|n| !n.is_empty() && n != ns) {
                return None;
            }
            if f.name.as_deref().is_some_and(|n| !n.is_empty() && n != name) {
                return None;
            }
            let Some(r) = find(&app, &ns, &name) else {
                return Some(Ok(Event::default()
                    .event("gone")
                    .data(json!({"namespace": ns, "name": name}).to_string())));
            };
            let s = &app.state;
            let rss = s.replica_sets.state();
            let data = if f.name.is_some() {
                let runs = s.runs.state();
                let u = view::update(&r, &rss, &runs, &s.lock());
                ("update", serde_json::to_string(&u).ok()?)
            } else {
                // The page filters by phase itself: a Rollout leaving the phase must reach it.
                ("row", serde_json::to_string(&view::row(&r, &rss)).ok()?)
            };
            Some(Ok(Event::default().event(data.0).data(data.1)))
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
