//! The traffic simulator: requests enter where they would in a cluster (through a route that
//! points at Services, split by its weights, or straight into a Service no route points at), go to
//! the ready Pods the Service selects, and are answered with each Pod's configured error rate and
//! latency. The counts are exported on `/metrics` for a real Prometheus to scrape.

pub mod from_api;

use super::meta;
use super::selector::LabelSelector;
use super::store::Store;
use super::workload::container_env;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEFAULT_RPS: f64 = 50.0;
pub const RPS_ANNOTATION: &str = "sim.serin.dev/rps";
const HASH_LABEL: &str = "serin.dev/pod-template-hash";
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Requests answered with one code: a counter and a latency histogram.
#[derive(Debug, Clone, Default)]
struct Series {
    count: u64,
    buckets: [u64; 11],
    sum: f64,
}

impl Series {
    fn add(&mut self, count: u64, latency: f64) {
        self.count += count;
        self.sum += count as f64 * latency;
        for (i, le) in BUCKETS.iter().enumerate() {
            if latency <= *le {
                self.buckets[i] += count;
            }
        }
    }
}

/// Requests from one Service to one Pod: fractional carry-over keeps long-run rates exact.
#[derive(Debug, Default)]
struct Flow {
    namespace: String,
    service: String,
    pod: String,
    pod_template_hash: String,
    requests: f64,
    /// Errors (or, in bursts, bursts of them) owed so far, fractional.
    errors: f64,
    /// Errors of a burst not yet answered: a burst larger than a step's requests goes on.
    burst_left: f64,
    /// When bursts come, seeded by the flow, so that a run repeats.
    bursts: Option<StdRng>,
    ok: Series,
    failed: Series,
    /// The step that last sent requests here; a flow not fed in a step is gone.
    seen: u64,
}

/// A Poisson draw (Knuth's method, in parts of a mean of at most 8 so that it stays exact).
fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
    let mut left = mean.max(0.0);
    let mut k = 0.0;
    while left > 0.0 {
        let part = left.min(8.0);
        left -= part;
        let limit = (-part).exp();
        let mut p: f64 = rng.random();
        while p > limit {
            k += 1.0;
            p *= rng.random::<f64>();
        }
    }
    k
}

impl Flow {
    /// How many of `n` requests fail at `rate`. One at a time, errors come as evenly as the rate
    /// allows; `burst` at a time, bursts come at random (Poisson, seeded by the flow) at the same
    /// long-run rate, as a client's retries of a failure do; a burst bigger than the requests at
    /// hand goes on with the next.
    fn failures(&mut self, n: f64, rate: f64, burst: f64) -> f64 {
        let bursts = if burst <= 1.0 {
            self.errors += n * rate;
            let errors = self.errors.floor();
            self.errors -= errors;
            errors
        } else {
            let key = format!("{}/{}/{}", self.namespace, self.service, self.pod);
            let rng = self
                .bursts
                .get_or_insert_with(|| StdRng::seed_from_u64(crate::hash::fnv1a(key.as_bytes())));
            poisson(rng, n * rate / burst)
        };
        self.burst_left += bursts * burst;
        let errors = self.burst_left.min(n);
        self.burst_left -= errors;
        errors
    }
}

#[derive(Default)]
pub struct Traffic {
    /// By "namespace/service/pod".
    flows: HashMap<String, Flow>,
    steps: u64,
}

/// What a ready Pod serves with, read once per step.
struct Backend<'a> {
    pod: &'a Value,
    name: &'a str,
    hash: &'a str,
    error_rate: f64,
    /// Errors come in bursts of this many, at the same rate (as from a client retrying).
    error_burst: f64,
    latency: f64,
}

impl<'a> Backend<'a> {
    fn of(pod: &'a Value) -> Self {
        let env = |name: &str| container_env(&pod["spec"], name).and_then(|s| s.parse::<f64>().ok());
        Backend {
            pod,
            name: meta::name(pod),
            hash: pod["metadata"]["labels"][HASH_LABEL].as_str().unwrap_or(""),
            error_rate: env("SERIN_SIM_ERROR_RATE").unwrap_or(0.0).clamp(0.0, 1.0),
            error_burst: env("SERIN_SIM_ERROR_BURST").unwrap_or(1.0).floor().max(1.0),
            latency: env("SERIN_SIM_LATENCY_MS").unwrap_or(10.0).max(0.0) / 1000.0,
        }
    }
}

