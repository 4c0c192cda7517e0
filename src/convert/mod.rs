//! `serin convert`: Argo Rollouts' Rollouts, AnalysisTemplates and ClusterAnalysisTemplates as
//! Serin's. Field names are mostly the same; what differs is the API group, the condition
//! language (expr to CEL), the notification subscriptions (annotations to `spec.notifications`)
//! and the Gateway API plugin block (the native router). What has no Serin form is left out and
//! said, with the document and the field. Pure: documents in, documents and notes out.

pub mod expr;

use serde_json::{Map, Value, json};

pub const ARGO_GROUP: &str = "argoproj.io";
pub const SERIN_API_VERSION: &str = "serin.dev/v1alpha1";
const SUBSCRIBE: &str = "notifications.argoproj.io/subscribe.";

/// Something `convert` could not carry over as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// From 1, in the order the documents were read.
    pub document: usize,
    /// `Rollout web`.
    pub object: String,
    /// `.spec.metrics[0].successCondition`.
    pub field: String,
    pub message: String,
    /// Something was left out or may not mean the same; otherwise it is only for the reader.
    pub lost: bool,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "document {} ({}): {}: {}",
            self.document, self.object, self.field, self.message
        )
    }
}

/// What one object's conversion noted.
struct Notes<'a> {
    document: usize,
    object: String,
    out: &'a mut Vec<Note>,
}

impl Notes<'_> {
    /// Something could not be carried over.
    fn say(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field.into(), message.into(), true);
    }

    /// Carried over, with something the reader should know.
    fn tell(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field.into(), message.into(), false);
    }

    fn push(&mut self, field: String, message: String, lost: bool) {
        self.out.push(Note {
            document: self.document,
            object: self.object.clone(),
            field,
            message,
            lost,
        });
    }
}

/// Converts every document; Serin's own and other kinds pass through as they are.
pub fn convert(documents: Vec<Value>) -> (Vec<Value>, Vec<Note>) {
    let mut notes = Vec::new();
    let out = documents
        .into_iter()
        .enumerate()
        .map(|(i, doc)| {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let mut n = Notes {
                document: i + 1,
                object: format!("{kind} {}", doc["metadata"]["name"].as_str().unwrap_or("(unnamed)")),
                out: &mut notes,
            };
            let argo = doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.split('/').next() == Some(ARGO_GROUP));
            match kind.as_str() {
                "Rollout" if argo => rollout(doc, &mut n),
                "AnalysisTemplate" | "ClusterAnalysisTemplate" | "AnalysisRun" if argo => template(doc, &mut n),
                _ if argo => {
                    n.say("kind", format!("Serin has no {kind}: passed through unchanged"));
                    doc
                }
                _ => doc,
            }
        })
        .collect();
    (out, notes)
}

fn rollout(mut doc: Value, n: &mut Notes<'_>) -> Value {
    doc["apiVersion"] = json!(SERIN_API_VERSION);
    subscriptions(&mut doc, n);
    if let Some(canary) = doc.pointer_mut("/spec/strategy/canary").and_then(Value::as_object_mut) {
        canary_steps(canary, n);
    }
    if let Some(routing) = doc.pointer_mut("/spec/strategy/canary/trafficRouting") {
        gateway_plugin(routing, n);
    }
    if let Some(steps) = doc
        .pointer_mut("/spec/strategy/canary/steps")
        .and_then(Value::as_array_mut)
    {
        let mut i = 0;
        steps.retain(|step| {
            i += 1;
            let unsupported = ["experiment", "plugin"].into_iter().find(|k| step.get(*k).is_some());
            if let Some(k) = unsupported {
                n.say(
                    format!(".spec.strategy.canary.steps[{}]", i - 1),
                    format!("a `{k}` step has no Serin form: left out"),
                );
            }
            unsupported.is_none()
        });
    }
    let schema = schema_of("Rollout");
    drop_unknown(&mut doc, &schema, n);
    // A router Serin does not have leaves an empty block behind: traffic then goes by Pod ratio.
    let routing = doc.pointer("/spec/strategy/canary/trafficRouting");
    if routing.and_then(Value::as_object).is_some_and(Map::is_empty) {
        if let Some(c) = doc.pointer_mut("/spec/strategy/canary").and_then(Value::as_object_mut) {
            c.remove("trafficRouting");
        }
        n.say(
            ".spec.strategy.canary.trafficRouting",
            "no router Serin has is left: traffic is split by the ratio of Pods",
        );
    }
    without_nulls(&mut doc);
    doc
}

