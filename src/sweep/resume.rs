//! `--resume`: the finished runs of an earlier file, read back.
//!
//! A run is kept when the file holds it as `finished`, none of its
//! trajectories was interrupted, and its plan (the point's resolved
//! scenario, or the plain file's `scenario` attribute) is the same text
//! as now. Its trajectories are read back into [`Trajectory`] values
//! exactly as they were written, so that writing them again gives the
//! same datasets bit for bit.
//!
//! When the plan measures geometry, each kept trajectory's geometry
//! series is read back too, so it is neither measured again nor lost.
//!
//! With `output.ends_only`, the file holds the weights at the first and
//! last saved times only (`weights_t`). They are read back as a
//! trajectory whose weights hold those rows only
//! ([`Trajectory::weight_rows`]), as a run's are once its geometry is
//! measured, and the writer stores them again as they are.

use std::collections::HashMap;
use std::path::Path;

use hdf5_pure::{AttrValue, File, Group};

use super::Study;
use super::output::Results;
use crate::geometry::series::read_group;
use crate::output::{Optional, RunResult, attr_text as text};
use crate::plan::{Plan, RunSpec};
use crate::trajectory::{EventKind, KinkEvent, Outcome, StopReason, Trajectory};

/// An error reading the file to resume.
#[derive(Debug, thiserror::Error)]
#[error("cannot resume from {path}: {message}")]
pub struct ResumeError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// The counts each kind of trajectory stores, in the order they are
/// written.
const COUNTS: [&str; 12] = [
    "rhs_evals",
    "accepted_steps",
    "rejected_steps",
    "events",
    "segments",
    "sliding_episodes",
    "landings",
    "probes",
    "steps",
    "epochs",
    "samples",
    "batch",
];

/// The results to keep from `path` for every run of `study`; all `None`
/// when the file does not exist.
pub fn kept(path: &Path, study: &Study) -> Result<Results, ResumeError> {
    let mut results = super::run::empty_results(study);
    if !path.exists() {
        return Ok(results);
    }
    let err = |message: String| ResumeError {
        path: path.display().to_string(),
        message,
    };
    let file = File::open(path).map_err(|e| err(format!("not readable as HDF5: {e}")))?;
    let root = file.root().attrs().map_err(|e| err(e.to_string()))?;
    if text(&root, "format") != "repflow" {
        return Err(err("not a repflow file".into()));
    }

    for (point, slot) in study.points.iter().zip(&mut results) {
        let (prefix, attrs) = if study.is_sweep() {
            let prefix = format!("points/{}/", point.name);
            let Ok(g) = file.group(prefix.trim_end_matches('/')) else {
                continue;
            };
            (prefix, g.attrs().map_err(|e| err(e.to_string()))?)
        } else {
            (String::new(), root.clone())
        };
        if text(&attrs, "scenario") != point.plan.scenario.to_toml() {
            log::warn!("{}: its scenario changed, running it again", point.name);
            continue;
        }
        for (spec, result) in point.plan.runs.iter().zip(slot.iter_mut()) {
            let Ok(g) = file.group(&format!("{prefix}runs/{}", spec.name)) else {
                continue;
            };
            *result = read_run(&g, &point.plan, spec)
                .map_err(|e| err(format!("{prefix}runs/{}: {e}", spec.name)))?;
        }
    }
    Ok(results)
}

