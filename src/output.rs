//! The HDF5 file: the layout users read, written atomically.
//!
//! The layout (documented for users in the README) is
//!
//! ```text
//! /                      format, format_version, repflow_version, scenario,
//!                        created, status, runs_total, runs_finished
//! /task/inputs [P, D]    targets [P, K], latents [P, d] (when the task has them)
//! /runs/<name>/          activation, seed, loss, ... ; status
//!     init/W [N, D]      b [N], J [K, N], b_out [K]
//!     flow/t [T]         W [T, N, D], b [T, N], (J [T, K, N], b_out [T, K]),
//!                        loss [T], train_loss [T], accuracy [T],
//!                        hidden [T, P, N], sliding [T, N], events/...
//!         geometry/...   the study's measures (docs/geometry.md)
//!     sgd/...            the same, plus step [T]
//! /groups/<activation>/flow|sgd/
//!                        t, target_alignment, input_alignment of the
//!                        seed-averaged hidden kernel
//! ```
//!
//! Arrays are row-major, f64 unless said otherwise. The whole file is
//! built in memory and written to `<path>.partial`, then renamed over
//! `<path>`, so the path always holds a complete, valid file: at a
//! checkpoint, when a run fails or when the user interrupts, the root
//! `status` and each run's `status` and `stop_reason` say how far it got.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hdf5_pure::{AttrValue, FileBuilder, Group, GroupBuilder};

use crate::geometry::series::{
    GeometrySeries, group_alignment, write_group, write_group_alignment,
};
use crate::plan::{Plan, RunSpec};
use crate::sgd::Precision;
use crate::trajectory::Trajectory;

/// The version of this layout; bumped on any incompatible change.
pub const FORMAT_VERSION: i64 = 1;

/// What happened to one run so far.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// The flow trajectory, once integrated.
    pub flow: Option<Trajectory>,
    /// The SGD trajectory, once trained.
    pub sgd: Option<Trajectory>,
    /// The geometry of the flow trajectory, when measured.
    pub flow_geometry: Option<GeometrySeries>,
    /// The geometry of the SGD trajectory, when measured.
    pub sgd_geometry: Option<GeometrySeries>,
}

/// Options of what to store.
#[derive(Clone, Copy, Debug, Default)]
pub struct Storage {
    /// Store `W`, `b` (and `J`, `b_out`) only at the first and last saved
    /// times.
    pub ends_only: bool,
    /// Leave out the hidden responses.
    pub no_hidden: bool,
}