/// Ready Pods by namespace and label, so a Service finds its Pods without a scan of them all.
#[derive(Default)]
struct PodIndex<'a> {
    backends: Vec<Backend<'a>>,
    by_label: HashMap<(&'a str, &'a str, &'a str), Vec<usize>>,
}

impl<'a> PodIndex<'a> {
    fn new(pods: &'a [Arc<Value>]) -> Self {
        let mut index = PodIndex::default();
        for p in pods.iter().filter(|p| meta::pod_ready(p)) {
            let i = index.backends.len();
            let ns = meta::namespace(p);
            for (k, v) in meta::labels(p).into_iter().flatten() {
                if let Some(v) = v.as_str() {
                    index.by_label.entry((ns, k.as_str(), v)).or_default().push(i);
                }
            }
            index.backends.push(Backend::of(p));
        }
        index
    }

    /// The ready Pods in `ns` with every one of `labels` (none for an empty selector, as a
    /// Service without selector gets no endpoints).
    fn select(&self, ns: &str, labels: &serde_json::Map<String, Value>) -> Vec<&Backend<'a>> {
        let mut fewest: Option<&Vec<usize>> = None;
        for (k, v) in labels {
            let candidates = v.as_str().and_then(|v| self.by_label.get(&(ns, k.as_str(), v)));
            let Some(candidates) = candidates else {
                return Vec::new();
            };
            if fewest.is_none_or(|f| candidates.len() < f.len()) {
                fewest = Some(candidates);
            }
        }
        let selector = LabelSelector::from_object(&serde_json::json!({"matchLabels": labels}));
        fewest
            .into_iter()
            .flatten()
            .map(|i| &self.backends[*i])
            .filter(|b| selector.matches(meta::labels(b.pod)))
            .collect()
    }
}

/// A share of an entry point's traffic sent to one Service.
struct Share {
    namespace: String,
    service: String,
    rps: f64,
    /// Labels a Pod must also have (an Istio DestinationRule subset's).
    subset: Option<serde_json::Map<String, Value>>,
}

fn rps_of(obj: &Value) -> f64 {
    obj["metadata"]["annotations"][RPS_ANNOTATION]
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|r| r.is_finite() && *r >= 0.0)
        .unwrap_or(DEFAULT_RPS)
}

/// The Services an HTTPRoute sends to and the share of its traffic each gets.
fn route_shares(route: &Value) -> Vec<Share> {
    let ns = meta::namespace(route);
    let rules = route["spec"]["rules"].as_array().cloned().unwrap_or_default();
    let total = rps_of(route);
    let per_rule = if rules.is_empty() {
        0.0
    } else {
        total / rules.len() as f64
    };
    let mut out = Vec::new();
    for rule in &rules {
        let refs: Vec<&Value> = rule["backendRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| {
                b["kind"].as_str().unwrap_or("Service") == "Service" && b["group"].as_str().unwrap_or("").is_empty()
            })
            .collect();
        let weight = |b: &Value| b["weight"].as_f64().unwrap_or(1.0).max(0.0);
        let sum: f64 = refs.iter().map(|b| weight(b)).sum();
        if sum <= 0.0 {
            continue;
        }
        for b in refs {
            out.push(Share {
                namespace: b["namespace"].as_str().unwrap_or(ns).to_string(),
                service: b["name"].as_str().unwrap_or("").to_string(),
                rps: per_rule * weight(b) / sum,
                subset: None,
            });
        }
    }
    out
}

