//! The controller's admin server: `/metrics`, `/healthz` (the process is alive) and `/readyz`
//! (its caches have synced: it leads, or stands by ready to).

pub mod kube_requests;
pub mod metrics;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

#[derive(Default)]
pub struct Admin {
    pub metrics: metrics::Metrics,
    pub gate: crate::leader::Gate,
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(a): State<Arc<Admin>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    a.metrics.render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(a): State<Arc<Admin>>| async move {
                let role = a.gate.role();
                if role.synced {
                    let body = if role.leader { "ready: leader" } else { "ready: standby" };
                    (StatusCode::OK, body).into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet").into_response()
                }
            }),
        )
        .with_state(admin)
}
