//! `serin plan`: the whole timeline of a Rollout's next update, without applying anything. The
//! controller's own plan function is run against an ideal cluster ([`world`]): once with every
//! analysis passing as early as its rules allow, once as late as it can and still pass, and once
//! for each analysis failing. What it shows is what the controller will do.

pub mod render;
pub mod world;

use crate::crd::analysis::AnalysisTemplateSpec;
use crate::crd::rollout::{Phase, Rollout};
use crate::plan::{conditions, plan};
use crate::reconcile::analysis_templates::TemplateId;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use world::{Failing, Look, Measuring, World};

/// The analysis templates the Rollout may name, by kind and name.
pub type Templates = BTreeMap<TemplateId, AnalysisTemplateSpec>;

/// A simulated update that has not ended after this long is cut short.
const HORIZON: Duration = Duration::from_secs(30 * 86_400);
const MAX_LOOKS: usize = 50_000;
const START: i64 = 1_800_000_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TimelineError {
    /// The controller would refuse the spec: its own message.
    #[error("{0}")]
    InvalidSpec(String),
    #[error("the Rollout has no metadata.name")]
    NoName,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Requests per second the Rollout's Service takes, to count requests exposed.
    pub rps: Option<f64>,
    /// How long a new Pod takes to become ready.
    pub pod_startup: Duration,
}

/// One step of the update (a blue-green stage, or the one step of a rolling update).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepTime {
    /// From 0, as `status.currentStepIndex`.
    pub index: usize,
    pub step: String,
    /// Percent of traffic on the new version when the step ends.
    pub traffic: f64,
    /// The Pods of the new version and of the stable one when the step ends.
    pub new_pods: i32,
    pub old_pods: i32,
    /// Seconds from the update to the step's start: earliest and latest.
    pub starts: [f64; 2],
    /// How long the step lasts: earliest and latest (a wait for a person counts 0).
    pub lasts: [f64; 2],
    /// A person must promote (a pause without duration, or an inconclusive analysis).
    pub waits_for_person: bool,
    /// Requests sent to the new version during the step (with `--rps`), earliest timing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
}

/// What happens when one analysis fails.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailureTime {
    /// The step whose analysis fails; `None` for the background analysis.
    pub step: Option<usize>,
    pub what: String,
    /// Percent of traffic on the new version when the failure is found.
    pub traffic: f64,
    /// Seconds from the analysis' start to its failure; `None` when the update is promoted first.
    pub detected_after: Option<f64>,
    /// Seconds from the update to the failure.
    pub failed_at: Option<f64>,
    /// Seconds from the failure until no traffic reaches the new version.
    pub traffic_back_after: Option<f64>,
    /// Seconds from the failure until the new version has no Pods.
    pub pods_gone_after: Option<f64>,
    pub how: String,
    /// Requests sent to the new version from the update's start until traffic is back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub namespace: String,
    pub name: String,
    pub strategy: &'static str,
    pub replicas: i32,
    /// How traffic reaches the new version.
    pub traffic: String,
    pub steps: Vec<StepTime>,
    /// Seconds to full promotion: earliest and latest, not counting waits for a person.
    pub promoted_after: Option<[f64; 2]>,
    /// Steps at which a person must promote.
    pub waits_for_people: Vec<usize>,
    pub failures: Vec<FailureTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rps: Option<f64>,
    pub pod_startup_seconds: f64,
    /// What the timeline could not know or leaves out.
    pub notes: Vec<String>,
}

/// What one simulated update went through.
struct Trace {
    looks: Vec<Look>,
    /// Step indexes at which a person promoted.
    promoted_by_person: Vec<usize>,
    new_hash: String,
    /// Why the update was not followed to promotion, when it was not.
    ended: Option<String>,
    /// Problems with the analysis templates.
    problems: Vec<String>,
}

