//! The traffic simulator against any cluster: `serin sim traffic` watches the objects that decide
//! where requests go through the Kubernetes API and serves the same series the embedded simulator
//! serves, so Prometheus-backed analyses run on a real control plane as they do in the demo.

use super::{KINDS, Objects, Traffic};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct TrafficArgs {
    /// The cluster to read: a kubeconfig file (its current context).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Only this namespace's Services and Pods; all namespaces when not given.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Address of /metrics.
    #[arg(long, default_value = "127.0.0.1:9101")]
    pub listen: SocketAddr,
    /// Seconds between traffic simulation steps.
    #[arg(long, default_value_t = 0.25)]
    pub tick_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error(transparent)]
    Client(#[from] crate::sim::cluster_client::ClusterClientError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// The kind names the API's resources go by, for `ApiResource`.
fn kind_of(plural: &str) -> &'static str {
    match plural {
        "services" => "Service",
        "pods" => "Pod",
        "httproutes" => "HTTPRoute",
        "ingresses" => "Ingress",
        "trafficsplits" => "TrafficSplit",
        "virtualservices" => "VirtualService",
        "destinationrules" => "DestinationRule",
        _ => "",
    }
}

/// Caches of each kind, kept by watches; a kind whose CRD is not installed stays empty and is
/// asked for again every second, so routes installed later are picked up.
pub struct Watched {
    stores: Vec<(&'static str, Store<DynamicObject>)>,
    /// Each object's JSON by uid, remade only when its resourceVersion moves.
    json: HashMap<String, (String, Arc<Value>)>,
}

impl Watched {
    pub fn start(client: kube::Client, namespace: Option<&str>) -> Watched {
        let mut stores = Vec::new();
        for (group, version, plural) in KINDS {
            let gvk = GroupVersionKind::gvk(group, version, kind_of(plural));
            let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let writer = reflector::store::Writer::new(resource.clone());
            let store = writer.as_reader();
            tokio::spawn(async move {
                let mut events = watcher(api, watcher::Config::default()).reflect(writer).boxed();
                while let Some(event) = events.next().await {
                    if let Err(e) = event {
                        tracing::debug!(kind = plural, error = %e, "watch failed; asking again in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
            stores.push((plural, store));
        }
        Watched {
            stores,
            json: HashMap::new(),
        }
    }

    /// The cluster as the watches see it now.
    pub fn objects(&mut self) -> Objects {
        let mut objects = Objects::default();
        let mut fresh = HashMap::with_capacity(self.json.len());
        for (plural, store) in &self.stores {
            let Some(list) = objects.of_kind(plural) else {
                continue;
            };
            for obj in store.state() {
                let uid = obj.metadata.uid.clone().unwrap_or_default();
                let rv = obj.metadata.resource_version.clone().unwrap_or_default();
                let json = match self.json.remove(&uid) {
                    Some((seen, json)) if seen == rv => json,
                    _ => Arc::new(serde_json::to_value(obj.as_ref()).unwrap_or(Value::Null)),
                };
                list.push(json.clone());
                fresh.insert(uid, (rv, json));
            }
        }
        self.json = fresh;
        objects
    }
}

/// A client of the cluster `path` names, as the traffic simulator.
pub async fn client(path: &std::path::Path) -> Result<kube::Client, TrafficError> {
    Ok(crate::sim::cluster_client::client(path, "serin-sim-traffic").await?)
}

/// Serves the traffic series of `namespace` (all when None) on `listener`, stepping every `tick`,
/// until the returned task is aborted.
pub fn serve(
    client: kube::Client,
    namespace: Option<&str>,
    listener: tokio::net::TcpListener,
    tick: Duration,
) -> tokio::task::JoinHandle<Result<(), TrafficError>> {
    let mut watched = Watched::start(client, namespace);
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let stepping = traffic.clone();
    tokio::spawn(async move {
        let step = async move {
            let mut interval = tokio::time::interval(tick);
            let mut last = Instant::now();
            loop {
                interval.tick().await;
                let objects = watched.objects();
                let now = Instant::now();
                let dt = now.duration_since(last).as_secs_f64();
                last = now;
                stepping.lock().unwrap_or_else(|e| e.into_inner()).step(&objects, dt);
            }
        };
        tokio::select! {
            r = axum::serve(listener, super::router(traffic)) => r.map_err(TrafficError::Serve),
            _ = step => Ok(()),
        }
    })
}

/// `serin sim traffic`: serves /metrics until stopped.
pub async fn run(args: TrafficArgs) -> Result<(), TrafficError> {
    let client = client(&args.kubeconfig).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| TrafficError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(TrafficError::Serve)?;
    let tick = Duration::from_secs_f64(args.tick_seconds.max(0.01));
    let serving = serve(client, args.namespace.as_deref(), listener, tick);
    eprintln!(
        "serin sim traffic: series of {} on http://{addr}/metrics",
        args.namespace.as_deref().unwrap_or("all namespaces")
    );
    tokio::select! {
        r = serving => r.unwrap_or(Ok(())),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
