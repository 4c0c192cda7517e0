//! The controller's admin server: `/metrics`, `/healthz` (the process is alive) and `/readyz`
//! (its caches have synced).

pub mod metrics;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct Admin {
    pub metrics: metrics::Metrics,
    ready: AtomicBool,
}

impl Admin {
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
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
                if a.is_ready() {
                    (StatusCode::OK, "ready").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet").into_response()
                }
            }),
        )
        .with_state(admin)
}
