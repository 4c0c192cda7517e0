//! A Prometheus that lies: a proxy in front of a real one that corrupts the series of one
//! version (by its pod-template hash) in the answers to instant queries, while told to.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a lie makes of a series' value.
#[derive(Clone, Copy, Debug)]
pub enum Lie {
    NaN,
    Value(f64),
    /// The series is not in the answer.
    Vanish,
}

/// Which of a version's series a lie is about.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Series {
    /// Its bad requests: queries counting 5xx responses.
    Bad,
    /// Every query about it.
    All,
}

/// Whose series a lie is about.
#[derive(Clone, Debug)]
pub enum Whose {
    /// The version with this pod-template hash.
    Version(String),
    /// Every version but this one: a canary not yet known.
    AllBut(String),
}

#[derive(Clone, Debug)]
struct Rule {
    whose: Whose,
    series: Series,
    lie: Lie,
    until: Option<Instant>,
}

/// The lies being told, shared with the proxy.
#[derive(Clone, Default)]
pub struct Lies {
    rules: Arc<Mutex<Vec<Rule>>>,
    upstream: String,
}

impl Lies {
    /// Tells `lie` about `series` of `whose` versions, for `lasting` (or from now on).
    pub fn tell(&self, whose: Whose, series: Series, lie: Lie, lasting: Option<Duration>) {
        let rule = Rule {
            whose,
            series,
            lie,
            until: lasting.map(|d| Instant::now() + d),
        };
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(rule);
        }
    }

    fn active(&self, query: &str) -> Vec<Rule> {
        let now = Instant::now();
        let bad = query.contains("5..");
        self.rules
            .lock()
            .map(|rules| {
                rules
                    .iter()
                    .filter(|r| r.until.is_none_or(|u| now < u))
                    .filter(|r| r.series == Series::All || bad)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether `series` (one result of a vector) is of `whose` version: a label holding its hash,
/// or, for a sum without labels, a query naming it.
fn is_of(series: &serde_json::Value, query: &str, whose: &Whose) -> bool {
    let names = |hash: &str| match series["metric"].as_object() {
        Some(l) if !l.is_empty() => l.values().any(|v| v.as_str() == Some(hash)),
        _ => query.contains(hash),
    };
    match whose {
        Whose::Version(hash) => names(hash),
        Whose::AllBut(hash) => !names(hash),
    }
}

fn corrupt(answer: &mut serde_json::Value, query: &str, rules: &[Rule]) {
    let Some(result) = answer["data"]["result"].as_array_mut() else {
        return;
    };
    for rule in rules {
        match rule.lie {
            Lie::Vanish => result.retain(|s| !is_of(s, query, &rule.whose)),
            Lie::NaN | Lie::Value(_) => {
                let text = match rule.lie {
                    Lie::Value(v) => v.to_string(),
                    _ => "NaN".to_string(),
                };
                for s in result.iter_mut().filter(|s| is_of(s, query, &rule.whose)) {
                    s["value"][1] = serde_json::Value::String(text.clone());
                }
            }
        }
    }
}

async fn forward(
    axum::extract::State(lies): axum::extract::State<Lies>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let raw = q.unwrap_or_default();
    let query = params.get("query").cloned().unwrap_or_default();
    let url = format!("{}/api/v1/query?{raw}", lies.upstream);
    let text = match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let rules = lies.active(&query);
    let body = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(mut answer) if !rules.is_empty() => {
            corrupt(&mut answer, &query, &rules);
            answer.to_string()
        }
        _ => text,
    };
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// Starts a lying proxy in front of the Prometheus at `upstream`; returns its URL and the lies.
pub async fn start(upstream: &str) -> (String, Lies) {
    let lies = Lies {
        upstream: upstream.to_string(),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/api/v1/query", axum::routing::get(forward).post(forward))
        .with_state(lies.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), lies)
}