/// The timeline of the update to `rollout`'s template, from a stable version running at full size.
pub fn timeline(rollout: &Rollout, templates: &Templates, opts: &Options) -> Result<Timeline, TimelineError> {
    let name = rollout.metadata.name.clone().ok_or(TimelineError::NoName)?;
    let namespace = rollout.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut clean = rollout.clone();
    clean.status = None;
    clean.metadata.namespace = Some(namespace.clone());
    clean.metadata.generation = Some(1);
    check_valid(&clean)?;
    let start = Timestamp::from_second(START).unwrap_or(Timestamp::UNIX_EPOCH);
    let earliest = simulate(&clean, templates, opts, start, Measuring::Passing, None);
    let latest = simulate(&clean, templates, opts, start, Measuring::SlowPassing, None);
    let routed = rollout.spec.strategy.traffic_routing().is_some();
    let mut failures = Vec::new();
    for step in analysis_steps(&earliest) {
        let failing = Failing { step };
        let trace = simulate(&clean, templates, opts, start, Measuring::Passing, Some(failing));
        if let Some(f) = failure_time(&trace, &clean, step, routed, opts) {
            failures.push(f);
        }
    }
    let mut notes = Vec::new();
    for trace in [&earliest, &latest] {
        if let Some(why) = &trace.ended
            && !notes.contains(why)
        {
            notes.push(why.clone());
        }
    }
    for p in &earliest.problems {
        notes.push(format!("An analysis cannot start: {p}. It is shown as taking no time."));
    }
    if let Some(bg) = &rollout.spec.strategy.blue_green {
        let delay = crate::plan::bluegreen::scale_down_delay(bg).as_secs();
        notes.push(format!(
            "After the switch the old version keeps its Pods for {delay}s (scaleDownDelaySeconds): an abort or a failed post-promotion analysis in that time switches back in one write."
        ));
    }
    if opts.pod_startup.is_zero() {
        notes.push("Pods are counted ready at once; --pod-startup adds their start-up time.".into());
    }
    let steps = step_times(&earliest, &latest, rollout, opts);
    Ok(Timeline {
        namespace,
        name,
        strategy: rollout.spec.strategy.kind(),
        replicas: rollout.spec.replicas.unwrap_or(1),
        traffic: traffic_described(rollout),
        steps,
        promoted_after: promoted_after(&earliest)
            .zip(promoted_after(&latest))
            .map(|(a, b)| [a, b]),
        waits_for_people: earliest.promoted_by_person.clone(),
        failures,
        rps: opts.rps,
        pod_startup_seconds: opts.pod_startup.as_secs_f64(),
        notes,
    })
}

/// The controller's verdict on the spec itself.
fn check_valid(rollout: &Rollout) -> Result<(), TimelineError> {
    let start = Timestamp::from_second(START).unwrap_or(Timestamp::UNIX_EPOCH);
    let p = plan(rollout, &world::workload_of(rollout), start);
    let invalid = p
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == conditions::INVALID_SPEC && c.status == "True");
    match invalid {
        Some(c) => Err(TimelineError::InvalidSpec(c.message.clone())),
        None => Ok(()),
    }
}

/// Brings up the version before this one, as a first apply does: straight to full size.
fn settle(world: &mut World) {
    let wanted = world.rollout.spec.template.clone();
    if let Some(t) = &mut world.rollout.spec.template {
        let mut typed = t.typed();
        world::mark_previous(&mut typed);
        *t = typed.into();
    }
    world.previous = true;
    for _ in 0..100 {
        world.measure();
        let look = world.look();
        let st = &look.plan.status;
        if st.phase == Some(Phase::Healthy) && st.stable_pod_hash == st.current_pod_hash {
            break;
        }
        match world.next_change(look.plan.requeue_after) {
            Some(t) => world.now = t,
            None => break,
        }
    }
    world.rollout.spec.template = wanted;
    world.previous = false;
    world.rollout.metadata.generation = Some(2);
}

fn simulate(
    rollout: &Rollout,
    templates: &Templates,
    opts: &Options,
    start: Timestamp,
    measuring: Measuring,
    failing: Option<Failing>,
) -> Trace {
    let mut world = World::new(rollout.clone(), templates, start, opts.pod_startup);
    settle(&mut world);
    world.set_scenario(measuring, failing);
    let mut trace = run(&mut world);
    trace.problems = std::mem::take(&mut world.problems);
    trace
}