/// Traffic for an SMI TrafficSplit's root Service, shared out by backend weight. The rate is the
/// split's `sim.serin.dev/rps`, else the root Service's, else the default.
fn split_shares(split: &Value, services: &[Arc<Value>]) -> Vec<Share> {
    let ns = meta::namespace(split);
    let root = split["spec"]["service"].as_str().unwrap_or("");
    let rps = if split["metadata"]["annotations"][RPS_ANNOTATION].is_string() {
        rps_of(split)
    } else {
        services
            .iter()
            .find(|s| meta::namespace(s) == ns && meta::name(s) == root)
            .map_or(DEFAULT_RPS, |s| rps_of(s))
    };
    let backends: Vec<(&str, f64)> = split["spec"]["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| Some((b["service"].as_str()?, b["weight"].as_f64().unwrap_or(0.0).max(0.0))))
        .collect();
    let total: f64 = backends.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    backends
        .into_iter()
        .map(|(svc, w)| Share {
            namespace: ns.to_string(),
            service: svc.to_string(),
            rps: rps * w / total,
            subset: None,
        })
        .collect()
}

/// Traffic into an Istio VirtualService: shared equally by its http routes, then by destination weight.
fn virtual_service_shares(vs: &Value, rules: &[Arc<Value>]) -> Vec<Share> {
    let ns = meta::namespace(vs);
    let routes = vs["spec"]["http"].as_array().cloned().unwrap_or_default();
    if routes.is_empty() {
        return Vec::new();
    }
    let per_route = rps_of(vs) / routes.len() as f64;
    let mut out = Vec::new();
    for route in &routes {
        let dests: Vec<(&str, Option<&str>, f64)> = route["route"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let host = crate::traffic::istio::host_service(d["destination"]["host"].as_str()?);
                Some((
                    host,
                    d["destination"]["subset"].as_str(),
                    d["weight"].as_f64().unwrap_or(-1.0),
                ))
            })
            .collect();
        // No weights at all means an even split, as Istio does with one destination.
        let explicit = dests.iter().any(|(_, _, w)| *w >= 0.0);
        let weights: Vec<f64> = dests
            .iter()
            .map(|(_, _, w)| if explicit { w.max(0.0) } else { 1.0 })
            .collect();
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            continue;
        }
        for ((svc, subset, _), w) in dests.iter().zip(weights) {
            // A subset selects Pods by its DestinationRule's labels, on top of the Service's.
            let labels = subset.and_then(|name| {
                rules
                    .iter()
                    .filter(|r| meta::namespace(r) == ns)
                    .filter(|r| {
                        r["spec"]["host"]
                            .as_str()
                            .is_some_and(|h| crate::traffic::istio::host_service(h) == *svc)
                    })
                    .find_map(|r| {
                        r["spec"]["subsets"].as_array()?.iter().find(|s| s["name"] == name)?["labels"]
                            .as_object()
                            .cloned()
                    })
            });
            out.push(Share {
                namespace: ns.to_string(),
                service: svc.to_string(),
                rps: per_route * w / total,
                subset: labels,
            });
        }
    }
    out
}

/// Whether an Ingress is an NGINX canary (`<prefix>/canary: "true"`), and its weight.
fn canary_weight(ingress: &Value) -> Option<f64> {
    let annotations = ingress["metadata"]["annotations"].as_object()?;
    let canary = annotations.iter().any(|(k, v)| k.ends_with("/canary") && v == "true");
    if !canary {
        return None;
    }
    let weight = annotations
        .iter()
        .find(|(k, _)| k.ends_with("/canary-weight"))
        .and_then(|(_, v)| v.as_str()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    Some(weight.clamp(0.0, 100.0))
}

fn ingress_backends(ingress: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
        let host = rule["host"].as_str().unwrap_or("").to_string();
        for path in rule["http"]["paths"].as_array().into_iter().flatten() {
            if let Some(svc) = path["backend"]["service"]["name"].as_str() {
                out.push((
                    format!("{host}{}", path["path"].as_str().unwrap_or("/")),
                    svc.to_string(),
                ));
            }
        }
    }
    out
}

/// Traffic through Ingresses, as NGINX sends it: each path of a plain Ingress gets its share, and a
/// canary Ingress for the same host and path takes its canary-weight percent of that.
fn ingress_shares(ingresses: &[Arc<Value>]) -> Vec<Share> {
    let mut out = Vec::new();
    for ing in ingresses.iter().filter(|i| canary_weight(i).is_none()) {
        let ns = meta::namespace(ing);
        let backends = ingress_backends(ing);
        if backends.is_empty() {
            continue;
        }
        let per_path = rps_of(ing) / backends.len() as f64;
        for (at, svc) in backends {
            let canary = ingresses.iter().filter(|c| meta::namespace(c) == ns).find_map(|c| {
                let w = canary_weight(c)?;
                let (_, to) = ingress_backends(c).into_iter().find(|(p, _)| *p == at)?;
                Some((w, to))
            });
            let (w, to) = canary.unwrap_or((0.0, String::new()));
            out.push(Share {
                namespace: ns.to_string(),
                service: svc,
                rps: per_path * (100.0 - w) / 100.0,
                subset: None,
            });
            if !to.is_empty() {
                out.push(Share {
                    namespace: ns.to_string(),
                    service: to,
                    rps: per_path * w / 100.0,
                    subset: None,
                });
            }
        }
    }
    out
}

/// The objects that decide where requests go: a snapshot of the cluster, from the simulated
/// cluster's store or from any cluster's API (`from_api`).
#[derive(Default, Clone)]
pub struct Objects {
    pub services: Vec<Arc<Value>>,
    pub pods: Vec<Arc<Value>>,
    pub routes: Vec<Arc<Value>>,
    pub ingresses: Vec<Arc<Value>>,
    pub splits: Vec<Arc<Value>>,
    pub virtual_services: Vec<Arc<Value>>,
    pub destination_rules: Vec<Arc<Value>>,
}