/// An Argo canary without `steps` is a rolling update; in Serin omitted steps mean 5/25/50/100.
/// `steps: []` keeps what the Rollout did.
fn canary_steps(canary: &mut Map<String, Value>, n: &mut Notes<'_>) {
    if canary.get("steps").is_none_or(Value::is_null) {
        canary.insert("steps".into(), json!([]));
        n.tell(
            ".spec.strategy.canary.steps",
            "none given: Argo Rollouts then rolls the update out without steps, and `steps: []` keeps that (omitted, Serin's default would walk 5/25/50/100)",
        );
    }
}

/// Nothing converted is ever null: a `null` strategy or annotations block would be refused, or
/// read as an empty one.
fn without_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(without_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(without_nulls),
        _ => {}
    }
}

/// `plugins: {argoproj-labs/gatewayAPI: {...}}` is the native `gatewayAPI` router.
fn gateway_plugin(routing: &mut Value, n: &mut Notes<'_>) {
    let Some(plugin) = routing["plugins"].get(crate::crd::rollout::GATEWAY_API_PLUGIN).cloned() else {
        return;
    };
    let parsed: crate::crd::rollout::TrafficRouting =
        serde_json::from_value(json!({"plugins": {crate::crd::rollout::GATEWAY_API_PLUGIN: plugin}}))
            .unwrap_or_default();
    if let (Some(g), Some(map)) = (parsed.gateway_api(), routing.as_object_mut()) {
        map.remove("plugins");
        map.insert("gatewayAPI".into(), serde_json::to_value(g).unwrap_or_default());
        n.tell(
            ".spec.strategy.canary.trafficRouting.plugins",
            "the Gateway API plugin is Serin's native gatewayAPI router: no plugin needed",
        );
    }
}

/// Argo's `notifications.argoproj.io/subscribe.<trigger>.<service>: <recipient>` annotations as
/// `spec.notifications` targets, one per service and recipient.
fn subscriptions(doc: &mut Value, n: &mut Notes<'_>) {
    let Some(annotations) = doc.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) else {
        return;
    };
    let keys: Vec<String> = annotations
        .keys()
        .filter(|k| k.starts_with(SUBSCRIBE))
        .cloned()
        .collect();
    let mut targets: Vec<Value> = Vec::new();
    for key in keys {
        let recipient = annotations
            .remove(&key)
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let field = format!(".metadata.annotations.{key}");
        let rest = &key[SUBSCRIBE.len()..];
        let Some((trigger, service)) = rest.split_once('.') else {
            n.say(
                field,
                "not a subscription of the form subscribe.<trigger>.<service>: left out",
            );
            continue;
        };
        let Some(event) = event_of(trigger) else {
            n.say(field, format!("Serin sends no event like {trigger}: left out"));
            continue;
        };
        let (type_, name) = match service {
            "slack" | "teams" => (service, service.to_string()),
            "email" | "opsgenie" | "pagerduty" | "pagerdutyv2" | "telegram" | "grafana" | "mattermost"
            | "googlechat" | "rocketchat" | "pushover" | "alertmanager" | "github" | "newrelic" | "webex" => {
                n.say(field, format!("Serin does not send to {service}: left out"));
                continue;
            }
            // Argo names a webhook subscription by the webhook's name.
            hook => ("webhook", hook.trim_start_matches("webhook:").to_string()),
        };
        // Slack's recipients are channels, a target each; other services have one target.
        let channels: Vec<String> = match type_ {
            "slack" => recipient
                .split([',', ';'])
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        };
        let each: Vec<Option<String>> = match channels.is_empty() {
            true => vec![None],
            false => channels.into_iter().map(Some).collect(),
        };
        for channel in each {
            let target_name = match &channel {
                Some(c) => format!("{name}-{c}"),
                None => name.clone(),
            };
            if let Some(t) = targets.iter_mut().find(|t| t["name"] == target_name.as_str()) {
                if let Some(events) = t["events"].as_array_mut()
                    && !events.contains(&json!(event))
                {
                    events.push(json!(event));
                }
                continue;
            }
            let mut target = json!({
                "name": target_name,
                "type": type_,
                "urlFrom": {"secretKeyRef": {"name": "serin-notifications", "key": format!("{name}-url")}},
                "events": [event],
            });
            if let Some(c) = channel {
                target["channel"] = json!(c);
            }
            n.tell(
                field.clone(),
                format!("sent to {type_} target {target_name}: put its webhook URL in Secret serin-notifications, key {name}-url"),
            );
            targets.push(target);
        }
    }
    if annotations.is_empty()
        && let Some(meta) = doc["metadata"].as_object_mut()
    {
        meta.remove("annotations");
    }
    if !targets.is_empty() {
        doc["spec"]["notifications"] = json!({"targets": targets});
    }
}