/// Runs the update to its end: promoted, or aborted with the new version gone.
fn run(world: &mut World) -> Trace {
    let began = world.now;
    let mut trace = Trace {
        looks: Vec::new(),
        promoted_by_person: Vec::new(),
        new_hash: String::new(),
        ended: None,
        problems: Vec::new(),
    };
    for _ in 0..MAX_LOOKS {
        world.measure();
        let look = world.look();
        let st = look.plan.status.clone();
        let new_hash = st.current_pod_hash.clone().unwrap_or_default();
        trace.new_hash = new_hash.clone();
        let promoted = st.stable_pod_hash.as_deref() == Some(new_hash.as_str()) && st.phase == Some(Phase::Healthy);
        let aborted = st.abort == Some(true);
        let requeue = look.plan.requeue_after;
        let gone = look.new_pods == 0 && look.new_ready == 0;
        tracing::trace!(
            at = seconds(began, look.now),
            step = ?st.current_step_index,
            phase = ?st.phase,
            weight = look.plan.weight,
            new = look.new_ready,
            old = look.old_ready,
            "{}",
            st.message.clone().unwrap_or_default()
        );
        trace.looks.push(look);
        if promoted || (aborted && gone) {
            return trace;
        }
        let next = world.next_change(requeue);
        let within = |t: Timestamp| t.duration_since(began).unsigned_abs() <= HORIZON;
        match next {
            Some(t) if within(t) => world.now = t,
            Some(_) => {
                trace.ended = Some(format!(
                    "The update was followed for {} of simulated time and had not ended.",
                    render::duration(HORIZON.as_secs_f64())
                ));
                return trace;
            }
            None if st.phase == Some(Phase::Paused) && !aborted && world.rollout.spec.paused != Some(true) => {
                let idx = st.current_step_index.unwrap_or(0).max(0) as usize;
                trace.promoted_by_person.push(idx);
                world.promote();
                world.now = world.now.checked_add(Duration::from_millis(1)).unwrap_or(world.now);
            }
            None => {
                trace.ended = Some(match (aborted, world.rollout.spec.paused) {
                    (_, Some(true)) => "spec.paused is true: nothing moves until it is false.".into(),
                    (true, _) => "After an abort the new version keeps its Pods until a retry or a new version.".into(),
                    _ => format!("The update stops: {}", st.message.clone().unwrap_or_default()),
                });
                return trace;
            }
        }
    }
    trace.ended = Some("The update took too many steps to follow to its end.".into());
    trace
}