/// The kinds `Objects` holds, as (group, version, plural) and the field each fills.
pub const KINDS: [(&str, &str, &str); 7] = [
    ("", "v1", "services"),
    ("", "v1", "pods"),
    ("gateway.networking.k8s.io", "v1", "httproutes"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("split.smi-spec.io", "v1alpha2", "trafficsplits"),
    ("networking.istio.io", "v1beta1", "virtualservices"),
    ("networking.istio.io", "v1beta1", "destinationrules"),
];

impl Objects {
    /// The list of one of `KINDS`, by its plural.
    pub fn of_kind(&mut self, plural: &str) -> Option<&mut Vec<Arc<Value>>> {
        Some(match plural {
            "services" => &mut self.services,
            "pods" => &mut self.pods,
            "httproutes" => &mut self.routes,
            "ingresses" => &mut self.ingresses,
            "trafficsplits" => &mut self.splits,
            "virtualservices" => &mut self.virtual_services,
            "destinationrules" => &mut self.destination_rules,
            _ => return None,
        })
    }

    /// The simulated cluster's objects as they are now.
    pub fn from_store(store: &Store) -> Objects {
        let registry = store.registry();
        let mut objects = Objects::default();
        for (group, version, plural) in KINDS {
            let items = registry
                .find(group, version, plural)
                .map(|rt| store.list(&rt.storage_key(), None, None, None, &|_| true).items)
                .unwrap_or_default();
            if let Some(list) = objects.of_kind(plural) {
                *list = items;
            }
        }
        objects
    }
}

impl Traffic {
    /// Sends `dt` worth of requests through the cluster as `objects` show it.
    pub fn step(&mut self, objects: &Objects, dt: f64) {
        let Objects {
            services,
            pods,
            routes,
            ingresses,
            splits,
            virtual_services,
            destination_rules,
        } = objects;
        let mut shares = Vec::new();
        let mut routed: HashSet<(String, String)> = HashSet::new();
        for split in splits {
            // The root Service's traffic is the split's to share out.
            if let Some(root) = split["spec"]["service"].as_str() {
                routed.insert((meta::namespace(split).to_string(), root.to_string()));
            }
        }
        for vs in virtual_services {
            for host in vs["spec"]["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                routed.insert((
                    meta::namespace(vs).to_string(),
                    crate::traffic::istio::host_service(host).to_string(),
                ));
            }
        }
        let split_shares = splits.iter().flat_map(|t| split_shares(t, services)).chain(
            virtual_services
                .iter()
                .flat_map(|v| virtual_service_shares(v, destination_rules)),
        );
        for s in routes
            .iter()
            .flat_map(|r| route_shares(r))
            .chain(ingress_shares(ingresses))
            .chain(split_shares)
        {
            routed.insert((s.namespace.clone(), s.service.clone()));
            shares.push(s);
        }
        for svc in services {
            let key = (meta::namespace(svc).to_string(), meta::name(svc).to_string());
            if !routed.contains(&key) && svc["spec"]["selector"].is_object() {
                shares.push(Share {
                    namespace: key.0,
                    service: key.1,
                    rps: rps_of(svc),
                    subset: None,
                });
            }
        }
        let by_name: HashMap<(&str, &str), &Arc<Value>> = services
            .iter()
            .map(|s| ((meta::namespace(s), meta::name(s)), s))
            .collect();
        let index = PodIndex::new(pods);
        self.steps += 1;
        let step = self.steps;
        for share in shares {
            let Some(svc) = by_name.get(&(share.namespace.as_str(), share.service.as_str())) else {
                continue;
            };
            let Some(sel) = svc["spec"]["selector"].as_object() else {
                continue;
            };
            if sel.is_empty() {
                continue;
            }
            let mut labels = sel.clone();
            if let Some(extra) = &share.subset {
                labels.extend(extra.clone());
            }
            let backends = index.select(&share.namespace, &labels);
            if backends.is_empty() {
                continue;
            }
            let each = share.rps * dt / backends.len() as f64;
            for b in backends {
                let key = format!("{}/{}/{}", share.namespace, share.service, b.name);
                let flow = self.flows.entry(key).or_insert_with(|| Flow {
                    namespace: share.namespace.clone(),
                    service: share.service.clone(),
                    pod: b.name.to_string(),
                    pod_template_hash: b.hash.to_string(),
                    ..Flow::default()
                });
                flow.seen = step;
                flow.requests += each;
                let n = flow.requests.floor();
                flow.requests -= n;
                let errors = flow.failures(n, b.error_rate, b.error_burst);
                flow.ok.add((n - errors) as u64, b.latency);
                flow.failed.add(errors as u64, b.latency);
            }
        }
        // A Pod's series stay while it lives, served or not (its counters are in its process);
        // a deleted Pod's disappear.
        let living: HashSet<(&str, &str)> = pods.iter().map(|p| (meta::namespace(p), meta::name(p))).collect();
        self.flows
            .retain(|_, f| f.seen == step || living.contains(&(f.namespace.as_str(), f.pod.as_str())));
    }

    /// The Prometheus text exposition of every series, in a stable order.
    pub fn render(&self) -> String {
        let mut flows: Vec<&Flow> = self.flows.values().collect();
        flows.sort_by(|a, b| (&a.namespace, &a.service, &a.pod).cmp(&(&b.namespace, &b.service, &b.pod)));
        let series = || {
            flows.iter().flat_map(|f| {
                [("200", &f.ok), ("500", &f.failed)].map(|(code, s)| {
                    let labels = format!(
                        "namespace=\"{}\",service=\"{}\",pod=\"{}\",pod_template_hash=\"{}\",code=\"{code}\"",
                        f.namespace, f.service, f.pod, f.pod_template_hash
                    );
                    (labels, s)
                })
            })
        };
        let mut out = String::new();
        out.push_str(
            "# HELP http_requests_total Requests answered by simulated pods.\n# TYPE http_requests_total counter\n",
        );
        for (l, s) in series() {
            let _ = writeln!(out, "http_requests_total{{{l}}} {}", s.count);
        }
        out.push_str("# HELP http_request_duration_seconds Time simulated pods took to answer.\n# TYPE http_request_duration_seconds histogram\n");
        for (l, s) in series() {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(out, "http_request_duration_seconds_sum{{{l}}} {}", s.sum);
            let _ = writeln!(out, "http_request_duration_seconds_count{{{l}}} {}", s.count);
        }
        out
    }
}

