//! The bodies Serin posts, as pure functions: a gate's Flagger-compatible payload, and a
//! notification as a generic JSON webhook, a Slack message or a Teams Adaptive Card.

use crate::crd::hooks::TargetType;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Flagger's webhook payload, so that its load tester and approval gates work unchanged.
pub fn gate_payload(
    rollout: &str,
    namespace: &str,
    phase: &str,
    checksum: &str,
    metadata: Option<&BTreeMap<String, String>>,
) -> Value {
    json!({
        "name": rollout,
        "namespace": namespace,
        "phase": phase,
        "checksum": checksum,
        "metadata": metadata.cloned().unwrap_or_default(),
    })
}

/// What happened to a Rollout, as a notification tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub namespace: String,
    pub rollout: String,
    /// `Promoted`, `Aborted`, ...
    pub event: String,
    pub message: String,
    pub revision: String,
    pub phase: String,
    pub step: String,
    pub weight: i32,
    pub time: String,
    pub warning: bool,
}

pub fn notification(kind: TargetType, n: &Notice, channel: Option<&str>) -> Value {
    let title = format!("{}/{}: {}", n.namespace, n.rollout, n.event);
    let facts = format!(
        "revision {} · step {} · weight {}% · {}",
        n.revision, n.step, n.weight, n.phase
    );
    match kind {
        TargetType::Webhook => json!({
            "rollout": {"namespace": n.namespace, "name": n.rollout},
            "event": n.event,
            "message": n.message,
            "revision": n.revision,
            "phase": n.phase,
            "step": n.step,
            "weight": n.weight,
            "time": n.time,
        }),
        TargetType::Slack => {
            let mut body = json!({
                "text": format!("{title}\n{}", n.message),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*\n{}", slack_escape(&title), slack_escape(&n.message))}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(&facts)}]}
                ]
            });
            if let Some(c) = channel {
                body["channel"] = json!(c);
            }
            body
        }
        TargetType::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
                         "color": if n.warning { "Attention" } else { "Default" }, "wrap": true},
                        {"type": "TextBlock", "text": n.message, "wrap": true},
                        {"type": "TextBlock", "text": facts, "isSubtle": true, "wrap": true}
                    ]
                }
            }]
        }),
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice {
            namespace: "shop".into(),
            rollout: "web".into(),
            event: "Aborted".into(),
            message: "analysis failed (error-rate 0.2 > 0.05) <stable>".into(),
            revision: "abc123".into(),
            phase: "Degraded".into(),
            step: "2/4".into(),
            weight: 0,
            time: "2026-11-27T03:00:00Z".into(),
            warning: true,
        }
    }

    #[test]
    fn gate_payload_is_flaggers() {
        let meta = BTreeMap::from([("cmd".to_string(), "hey -z 1m http://web-canary".to_string())]);
        let p = gate_payload("web", "shop", "Progressing", "abc123", Some(&meta));
        assert_eq!(
            p,
            json!({"name": "web", "namespace": "shop", "phase": "Progressing", "checksum": "abc123",
                   "metadata": {"cmd": "hey -z 1m http://web-canary"}})
        );
    }

    #[test]
    fn each_target_gets_its_own_format() {
        let n = notice();
        let w = notification(TargetType::Webhook, &n, None);
        assert_eq!(w["rollout"]["name"], "web");
        assert_eq!(w["event"], "Aborted");
        let s = notification(TargetType::Slack, &n, Some("#releases"));
        assert_eq!(s["channel"], "#releases");
        assert!(s["text"].as_str().unwrap().starts_with("shop/web: Aborted"));
        assert!(
            s["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("&lt;stable&gt;")
        );
        let t = notification(TargetType::Teams, &n, None);
        let card = &t["attachments"][0];
        assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(card["content"]["body"][0]["color"], "Attention");
        assert_eq!(card["content"]["body"][1]["text"], n.message);
    }
}