/// Percent of traffic on the new version after a look.
fn traffic_share(look: &Look, routed: bool, new_hash: &str) -> f64 {
    let p = &look.plan;
    let blue_green = p.status.blue_green.is_some();
    if p.status.stable_pod_hash.as_deref() == Some(new_hash) && p.status.abort != Some(true) {
        return 100.0;
    }
    if routed {
        return f64::from(p.weight);
    }
    if blue_green {
        return if p.stable_service_hash.as_deref() == Some(new_hash) {
            100.0
        } else {
            0.0
        };
    }
    let all = look.new_ready + look.old_ready;
    if all == 0 {
        0.0
    } else {
        100.0 * f64::from(look.new_ready) / f64::from(all)
    }
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

/// The looks while the update is at a step, by step index: (first, one past the last).
fn step_spans(trace: &Trace) -> BTreeMap<usize, (usize, usize)> {
    let mut spans: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (i, look) in trace.looks.iter().enumerate() {
        let st = &look.plan.status;
        if st.current_pod_hash.as_deref() != Some(trace.new_hash.as_str()) || st.stable_pod_hash == st.current_pod_hash
        {
            continue;
        }
        let idx = st.current_step_index.unwrap_or(0).max(0) as usize;
        spans.entry(idx).and_modify(|s| s.1 = i + 1).or_insert((i, i + 1));
    }
    spans
}

fn step_label(rollout: &Rollout, index: usize) -> String {
    if rollout.spec.strategy.kind() == "rollingUpdate" {
        return "rolling update".into();
    }
    crate::plan::steps::names(&rollout.spec.strategy)
        .get(index)
        .cloned()
        .unwrap_or_else(|| "promote: the new version becomes stable".into())
}

/// Requests to the new version between two looks of a trace, by the traffic after each look.
fn requests_between(trace: &Trace, from: usize, to: usize, routed: bool, rps: f64) -> f64 {
    let looks = &trace.looks;
    (from..to.min(looks.len()))
        .map(|i| {
            let next = looks.get(i + 1).map_or(looks[i].now, |l| l.now);
            traffic_share(&looks[i], routed, &trace.new_hash) / 100.0 * seconds(looks[i].now, next) * rps
        })
        .sum()
}

fn step_times(earliest: &Trace, latest: &Trace, rollout: &Rollout, opts: &Options) -> Vec<StepTime> {
    let routed = rollout.spec.strategy.traffic_routing().is_some();
    let (Some(first_e), Some(first_l)) = (earliest.looks.first(), latest.looks.first()) else {
        return Vec::new();
    };
    let (t0e, t0l) = (first_e.now, first_l.now);
    let spans_e = step_spans(earliest);
    let spans_l = step_spans(latest);
    let mut out: Vec<StepTime> = Vec::new();
    for (&index, &(a, b)) in &spans_e {
        let end_e = earliest.looks.get(b).map_or(earliest.looks[b - 1].now, |l| l.now);
        let (starts_l, lasts_l) = match spans_l.get(&index) {
            Some(&(la, lb)) => {
                let end_l = latest.looks.get(lb).map_or(latest.looks[lb - 1].now, |l| l.now);
                (seconds(t0l, latest.looks[la].now), seconds(latest.looks[la].now, end_l))
            }
            None => (f64::NAN, f64::NAN),
        };
        let shown = if moves_traffic(rollout, index) {
            effect_look(earliest, index, b)
        } else {
            b - 1
        };
        let last = &earliest.looks[shown];
        let traffic = traffic_share(last, routed, &earliest.new_hash);
        // Steps passed within one look (a switch, a weight the Pods already meet) take no time.
        let skipped_from = out.last().map_or(0, |s| s.index + 1);
        for passed in skipped_from..index {
            out.push(StepTime {
                index: passed,
                step: step_label(rollout, passed),
                traffic: traffic_share(&earliest.looks[a], routed, &earliest.new_hash),
                new_pods: earliest.looks[a].new_pods,
                old_pods: earliest.looks[a].old_pods,
                starts: [seconds(t0e, earliest.looks[a].now), starts_l],
                lasts: [0.0, 0.0],
                waits_for_person: false,
                requests: opts.rps.map(|_| 0.0),
            });
        }
        out.push(StepTime {
            index,
            step: step_label(rollout, index),
            traffic,
            new_pods: last.new_pods,
            old_pods: last.old_pods,
            starts: [seconds(t0e, earliest.looks[a].now), starts_l],
            lasts: [seconds(earliest.looks[a].now, end_e), lasts_l],
            waits_for_person: earliest.promoted_by_person.contains(&index),
            requests: opts.rps.map(|rps| requests_between(earliest, a, b, routed, rps)),
        });
    }
    // Steps the promotion passed in its one look.
    let promoted = earliest
        .looks
        .iter()
        .position(|l| l.plan.status.stable_pod_hash.as_deref() == Some(earliest.new_hash.as_str()));
    if let Some(p) = promoted {
        let look = &earliest.looks[p];
        let from = out.last().map_or(0, |s| s.index + 1);
        let latest_at = promoted_after(latest).unwrap_or(f64::NAN);
        for index in from..step_count(rollout) {
            out.push(StepTime {
                index,
                step: step_label(rollout, index),
                traffic: traffic_share(look, routed, &earliest.new_hash),
                new_pods: look.new_pods,
                old_pods: look.old_pods,
                starts: [seconds(t0e, look.now), latest_at],
                lasts: [0.0, 0.0],
                waits_for_person: false,
                requests: opts.rps.map(|_| 0.0),
            });
        }
    }
    out
}

/// The steps a release walks: a canary's, blue-green's stages, the one of a rolling update.
fn step_count(rollout: &Rollout) -> usize {
    crate::plan::steps::names(&rollout.spec.strategy).len().max(1)
}

/// Whether a step changes the traffic (its effect shows where it ends) or holds it.
fn moves_traffic(rollout: &Rollout, index: usize) -> bool {
    let strategy = &rollout.spec.strategy;
    if strategy.blue_green.is_some() {
        return index == crate::plan::bluegreen::SWITCH;
    }
    let Some(c) = &strategy.canary else { return true };
    crate::plan::steps::effective_steps(c)
        .get(index)
        .is_none_or(|s| s.set_weight.is_some() || s.set_canary_scale.is_some())
}

/// The look that carried a step out: the last one planned while the update was at it (a plan
/// that meets a step's weight moves on in the same write), else the first past it.
fn effect_look(trace: &Trace, index: usize, span_end: usize) -> usize {
    let at = |i: usize| {
        let st = &trace.looks[i].plan.status;
        st.current_step_index.unwrap_or(0).max(0) as usize
    };
    let planned_at = |i: usize| if i == 0 { 0 } else { at(i - 1) };
    (0..trace.looks.len())
        .rev()
        .find(|&i| planned_at(i) == index)
        .unwrap_or(span_end.min(trace.looks.len() - 1))
}

/// Seconds to the look that made the new version stable (its old version's Pods may stay a while).
fn promoted_after(trace: &Trace) -> Option<f64> {
    let first = trace.looks.first()?;
    let promoted = trace
        .looks
        .iter()
        .find(|l| l.plan.status.stable_pod_hash.as_deref() == Some(trace.new_hash.as_str()))?;
    Some(seconds(first.now, promoted.now))
}

/// The steps at which an analysis runs (`None`: the background one), as the update met them.
fn analysis_steps(trace: &Trace) -> Vec<Option<i32>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for look in &trace.looks {
        for req in &look.plan.create_runs {
            if seen.insert(req.step) {
                out.push(req.step);
            }
        }
    }
    out
}