/// A finished, uninterrupted run, or `None`.
fn read_run(
    g: &Group,
    plan: &Plan,
    spec: &RunSpec,
) -> Result<Option<RunResult>, hdf5_pure::Error> {
    // The seed-averaged kernels are measured on the hidden responses, so
    // a file without them cannot stand in for the run.
    let no_hidden = plan.geometry.is_some() && plan.scenario.output.no_hidden;
    if no_hidden || text(&g.attrs()?, "status") != "finished" {
        return Ok(None);
    }
    let geometry = |g: &Group| {
        plan.geometry
            .as_ref()
            .map(|settings| read_group(g, &plan.task, &spec.model, settings))
            .transpose()
    };
    let mut result = RunResult::default();
    if plan.flow.is_some() {
        let flow = g.group("flow")?;
        result.flow = Some(read_trajectory(&flow)?);
        result.flow_geometry = geometry(&flow)?;
    }
    if plan.sgd.is_some() {
        let sgd = g.group("sgd")?;
        result.sgd = Some(read_trajectory(&sgd)?);
        result.sgd_geometry = geometry(&sgd)?;
    }
    let interrupted = [&result.flow, &result.sgd].iter().any(|t| {
        t.as_ref().is_some_and(|t| {
            t.outcome
                .as_ref()
                .is_none_or(|o| o.reason == StopReason::Interrupted)
        })
    });
    Ok((!interrupted).then_some(result))
}

fn read_trajectory(g: &Group) -> Result<Trajectory, hdf5_pure::Error> {
    let attrs = g.attrs()?;
    let data = Optional::new(g)?;
    let (f64s, i64s) = (|n| data.f64s(n), |n| data.i64s(n));

    let t = f64s("t")?;
    let weights_t = f64s("weights_t")?;
    let mut tr = Trajectory {
        step: i64s("step")?.into_iter().map(|s| s as u64).collect(),
        w: f64s("W")?,
        b: f64s("b")?,
        j: f64s("J")?,
        b_out: f64s("b_out")?,
        loss: f64s("loss")?,
        train_loss: f64s("train_loss")?,
        accuracy: f64s("accuracy")?,
        hidden: f64s("hidden")?,
        sliding: i64s("sliding")?.into_iter().map(|s| s as u32).collect(),
        outcome: outcome(&attrs),
        reduced_rank: attrs
            .get("reduced_rank")
            .and_then(|v| v.as_i64())
            .unwrap_or(0) as usize,
        preactivations: text(&attrs, "coordinates") == "preactivations",
        ..Trajectory::default()
    };
    if weights_t.len() != t.len() {
        tr.weight_rows = weight_rows(&weights_t, &t);
    }
    tr.t = t;
    if g.groups()?.iter().any(|n| n == "events") {
        tr.events = read_events(&g.group("events")?)?;
    }
    Ok(tr)
}

/// The rows of `t` at the times `weights_t` (the last match of each).
fn weight_rows(weights_t: &[f64], t: &[f64]) -> Vec<usize> {
    weights_t
        .iter()
        .filter_map(|wt| t.iter().rposition(|x| x.to_bits() == wt.to_bits()))
        .collect()
}

fn outcome(attrs: &HashMap<String, AttrValue>) -> Option<Outcome> {
    let name = text(attrs, "stop_reason");
    let message = text(attrs, "stop_message");
    let message = message.strip_prefix("failed: ").unwrap_or(&message);
    let reason = StopReason::from_name(&name, message)?;
    let f64_attr = |k: &str| attrs.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let counts = COUNTS
        .iter()
        .filter_map(|&k| {
            let v = attrs.get(k).and_then(|v| v.as_i64())?;
            Some((k, v as u64))
        })
        .collect();
    Some(Outcome {
        reason,
        t_reached: f64_attr("t_reached"),
        counts,
        seconds: f64_attr("seconds"),
    })
}

fn read_events(g: &Group) -> Result<Vec<KinkEvent>, hdf5_pure::Error> {
    let t = g.dataset("t")?.read_f64()?;
    let unit = g.dataset("unit")?.read_i64()?;
    let point = g.dataset("point")?.read_i64()?;
    let kink = g.dataset("kink")?.read_i64()?;
    let kind = g.dataset("kind")?.read_i64()?;
    let mut events = Vec::with_capacity(t.len());
    for i in 0..t.len() {
        let kind = match kind[i] {
            0 => EventKind::CrossUp,
            1 => EventKind::CrossDown,
            2 => EventKind::StartSliding,
            _ => EventKind::LeaveSliding,
        };
        events.push(KinkEvent {
            t: t[i],
            unit: unit[i] as usize,
            point: point[i] as usize,
            kink: kink[i] as usize,
            kind,
        });
    }
    Ok(events)
}
