//! Events for the plan's decisions, named after the decision itself: a controller that restarts
//! between recording an Event and writing status records the same decision again, and the
//! API server answers AlreadyExists instead of keeping two. (kube-runtime's Recorder names Events
//! at random, which makes each decision at-most-once or at-least-once across a restart.)

use crate::hash::hash_text;
use crate::plan::{Decision, Severity};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

pub const REPORTER: &str = "serin";

/// Records the decision's Event; true when it is new, false when it was recorded before.
pub async fn record<K>(client: &Client, object: &K, instance: &str, d: &Decision) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let ns = object.namespace().unwrap_or_default();
    let uid = object.uid().unwrap_or_default();
    let name = format!("{}.{}", object.name_any(), hash_text(&format!("{uid}/{}", d.action)));
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        action: Some(d.action.chars().take(128).collect()),
        reason: Some(d.reason.to_string()),
        note: Some(d.message.chars().take(1024).collect()),
        type_: Some(
            if d.severity == Severity::Warning {
                "Warning"
            } else {
                "Normal"
            }
            .to_string(),
        ),
        regarding: Some(object.object_ref(&())),
        reporting_controller: Some(REPORTER.into()),
        reporting_instance: Some(instance.chars().take(128).collect()),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
