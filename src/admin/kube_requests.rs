//! Counts the controller's Kubernetes API requests by verb, resource and response code: a tower
//! layer on the kube client. No per-object labels, so the series stay few whatever the fleet size.

use futures::future::BoxFuture;
use http::{Method, Request, Response, Uri};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::task::{Context, Poll};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    /// The resource, with its subresource when there is one (`rollouts/status`).
    pub kind: String,
    /// The HTTP status code, or `error` when no response came.
    pub code: String,
}

pub type RequestCounter = Family<RequestLabels, Counter>;

#[derive(Clone)]
pub struct CountRequests(pub RequestCounter);

impl<S> tower::Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counter: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counter: RequestCounter,
}

impl<S, B, R> tower::Service<Request<B>> for Counted<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (verb, kind) = classify(req.method(), req.uri());
        let counter = self.counter.clone();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            counter
                .get_or_create(&RequestLabels {
                    verb: verb.to_string(),
                    kind,
                    code,
                })
                .inc();
            response
        })
    }
}

/// The Kubernetes verb and resource of a request, as the API server's audit log names them.
pub fn classify(method: &Method, uri: &Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    };
    let Some(mut rest) = rest.filter(|r| !r.is_empty()) else {
        return (
            if *method == Method::GET { "get" } else { "other" },
            "nonresource".into(),
        );
    };
    // `namespaces/NS/...` scopes a resource, unless it is the Namespace's own subresource.
    let namespace_subresource = rest.len() == 3 && matches!(rest[2], "status" | "finalize");
    if rest[0] == "namespaces" && rest.len() >= 3 && !namespace_subresource {
        rest = &rest[2..];
    }
    let named = rest.len() >= 2;
    let kind = match rest.get(2) {
        Some(sub) => format!("{}/{sub}", rest[0]),
        None => rest[0].to_string(),
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(method: Method, uri: &str) -> (&'static str, String) {
        classify(&method, &uri.parse().unwrap())
    }

    #[test]
    fn requests_are_named_by_verb_and_resource() {
        assert_eq!(c(Method::GET, "/api/v1/namespaces"), ("list", "namespaces".into()));
        assert_eq!(c(Method::GET, "/api/v1/namespaces/shop"), ("get", "namespaces".into()));
        assert_eq!(
            c(Method::PUT, "/api/v1/namespaces/shop/finalize"),
            ("update", "namespaces/finalize".into())
        );
        assert_eq!(
            c(Method::GET, "/apis/apps/v1/namespaces/shop/replicasets?labelSelector=a"),
            ("list", "replicasets".into())
        );
        assert_eq!(
            c(Method::GET, "/apis/apps/v1/replicasets?watch=true&resourceVersion=5"),
            ("watch", "replicasets".into())
        );
        assert_eq!(
            c(
                Method::PATCH,
                "/apis/serin.dev/v1alpha1/namespaces/shop/rollouts/web/status"
            ),
            ("patch", "rollouts/status".into())
        );
        assert_eq!(
            c(Method::POST, "/apis/events.k8s.io/v1/namespaces/shop/events"),
            ("create", "events".into())
        );
        assert_eq!(
            c(Method::DELETE, "/api/v1/namespaces/shop/services/web"),
            ("delete", "services".into())
        );
        assert_eq!(c(Method::GET, "/version"), ("get", "nonresource".into()));
    }
}
