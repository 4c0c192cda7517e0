//! `serin sim faults-proxy`: the simulated cluster's faults in front of any API server. Clients
//! talk plain HTTP on loopback to the proxy; it forwards each request with the kubeconfig's
//! credentials, or answers it with a fault instead (409, 429, 500, 410 for a watch, a delay, a
//! watch cut short), as `PUT /sim/faults` sets them. It counts what it answered on `/metrics`, as
//! the simulated cluster does, injected answers included.

use super::faults::{Fault, FaultSpec, Faults};
use super::requests::{RequestCounts, RequestKey, verb};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct FaultsProxyArgs {
    /// The API server to stand in front of, and the credentials to forward with.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Address to serve on (plain HTTP; keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:6444")]
    pub listen: SocketAddr,
    /// Faults from the start, as JSON (`{"client":"serin-controller","conflict":0.1,...}`).
    #[arg(long, value_name = "JSON", value_parser = super::parse_faults)]
    pub faults: Option<FaultSpec>,
    /// Where to write a kubeconfig that reaches the API server through the proxy.
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Client(#[from] super::cluster_client::ClusterClientError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write the kubeconfig to {path}: {source}")]
    KubeconfigOut { path: PathBuf, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

#[derive(Clone)]
struct Proxy {
    client: kube::Client,
    faults: Arc<Faults>,
    counts: Arc<RequestCounts>,
}

/// A resource request (`/api/v1/...`, `/apis/GROUP/VERSION/...`) as (group, resource with its
/// subresource, named); discovery and other paths are None and never faulted.
fn resource_of(path: &str) -> Option<(String, String, bool)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    match rest {
        [] => None,
        [plural] => Some((group.into(), (*plural).into(), false)),
        [plural, _name] => Some((group.into(), (*plural).into(), true)),
        [plural, _name, sub, ..] => Some((group.into(), format!("{plural}/{sub}"), true)),
    }
}

fn watching(method: &Method, query: &str) -> bool {
    *method == Method::GET
        && query
            .split('&')
            .any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True"))
}

async fn handle(State(p): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    match path.as_str() {
        "/sim/faults" => return super::faults::endpoint(&p.faults, &parts.method, &body),
        "/metrics" => {
            return ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], p.counts.render()).into_response();
        }
        _ => {}
    }
    let agent = header_str(&parts.headers, header::USER_AGENT).to_string();
    let watch = watching(&parts.method, &query);
    let resource = resource_of(&path);
    let fault = resource
        .as_ref()
        .and_then(|_| p.faults.draw(&agent, parts.method != Method::GET, watch));
    if let Some(Fault::Delay(d)) = fault {
        tokio::time::sleep(d).await;
    }
    let method = parts.method.clone();
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE).to_string();
    let response = match fault.and_then(Fault::refusal) {
        Some(refused) => refused.into_response(),
        None => forward(&p, parts, body, watch, &agent).await,
    };
    if let Some((group, resource, named)) = resource {
        p.counts.record(RequestKey {
            client: agent.split('/').next().unwrap_or("").to_string(),
            verb: verb(method.as_str(), named, watch, &content_type).into(),
            group,
            resource,
            code: response.status().as_u16(),
        });
    }
    response
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Sends the request on with the proxy's credentials; a watch of a faulted client streams only
/// until its cut.
async fn forward(
    p: &Proxy,
    parts: axum::http::request::Parts,
    body: bytes::Bytes,
    watch: bool,
    agent: &str,
) -> Response {
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut builder = axum::http::Request::builder().method(parts.method).uri(uri);
    for name in [header::CONTENT_TYPE, header::ACCEPT, header::USER_AGENT] {
        if let Some(v) = parts.headers.get(&name) {
            builder = builder.header(name, v);
        }
    }
    let Ok(request) = builder.body(kube::client::Body::from(body)) else {
        return super::status::ApiError::bad_request("a request the proxy cannot rebuild").into_response();
    };
    match p.client.send(request).await {
        Ok(r) => {
            let (parts, upstream) = r.into_parts();
            let body = if watch {
                // Cut as the faults say, looked at as it streams: faults set after a watch began
                // cut it too, as the simulated cluster does.
                let (faults, agent, began) = (p.faults.clone(), agent.to_string(), tokio::time::Instant::now());
                let cut = async move {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                        if faults.watch_cut(&agent).is_some_and(|after| began.elapsed() >= after) {
                            return;
                        }
                    }
                };
                Body::from_stream(upstream.into_data_stream().take_until(cut))
            } else {
                Body::new(upstream)
            };
            Response::from_parts(parts, body)
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("the API server did not answer: {e}")).into_response(),
    }
}

async fn client(path: &std::path::Path) -> Result<kube::Client, ProxyError> {
    let mut config = super::cluster_client::config(path).await?;
    // The callers' own User-Agents go through, so that faults and counts know who asked.
    config.headers.clear();
    // A watch lasts as long as its caller wants.
    config.read_timeout = None;
    let client = kube::Client::try_from(config).map_err(super::cluster_client::ClusterClientError::from)?;
    Ok(client)
}

/// `serin sim faults-proxy`: serves until stopped.
pub async fn run(args: FaultsProxyArgs) -> Result<(), ProxyError> {
    let proxy = Proxy {
        client: client(&args.kubeconfig).await?,
        faults: Arc::new(Faults::new(args.faults.clone().unwrap_or_default())),
        counts: Arc::new(RequestCounts::default()),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ProxyError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ProxyError::Serve)?;
    if let Some(path) = &args.kubeconfig_out {
        super::kubeconfig::write(path, addr).map_err(|source| ProxyError::KubeconfigOut {
            path: path.clone(),
            source,
        })?;
    }
    eprintln!(
        "serin sim faults-proxy: http://{addr} in front of the cluster of {}",
        args.kubeconfig.display()
    );
    let app = axum::Router::new().fallback(handle).with_state(proxy);
    tokio::select! {
        r = axum::serve(listener, app) => r.map_err(ProxyError::Serve),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_paths_are_told_from_discovery() {
        assert_eq!(resource_of("/api/v1"), None);
        assert_eq!(resource_of("/apis/apps/v1"), None);
        assert_eq!(resource_of("/apis"), None);
        assert_eq!(resource_of("/api/v1/pods"), Some(("".into(), "pods".into(), false)));
        assert_eq!(
            resource_of("/apis/apps/v1/namespaces/a/replicasets/web"),
            Some(("apps".into(), "replicasets".into(), true))
        );
        assert_eq!(
            resource_of("/apis/serin.dev/v1alpha1/namespaces/a/rollouts/web/status"),
            Some(("serin.dev".into(), "rollouts/status".into(), true))
        );
        assert_eq!(
            resource_of("/api/v1/namespaces/a"),
            Some(("".into(), "namespaces".into(), true))
        );
        assert!(watching(&Method::GET, "labelSelector=x&watch=true"));
        assert!(!watching(&Method::GET, "watch=false"));
    }
}