/// Errors writing or reading a file.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The HDF5 layer failed.
    #[error("{path}: {source}")]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// Why.
        source: hdf5_pure::Error,
    },
    /// Renaming the finished file into place failed.
    #[error("{path}: cannot move the finished file into place: {source}")]
    Rename {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes the plan's file with the results so far, atomically.
pub fn write(
    path: &Path,
    plan: &Plan,
    results: &[Option<RunResult>],
    status: &str,
    storage: Storage,
) -> Result<(), OutputError> {
    let mut fb = FileBuilder::new();
    let finished = results.iter().filter(|r| r.is_some()).count();
    file_attrs(&mut fb, status);
    fb.set_attr("scenario", AttrValue::String(plan.scenario.to_toml()));
    fb.set_attr(
        "scenario_source",
        AttrValue::String(plan.source.file.clone()),
    );
    fb.set_attr("runs_total", AttrValue::I64(plan.runs.len() as i64));
    fb.set_attr("runs_finished", AttrValue::I64(finished as i64));

    let (task, runs) = (fb.create_group("task"), fb.create_group("runs"));
    let (task, runs) = plan_groups(task, runs, plan, results, storage);
    fb.add_group(task);
    fb.add_group(runs);
    if let Some(groups) = add_groups(fb.create_group("groups"), plan, results) {
        fb.add_group(groups);
    }
    commit(fb, path)
}

/// The root attributes every repflow file has: `format`,
/// `format_version`, `repflow_version`, `created` and `status`.
pub(crate) fn file_attrs(fb: &mut FileBuilder, status: &str) {
    fb.set_attr("format", AttrValue::String("repflow".into()));
    fb.set_attr("format_version", AttrValue::I64(FORMAT_VERSION));
    fb.set_attr(
        "repflow_version",
        AttrValue::String(env!("CARGO_PKG_VERSION").into()),
    );
    fb.set_attr("created", AttrValue::String(utc_now()));
    fb.set_attr("status", AttrValue::String(status.into()));
}

/// Fills the `task` and `runs` groups of one plan: the layout of a plain
/// file's root and of each point of a sweep.
pub(crate) fn plan_groups(
    task: GroupBuilder,
    mut runs: GroupBuilder,
    plan: &Plan,
    results: &[Option<RunResult>],
    storage: Storage,
) -> (hdf5_pure::FinishedGroup, hdf5_pure::FinishedGroup) {
    let task = task_group(task, plan);
    for (spec, result) in plan.runs.iter().zip(results) {
        let run = run_group(&mut runs, plan, spec, result.as_ref(), storage);
        runs.add_group(run);
    }
    (task, runs.finish())
}

/// Adds the `groups` group (seed-averaged geometry) of one plan to its
/// parent, when the plan measures geometry.
pub(crate) fn add_groups(
    parent: GroupBuilder,
    plan: &Plan,
    results: &[Option<RunResult>],
) -> Option<hdf5_pure::FinishedGroup> {
    let settings = plan.geometry.as_ref()?;
    Some(groups_group(parent, plan, results, settings.every))
}

/// Writes the built file to `<path>.partial` and renames it over `path`.
pub(crate) fn commit(fb: FileBuilder, path: &Path) -> Result<(), OutputError> {
    let partial = partial_path(path);
    fb.write(&partial).map_err(|source| OutputError::Hdf5 {
        path: partial.clone(),
        source,
    })?;
    std::fs::rename(&partial, path).map_err(|source| OutputError::Rename {
        path: path.to_path_buf(),
        source,
    })
}

/// The saved times (rows of `t`) whose weights a file with
/// `output.ends_only` keeps: the first and the last.
pub fn ends_of(t: usize) -> Vec<usize> {
    match t {
        0 => vec![],
        1 => vec![0],
        _ => vec![0, t - 1],
    }
}

/// `<path>.partial`, where a file is written before it is moved into place.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

fn task_group(mut g: GroupBuilder, plan: &Plan) -> hdf5_pure::FinishedGroup {
    let t = &plan.task;
    let p = t.conditions() as u64;
    g.create_dataset("inputs")
        .with_f64_data(&t.inputs)
        .with_shape(&[p, t.dim as u64]);
    g.create_dataset("targets")
        .with_f64_data(&t.targets)
        .with_shape(&[p, t.outputs as u64]);
    if let Some((d, bits)) = &t.latents {
        g.create_dataset("latents")
            .with_i64_data(bits)
            .with_shape(&[p, *d as u64]);
    }
    for (k, v) in &t.attrs {
        g.set_attr(k, v.clone());
    }
    g.finish()
}

/// `/groups/<activation>/flow|sgd`: the seed-averaged kernel alignment
/// of the finished runs of each activation.
fn groups_group(
    mut groups: GroupBuilder,
    plan: &Plan,
    results: &[Option<RunResult>],
    every: usize,
) -> hdf5_pure::FinishedGroup {
    let mut names: Vec<&str> = plan.runs.iter().map(|r| r.activation().name()).collect();
    names.dedup();
    for name in names {
        let mut g = groups.create_group(name);
        let of_group = || {
            plan.runs
                .iter()
                .zip(results)
                .filter(move |(spec, _)| spec.activation().name() == name)
                .filter_map(|(_, r)| r.as_ref())
        };
        let flows: Vec<&Trajectory> =
            of_group().filter_map(|r| r.flow.as_ref()).collect();
        let sgds: Vec<&Trajectory> = of_group().filter_map(|r| r.sgd.as_ref()).collect();
        for (kind, runs) in [("flow", flows), ("sgd", sgds)] {
            let alignment = group_alignment(&plan.task, &runs, every);
            if alignment.t.is_empty() {
                continue;
            }
            let mut k = g.create_group(kind);
            write_group_alignment(&mut k, &alignment);
            g.add_group(k.finish());
        }
        groups.add_group(g.finish());
    }
    groups.finish()
}

fn run_group(
    parent: &mut GroupBuilder,
    plan: &Plan,
    spec: &RunSpec,
    result: Option<&RunResult>,
    storage: Storage,
) -> hdf5_pure::FinishedGroup {
    let m = &spec.model;
    let (d, n, k) = (
        m.dims.inputs as u64,
        m.dims.hidden as u64,
        m.dims.outputs as u64,
    );
    let mut g = parent.create_group(&spec.name);
    g.set_attr("activation", AttrValue::String(m.activation.name().into()));
    if let Some((key, value)) = m.activation.parameter() {
        g.set_attr(key, AttrValue::F64(value));
    }
    g.set_attr("seed", AttrValue::I64(spec.seed as i64));
    g.set_attr("loss", AttrValue::String(m.loss.name().into()));
    g.set_attr(
        "train_readout",
        AttrValue::I64(i64::from(m.trains_readout())),
    );
    g.set_attr("train_bias", AttrValue::I64(i64::from(m.train_bias)));
    g.set_attr("hidden", AttrValue::I64(n as i64));
    let status = if result.is_some() {
        "finished"
    } else {
        "pending"
    };
    g.set_attr("status", AttrValue::String(status.into()));

    let mut init = g.create_group("init");
    init.create_dataset("W")
        .with_f64_data(&spec.init.w)
        .with_shape(&[n, d]);
    init.create_dataset("b").with_f64_data(&spec.init.b);
    init.create_dataset("J")
        .with_f64_data(&spec.init.j)
        .with_shape(&[k, n]);
    init.create_dataset("b_out").with_f64_data(&spec.init.b_out);
    g.add_group(init.finish());

    let Some(result) = result else {
        return g.finish();
    };
    let dims = TrajectoryDims {
        d,
        n,
        k,
        p: plan.task.conditions() as u64,
    };
    if let (Some(tr), Some(fp)) = (&result.flow, &plan.flow) {
        let mut f =
            trajectory_group(&mut g, "flow", tr, dims, m.trains_readout(), storage);
        let s = &fp.settings;
        f.set_attr("solver", AttrValue::String(s.solver.name().into()));
        f.set_attr("rtol", AttrValue::F64(s.rtol));
        f.set_attr("atol", AttrValue::F64(s.atol));
        f.set_attr(
            "t_end",
            AttrValue::F64(*s.save_times.last().unwrap_or(&0.0)),
        );
        f.set_attr("max_steps", AttrValue::I64(s.max_steps as i64));
        f.set_attr(
            "reduced_coordinates",
            AttrValue::I64(i64::from(tr.reduced_rank > 0)),
        );
        f.set_attr("reduced_rank", AttrValue::I64(tr.reduced_rank as i64));
        let coordinates = if tr.preactivations {
            "preactivations"
        } else {
            "weights"
        };
        f.set_attr("coordinates", AttrValue::String(coordinates.into()));
        let data = if fp.on_samples {
            "samples"
        } else {
            "conditions"
        };
        f.set_attr("data", AttrValue::String(data.into()));
        let kinks = match (m.activation.is_smooth(), s.plain_kinks) {
            (true, _) => "none",
            (false, true) => "plain",
            (false, false) => "events",
        };
        f.set_attr("kink_treatment", AttrValue::String(kinks.into()));
        if let Some(series) = &result.flow_geometry {
            write_group(&mut f, series);
        }
        g.add_group(f.finish());
    }
    if let (Some(tr), Some(sp)) = (&result.sgd, &plan.sgd) {
        let mut s =
            trajectory_group(&mut g, "sgd", tr, dims, m.trains_readout(), storage);
        let st = &sp.settings;
        s.set_attr("eta", AttrValue::F64(st.eta));
        s.set_attr("epochs", AttrValue::I64(st.epochs as i64));
        s.set_attr("noise", AttrValue::F64(plan.samples.1));
        let precision = match st.precision {
            Precision::Double => "f64",
            Precision::Single => "f32",
        };
        s.set_attr("precision", AttrValue::String(precision.into()));
        let steps: Vec<i64> = tr.step.iter().map(|&v| v as i64).collect();
        if !steps.is_empty() {
            s.create_dataset("step").with_i64_data(&steps);
        }
        if let Some(series) = &result.sgd_geometry {
            write_group(&mut s, series);
        }
        g.add_group(s.finish());
    }
    g.finish()
}

#[derive(Clone, Copy)]
struct TrajectoryDims {
    d: u64,
    n: u64,
    k: u64,
    p: u64,
}

fn trajectory_group(
    parent: &mut GroupBuilder,
    name: &str,
    tr: &Trajectory,
    dims: TrajectoryDims,
    readout: bool,
    storage: Storage,
) -> GroupBuilder {
    let TrajectoryDims { d, n, k, p } = dims;
    let t = tr.len() as u64;
    let mut g = parent.create_group(name);
    if let Some(o) = &tr.outcome {
        g.set_attr("stop_reason", AttrValue::String(o.reason.name().into()));
        g.set_attr("stop_message", AttrValue::String(o.reason.to_string()));
        g.set_attr("t_reached", AttrValue::F64(o.t_reached));
        g.set_attr("seconds", AttrValue::F64(o.seconds));
        for (key, value) in &o.counts {
            g.set_attr(key, AttrValue::I64(*value as i64));
        }
    }
    if t == 0 {
        return g;
    }

    g.create_dataset("t").with_f64_data(&tr.t);
    g.create_dataset("loss").with_f64_data(&tr.loss);
    g.create_dataset("train_loss").with_f64_data(&tr.train_loss);
    g.create_dataset("accuracy").with_f64_data(&tr.accuracy);

    // With `ends_only`, the weights are kept at the first and last saved
    // times, and `weights_t` says which. A trajectory may hold those rows
    // only already (thinned after its geometry, or read back).
    let held = tr.weight_rows();
    let rows: Vec<usize> = if storage.ends_only && t > 2 {
        ends_of(t as usize)
    } else {
        held.clone()
    };
    let pick = |all: &[f64], per: usize| -> Vec<f64> {
        rows.iter()
            .flat_map(|&r| {
                let at = held
                    .iter()
                    .position(|&h| h == r)
                    .expect("the weights hold every row written");
                all[at * per..(at + 1) * per].iter().copied()
            })
            .collect()
    };
    let rt = rows.len() as u64;
    let weights_t: Vec<f64> = rows.iter().map(|&r| tr.t[r]).collect();
    g.create_dataset("weights_t").with_f64_data(&weights_t);
    g.create_dataset("W")
        .with_f64_data(&pick(&tr.w, (n * d) as usize))
        .with_shape(&[rt, n, d]);
    g.create_dataset("b")
        .with_f64_data(&pick(&tr.b, n as usize))
        .with_shape(&[rt, n]);
    if readout {
        g.create_dataset("J")
            .with_f64_data(&pick(&tr.j, (k * n) as usize))
            .with_shape(&[rt, k, n]);
        g.create_dataset("b_out")
            .with_f64_data(&pick(&tr.b_out, k as usize))
            .with_shape(&[rt, k]);
    }
    if !storage.no_hidden {
        g.create_dataset("hidden")
            .with_f64_data(&tr.hidden)
            .with_shape(&[t, p, n]);
    }
    if !tr.sliding.is_empty() {
        let sliding: Vec<i64> = tr.sliding.iter().map(|&v| i64::from(v)).collect();
        g.create_dataset("sliding")
            .with_i64_data(&sliding)
            .with_shape(&[t, n]);
    }
    if !tr.events.is_empty() {
        let mut e = g.create_group("events");
        let ev = &tr.events;
        e.create_dataset("t")
            .with_f64_data(&ev.iter().map(|e| e.t).collect::<Vec<_>>());
        let ints = |f: &dyn Fn(&crate::trajectory::KinkEvent) -> i64| -> Vec<i64> {
            ev.iter().map(f).collect()
        };
        e.create_dataset("unit")
            .with_i64_data(&ints(&|e| e.unit as i64));
        e.create_dataset("point")
            .with_i64_data(&ints(&|e| e.point as i64));
        e.create_dataset("kink")
            .with_i64_data(&ints(&|e| e.kink as i64));
        e.create_dataset("kind")
            .with_i64_data(&ints(&|e| e.kind.code()));
        e.set_attr(
            "kind_codes",
            AttrValue::String(
                "0 cross up, 1 cross down, 2 start sliding, 3 leave sliding".into(),
            ),
        );
        g.add_group(e.finish());
    }
    g
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days` algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Reading back a written group whose datasets may be absent (left out
/// by the storage options or by the measures switched off): an absent
/// dataset reads as empty.
pub(crate) struct Optional<'a> {
    group: &'a Group,
    names: Vec<String>,
}

impl<'a> Optional<'a> {
    /// The datasets of `group`.
    pub(crate) fn new(group: &'a Group) -> Result<Self, hdf5_pure::Error> {
        Ok(Optional {
            group,
            names: group.datasets()?,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.names.iter().any(|d| d == name)
    }

    /// The `f64` dataset `name`, or nothing.
    pub(crate) fn f64s(&self, name: &str) -> Result<Vec<f64>, hdf5_pure::Error> {
        if self.has(name) {
            self.group.dataset(name)?.read_f64()
        } else {
            Ok(vec![])
        }
    }

    /// The `i64` dataset `name`, or nothing.
    pub(crate) fn i64s(&self, name: &str) -> Result<Vec<i64>, hdf5_pure::Error> {
        if self.has(name) {
            self.group.dataset(name)?.read_i64()
        } else {
            Ok(vec![])
        }
    }
}

/// The string attribute `key`, or the empty string.
pub(crate) fn attr_text(attrs: &HashMap<String, AttrValue>, key: &str) -> String {
    attrs
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_counts_map_to_calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_790), (2026, 12, 3));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