/// Argo's notification triggers and the events Serin sends.
fn event_of(trigger: &str) -> Option<&'static str> {
    Some(match trigger {
        "on-rollout-completed" => "Promoted",
        "on-rollout-step-completed" => "StepCompleted",
        "on-rollout-paused" => "Paused",
        "on-rollout-aborted" => "Aborted",
        "on-analysis-run-failed" | "on-analysis-run-error" => "AnalysisFailed",
        _ => return None,
    })
}

fn template(mut doc: Value, n: &mut Notes<'_>) -> Value {
    doc["apiVersion"] = json!(SERIN_API_VERSION);
    let kind = doc["kind"].as_str().unwrap_or_default().to_string();
    if let Some(metrics) = doc["spec"]["metrics"].as_array_mut() {
        for (i, metric) in metrics.iter_mut().enumerate() {
            for which in ["successCondition", "failureCondition"] {
                let Some(src) = metric[which].as_str().map(String::from) else {
                    continue;
                };
                let field = format!(".spec.metrics[{i}].{which}");
                let t = expr::translate(&src);
                for p in &t.problems {
                    n.say(field.clone(), p.clone());
                }
                if let Err(e) = crate::analysis::condition::check(&t.cel) {
                    n.say(field.clone(), format!("the translation is not valid CEL: {e}"));
                }
                metric[which] = json!(t.cel);
            }
        }
    }
    let schema = schema_of(&kind);
    drop_unknown(&mut doc, &schema, n);
    // A metric whose provider Serin does not have cannot run: it is left out, and said.
    if let Some(metrics) = doc["spec"]["metrics"].as_array_mut() {
        let mut i = 0;
        metrics.retain(|m| {
            i += 1;
            let empty = m["provider"].as_object().is_none_or(Map::is_empty);
            if empty {
                n.say(
                    format!(".spec.metrics[{}]", i - 1),
                    format!(
                        "metric {} has no provider Serin has (prometheus, web, job): left out",
                        m["name"].as_str().unwrap_or("?")
                    ),
                );
            }
            !empty
        });
    }
    without_nulls(&mut doc);
    doc
}

/// The structural schema Serin serves for a kind.
fn schema_of(kind: &str) -> Value {
    crate::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .and_then(|c| serde_json::to_value(c).ok())
        .map(|c| c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
        .unwrap_or(Value::Null)
}

/// Leaves out the fields Serin's schema does not have (the API server would refuse them).
fn drop_unknown(doc: &mut Value, schema: &Value, n: &mut Notes<'_>) {
    if schema.is_null() {
        return;
    }
    for path in crate::sim::schema::unknown_fields(doc, schema) {
        remove_path(doc, &path);
        n.say(path, "has no Serin equivalent: left out");
    }
}

/// Removes `.a.b[2].c` from a document.
fn remove_path(doc: &mut Value, path: &str) {
    let mut segments: Vec<String> = Vec::new();
    for part in path.trim_start_matches('.').split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            segments.push(rest[..open].to_string());
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                segments.push(rest[..=close].to_string());
                rest = &rest[close + 1..];
            }
        } else {
            segments.push(rest.to_string());
        }
    }
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut at = doc;
    for s in parents {
        let next = match s.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
            Some(i) => i.parse::<usize>().ok().and_then(|i| at.get_mut(i)),
            None => at.get_mut(s.as_str()),
        };
        match next {
            Some(v) => at = v,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(last);
    }
}

#[cfg(test)]
mod tests;
