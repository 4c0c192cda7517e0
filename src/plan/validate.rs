//! What the schema cannot check: the spec problems a user sees as an `InvalidSpec` condition.

use super::steps::{effective_steps, pause_length};
use crate::crd::rollout::{
    BlueGreenStrategy, CanaryStep, CanaryStrategy, GATEWAY_API_PLUGIN, RolloutSpec, TrafficRouting,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Whether a label selector selects these labels.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let got = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    });
    let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    !empty && by_labels && by_expressions
}

/// Problems with the spec, each a sentence a user can act on; empty when it is sound.
pub fn problems(spec: &RolloutSpec, selector: &LabelSelector, template: Option<&PodTemplateSpec>) -> Vec<String> {
    let mut out = Vec::new();
    match template {
        None => out.push(match &spec.workload_ref {
            Some(w) => format!(
                "spec.workloadRef: {} {:?} was not found in the Rollout's namespace",
                w.kind, w.name
            ),
            None => "spec.template is required (or spec.workloadRef)".into(),
        }),
        Some(t) => {
            let labels = t.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
            let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && selector.match_expressions.as_ref().is_none_or(|m| m.is_empty());
            if empty {
                out.push("spec.selector is required (or a workloadRef to a Deployment that has one)".into());
            } else if !selector_matches(selector, &labels) {
                out.push("spec.selector does not select the template's labels".into());
            }
            if t.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
                out.push("spec.template.spec.containers must name at least one container".into());
            }
        }
    }
    match (&spec.strategy.canary, &spec.strategy.blue_green) {
        (Some(canary), None) => canary_problems(canary, &mut out),
        (None, Some(bg)) => blue_green_problems(bg, &mut out),
        _ => out.push("spec.strategy names exactly one of canary and blueGreen".into()),
    }
    out
}

fn blue_green_problems(bg: &BlueGreenStrategy, out: &mut Vec<String>) {
    if bg.active_service.is_empty() {
        out.push("spec.strategy.blueGreen.activeService is required: the Service that takes production traffic".into());
    }
    if bg.preview_service.as_ref() == Some(&bg.active_service) {
        out.push(format!(
            "activeService and previewService are both {:?}: they must be two Services",
            bg.active_service
        ));
    }
    if let Some(routing) = &bg.traffic_routing {
        routing_problems(routing, out);
        if bg.preview_service.is_none() {
            out.push("spec.strategy.blueGreen.trafficRouting needs previewService: the route switches to it".into());
        }
    }
    for (field, analysis) in [
        ("prePromotionAnalysis", &bg.pre_promotion_analysis),
        ("postPromotionAnalysis", &bg.post_promotion_analysis),
    ] {
        if analysis.as_ref().is_some_and(|a| a.templates.is_empty()) {
            out.push(format!("spec.strategy.blueGreen.{field} names no templates"));
        }
    }
}

/// Router settings as Argo writes them, checked where the schema cannot.
fn routing_problems(routing: &TrafficRouting, out: &mut Vec<String>) {
    for name in routing.plugins.iter().flatten().map(|(k, _)| k) {
        if name != GATEWAY_API_PLUGIN {
            out.push(format!(
                "trafficRouting.plugins.{name}: Serin runs no plugins; its routers are gatewayAPI, nginx, istio and smi"
            ));
        }
    }
    if routing.istio.as_ref().is_some_and(|i| i.services().is_empty()) {
        out.push("trafficRouting.istio names no virtualService or virtualServices".into());
    }
    if routing.nginx.as_ref().is_some_and(|n| n.ingresses().is_empty()) {
        out.push("trafficRouting.nginx names no stableIngress or stableIngresses".into());
    }
}

/// Header and mirror routes must be listed in `managedRoutes` when it is given: its order is theirs.
fn managed_route_problems(routing: &TrafficRouting, i: usize, step: &CanaryStep, out: &mut Vec<String>) {
    if routing.managed_routes.is_empty() {
        return;
    }
    let named = step
        .set_header_route
        .as_ref()
        .map(|h| &h.name)
        .or(step.set_mirror_route.as_ref().map(|m| &m.name));
    if let Some(name) = named
        && !routing.managed_routes.iter().any(|m| m.name == *name)
    {
        out.push(format!(
            "steps[{i}]: route {name:?} is not listed in trafficRouting.managedRoutes"
        ));
    }
}

fn canary_problems(canary: &CanaryStrategy, out: &mut Vec<String>) {
    if let Some(pp) = &canary.ping_pong {
        if pp.ping_service == pp.pong_service {
            out.push(format!(
                "pingPong.pingService and pongService are both {:?}: they must be two Services",
                pp.ping_service
            ));
        }
        if canary.traffic_routing.is_none() {
            out.push(
                "spec.strategy.canary.pingPong needs trafficRouting: the router moves traffic between the two".into(),
            );
        }
    }
    if let (Some(a), Some(b)) = (&canary.stable_service, &canary.canary_service)
        && a == b
    {
        out.push(format!(
            "stableService and canaryService are both {a:?}: they must be two Services"
        ));
    }
    if let Some(routing) = &canary.traffic_routing {
        routing_problems(routing, out);
        match &routing.gateway_api() {
            Some(g)
                if g.http_route.is_none()
                    && g.http_routes.as_ref().is_none_or(|r| r.is_empty())
                    && g.grpc_route.is_none() =>
            {
                out.push(
                    "spec.strategy.canary.trafficRouting.gatewayAPI names no httpRoute, httpRoutes or grpcRoute".into(),
                );
            }
            Some(_) => {}
            None => {}
        }
        if (canary.stable_service.is_none() || canary.canary_service.is_none())
            && canary.ping_pong.is_none()
            && !routing.by_subsets_only()
        {
            out.push(
                "spec.strategy.canary.trafficRouting needs stableService and canaryService (or pingPong): the router sends to them"
                    .into(),
            );
        }
    }
    for (i, step) in effective_steps(canary).iter().enumerate() {
        if let Some(p) = &step.pause
            && let Err(e) = pause_length(p)
        {
            out.push(format!("steps[{i}].pause: {e}"));
        }
        if let Some(a) = &step.analysis
            && a.templates.is_empty()
        {
            out.push(format!("steps[{i}].analysis names no templates"));
        }
        if let Some(routing) = &canary.traffic_routing {
            managed_route_problems(routing, i, step, out);
            let inexact_method = step
                .set_mirror_route
                .iter()
                .flat_map(|m| m.match_.iter().flatten())
                .any(|m| m.method.as_ref().is_some_and(|v| v.exact.is_none()));
            if inexact_method && routing.gateway_api().is_some() {
                out.push(format!(
                    "steps[{i}].setMirrorRoute: the Gateway API matches a method exactly (method: {{exact: GET}})"
                ));
            }
            if step.set_header_route.is_some() && routing.smi.is_some() {
                out.push(format!("steps[{i}]: SMI TrafficSplits cannot route by header"));
            }
            if step.set_mirror_route.is_some() && (routing.smi.is_some() || routing.nginx.is_some()) {
                out.push(format!(
                    "steps[{i}]: mirror routes need the Gateway API or Istio router"
                ));
            }
        }
        if (step.set_header_route.is_some() || step.set_mirror_route.is_some()) && canary.traffic_routing.is_none() {
            out.push(format!(
                "steps[{i}]: header and mirror routes need spec.strategy.canary.trafficRouting"
            ));
        }
    }
}