fn failure_time(
    trace: &Trace,
    rollout: &Rollout,
    step: Option<i32>,
    routed: bool,
    opts: &Options,
) -> Option<FailureTime> {
    let looks = &trace.looks;
    let t0 = looks.first()?.now;
    let started = looks
        .iter()
        .position(|l| l.plan.create_runs.iter().any(|r| r.step == step))?;
    let what = match step {
        None => "background analysis".to_string(),
        Some(i) => format!("step {}: {}", i + 1, step_label(rollout, i.max(0) as usize)),
    };
    let share_at = |i: usize| traffic_share(&looks[i], routed, &trace.new_hash);
    let Some(failed) = looks.iter().position(|l| l.plan.status.abort == Some(true)) else {
        // The update ended before the failing analysis reached its failure limit.
        return Some(FailureTime {
            step: step.map(|s| s.max(0) as usize),
            what,
            traffic: share_at(looks.len() - 1),
            detected_after: None,
            failed_at: None,
            traffic_back_after: None,
            pods_gone_after: None,
            how: "the update is promoted before the analysis reaches its failure limit: it never stops it".into(),
            requests: opts.rps.map(|rps| requests_between(trace, 0, looks.len(), routed, rps)),
        });
    };
    let before = if failed > 0 { share_at(failed - 1) } else { 0.0 };
    let back = (failed..looks.len()).find(|&i| share_at(i) == 0.0)?;
    let gone = (failed..looks.len()).find(|&i| looks[i].new_pods == 0 && looks[i].new_ready == 0);
    let fail_time = looks[failed].now;
    Some(FailureTime {
        step: step.map(|s| s.max(0) as usize),
        what,
        traffic: before,
        detected_after: Some(seconds(looks[started].now, fail_time)),
        failed_at: Some(seconds(t0, fail_time)),
        traffic_back_after: Some(seconds(fail_time, looks[back].now)),
        pods_gone_after: gone.map(|g| seconds(fail_time, looks[g].now)),
        how: how_back(rollout),
        requests: opts.rps.map(|rps| requests_between(trace, 0, back, routed, rps)),
    })
}

/// How traffic goes back to the stable version on an abort.
fn how_back(rollout: &Rollout) -> String {
    let strategy = &rollout.spec.strategy;
    let routed = strategy.traffic_routing().is_some();
    match (strategy.blue_green.is_some(), routed) {
        (true, false) => "the active Service switches back in one write".into(),
        (_, true) => {
            let what = router_object(rollout);
            if what.contains(" and ") {
                format!("{what} go back to stable, in one write each")
            } else {
                format!("{what} goes back to stable in one write")
            }
        }
        (false, false) => "the new version's Pods are scaled to 0 and the stable version back to full size".into(),
    }
}

fn router_object(rollout: &Rollout) -> String {
    let Some(tr) = rollout.spec.strategy.traffic_routing() else {
        return "traffic".into();
    };
    let named: Vec<&str> = [
        (tr.gateway_api().is_some(), "the HTTPRoute's weights"),
        (tr.nginx.is_some(), "the canary Ingress"),
        (tr.istio.is_some(), "the VirtualService's weights"),
        (tr.smi.is_some(), "the TrafficSplit"),
    ]
    .into_iter()
    .filter_map(|(on, what)| on.then_some(what))
    .collect();
    match named.as_slice() {
        [] => "the route".into(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn traffic_described(rollout: &Rollout) -> String {
    let strategy = &rollout.spec.strategy;
    match strategy.traffic_routing() {
        Some(_) => format!("{} (set by Serin)", router_object(rollout)),
        None if strategy.blue_green.is_some() => "the active and preview Services' selectors".into(),
        None => "Pod counts (no traffic router: each Pod takes an equal share)".into(),
    }
}

#[cfg(test)]
mod tests;