pub async fn run(store: Arc<Store>, traffic: Arc<Mutex<Traffic>>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    let mut last = Instant::now();
    loop {
        interval.tick().await;
        let now = Instant::now();
        let dt = now.duration_since(last).as_secs_f64();
        last = now;
        let mut t = traffic.lock().unwrap_or_else(|e| e.into_inner());
        t.step(&Objects::from_store(&store), dt);
    }
}

pub fn router(traffic: Arc<Mutex<Traffic>>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(t): State<Arc<Mutex<Traffic>>>| async move {
                let body = t.lock().unwrap_or_else(|e| e.into_inner()).render();
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
            }),
        )
        .with_state(traffic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_bursts_keep_the_rate() {
        let mut f = Flow {
            pod: "web-1".into(),
            ..Flow::default()
        };
        let steps: Vec<f64> = (0..10_000).map(|_| f.failures(100.0, 0.01, 5.0)).collect();
        // Five at a time (a step's 100 requests hold any burst), at the rate: 10,000 expected.
        assert!(steps.iter().all(|e| e % 5.0 == 0.0), "{steps:?}");
        let sum: f64 = steps.iter().sum();
        assert!((sum - 10_000.0).abs() < 300.0, "{sum}");
        // At random: some steps with none, some with several bursts.
        assert!(steps.contains(&0.0) && steps.iter().any(|e| *e >= 10.0));
        // Repeatable: the same flow draws the same bursts.
        let mut again = Flow {
            pod: "web-1".into(),
            ..Flow::default()
        };
        let repeat: Vec<f64> = (0..10_000).map(|_| again.failures(100.0, 0.01, 5.0)).collect();
        assert_eq!(steps, repeat);
        // A burst larger than a step's requests goes on with the next step.
        let mut g = Flow::default();
        let small: Vec<f64> = (0..1000).map(|_| g.failures(4.0, 0.5, 8.0)).collect();
        assert!(small.iter().all(|e| *e <= 4.0));
        assert!((small.iter().sum::<f64>() + g.burst_left - 2000.0).abs() < 250.0);
        // Without bursts, the errors as before: the rate, one at a time.
        let mut h = Flow::default();
        let single: f64 = (0..100).map(|_| h.failures(100.0, 0.01, 1.0)).sum();
        assert_eq!(single, 100.0);
    }
}
