//! Reading a repflow file back: a summary of its task and runs.
//!
//! [`summarise`] reads what `repflow inspect` prints: the file's status,
//! the task's attributes, and per run and per trajectory (flow, SGD) the
//! stop reason, the time reached, the work done and the final loss and
//! accuracy on the noise-free conditions, and, when the trajectory has a
//! `geometry` group, its final target alignment, input alignment and
//! parallelism score.

use std::fmt::{self, Write as _};
use std::path::Path;

use hdf5_pure::{AttrValue, File, Group};

use crate::output::attr_text as text;

/// An error reading a file.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The HDF5 layer failed.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// One flow or SGD trajectory, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TrajectorySummary {
    /// `flow` or `sgd`.
    pub kind: String,
    /// Why it stopped.
    pub stop_reason: String,
    /// The time it reached.
    pub t_reached: f64,
    /// Saved times.
    pub saves: usize,
    /// Loss on the conditions at the last saved time.
    pub final_loss: f64,
    /// Accuracy on the conditions at the last saved time.
    pub final_accuracy: f64,
    /// Integer attributes: counts of work done.
    pub counts: Vec<(String, i64)>,
    /// Target alignment at the last measured time (`NaN` without a
    /// `geometry` group).
    pub final_target_alignment: f64,
    /// Input alignment at the last measured time.
    pub final_input_alignment: f64,
    /// Parallelism score (maximised over pairings) of the first task
    /// dichotomy, the first target, at the last measured time.
    pub final_parallelism: f64,
}

/// One run, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The group name.
    pub name: String,
    /// Its activation.
    pub activation: String,
    /// Its seed.
    pub seed: i64,
    /// `finished` or `pending`.
    pub status: String,
    /// Its trajectories.
    pub trajectories: Vec<TrajectorySummary>,
}

/// A whole file.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The file's `status` attribute.
    pub status: String,
    /// The layout version.
    pub format_version: i64,
    /// The task's attributes, sorted by name, as text.
    pub task: Vec<(String, String)>,
    /// The runs.
    pub runs: Vec<RunSummary>,
}

/// Reads the summary of a repflow file.
pub fn summarise(path: &Path) -> Result<Summary, InspectError> {
    summarise_at(path, "")
}

/// Reads the summary of the `task` and `runs` groups under `prefix`
/// (`""` for a plain file, `points/p0003/` for a point of a sweep).
pub fn summarise_at(path: &Path, prefix: &str) -> Result<Summary, InspectError> {
    let err = |message: String| InspectError::Read {
        path: path.display().to_string(),
        message,
    };
    let file =
        File::open(path).map_err(|e| err(format!("not a readable HDF5 file: {e}")))?;
    let root = file.root().attrs().map_err(|e| err(e.to_string()))?;
    if text(&root, "format") != "repflow" {
        return Err(err(
            "not a repflow file (no format = \"repflow\" attribute)".into(),
        ));
    }

    let task_attrs = file
        .group(&format!("{prefix}task"))
        .and_then(|g| g.attrs())
        .map_err(|e| err(e.to_string()))?;
    let mut task: Vec<(String, String)> = task_attrs
        .iter()
        .map(|(k, v)| (k.clone(), show(v)))
        .collect();
    task.sort();

    let runs_group = file
        .group(&format!("{prefix}runs"))
        .map_err(|e| err(e.to_string()))?;
    let mut runs = Vec::new();
    for name in runs_group.groups().map_err(|e| err(e.to_string()))? {
        let g = runs_group.group(&name).map_err(|e| err(e.to_string()))?;
        runs.push(run_summary(&name, &g).map_err(|e| err(format!("run {name}: {e}")))?);
    }
    Ok(Summary {
        status: text(&root, "status"),
        format_version: root
            .get("format_version")
            .and_then(|v| v.as_i64())
            .unwrap_or(0),
        task,
        runs,
    })
}

fn run_summary(name: &str, g: &Group) -> Result<RunSummary, hdf5_pure::Error> {
    let attrs = g.attrs()?;
    let mut trajectories = Vec::new();
    let children = g.groups()?;
    for kind in ["flow", "sgd"] {
        if !children.iter().any(|c| c == kind) {
            continue;
        }
        let tg = g.group(kind)?;
        let ta = tg.attrs()?;
        let has_data = tg.datasets()?.iter().any(|d| d == "loss");
        let (loss, acc, saves) = if has_data {
            let loss = tg.dataset("loss")?.read_f64()?;
            let acc = tg.dataset("accuracy")?.read_f64()?;
            (
                *loss.last().unwrap_or(&f64::NAN),
                *acc.last().unwrap_or(&f64::NAN),
                loss.len(),
            )
        } else {
            (f64::NAN, f64::NAN, 0)
        };
        let mut counts: Vec<(String, i64)> = ta
            .iter()
            .filter_map(|(k, v)| match v {
                AttrValue::I64(i) => Some((k.clone(), *i)),
                _ => None,
            })
            .collect();
        counts.sort();
        let [ay, ax, ps] = final_geometry(&tg)?;
        trajectories.push(TrajectorySummary {
            kind: kind.into(),
            stop_reason: text(&ta, "stop_reason"),
            t_reached: ta
                .get("t_reached")
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NAN),
            saves,
            final_loss: loss,
            final_accuracy: acc,
            counts,
            final_target_alignment: ay,
            final_input_alignment: ax,
            final_parallelism: ps,
        });
    }
    Ok(RunSummary {
        name: name.into(),
        activation: text(&attrs, "activation"),
        seed: attrs.get("seed").and_then(|v| v.as_i64()).unwrap_or(-1),
        status: text(&attrs, "status"),
        trajectories,
    })
}

/// Target alignment, input alignment and the first dichotomy's PS at
/// the last measured time of a trajectory's `geometry` group, or `NaN`s.
fn final_geometry(tg: &Group) -> Result<[f64; 3], hdf5_pure::Error> {
    if !tg.groups()?.iter().any(|c| c == "geometry") {
        return Ok([f64::NAN; 3]);
    }
    let g = tg.group("geometry")?;
    let last = |name: &str| -> Result<f64, hdf5_pure::Error> {
        Ok(*g.dataset(name)?.read_f64()?.last().unwrap_or(&f64::NAN))
    };
    let ps = g.dataset("parallelism_max")?;
    let width = ps.shape()?.get(1).copied().unwrap_or(0) as usize;
    let values = ps.read_f64()?;
    let first_of_last = match values.len().checked_sub(width) {
        Some(i) if width > 0 => values[i],
        _ => f64::NAN,
    };
    Ok([
        last("target_alignment")?,
        last("input_alignment")?,
        first_of_last,
    ])
}

fn show(v: &AttrValue) -> String {
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    if let Some(i) = v.as_i64() {
        return i.to_string();
    }
    if let Some(f) = v.as_f64() {
        return format!("{f}");
    }
    match v.to_f64s() {
        Some(vs) => format!("{vs:?}"),
        None => format!("{v:?}"),
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "status: {} (format version {})",
            self.status, self.format_version
        )?;
        let mut task = String::new();
        for (k, v) in &self.task {
            if k != "spectrum_pi" {
                let _ = write!(task, " {k}={v}");
            }
        }
        writeln!(f, "task:{task}")?;
        writeln!(
            f,
            "{:<22} {:<5} {:<20} {:>10} {:>6} {:>17} {:>9} {:>10} {:>6} {:>6} {:>6}",
            "run",
            "path",
            "stop",
            "t",
            "saves",
            "final loss",
            "accuracy",
            "work",
            "a_y",
            "a_x",
            "PS"
        )?;
        for r in &self.runs {
            if r.trajectories.is_empty() {
                writeln!(f, "{:<22} ({})", r.name, r.status)?;
            }
            for t in &r.trajectories {
                let work = t
                    .counts
                    .iter()
                    .find(|(k, _)| k == "rhs_evals" || k == "steps")
                    .map_or(String::new(), |(k, v)| format!("{v} {}", short(k)));
                writeln!(
                    f,
                    "{:<22} {:<5} {:<20} {:>10.4} {:>6} {:>17.10e} {:>9.4} {:>10} \
                     {:>6.3} {:>6.3} {:>6.3}",
                    r.name,
                    t.kind,
                    t.stop_reason,
                    t.t_reached,
                    t.saves,
                    t.final_loss,
                    t.final_accuracy,
                    work,
                    t.final_target_alignment,
                    t.final_input_alignment,
                    t.final_parallelism
                )?;
            }
        }
        Ok(())
    }
}

fn short(key: &str) -> &str {
    if key == "rhs_evals" { "evals" } else { key }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::geometry::alignment::{input_alignment, target_alignment};
    use crate::plan::Plan;
    use crate::run::{RunOptions, execute};
    use crate::scenario::{Scenario, Source};

    #[test]
    fn the_summary_shows_the_alignments_of_the_stored_hidden_responses() {
        let src = Source {
            file: "t.toml".into(),
            text: "[network]\nactivations = [\"tanh\"]\nhidden = 8\n\
                   [flow]\nt_end = 5.0\nsaves = 4\n[sgd]\nsamples = 64\n\
                   [geometry]\nevery = 2\nshattering = false\n"
                .into(),
        };
        let plan = Plan::build(Scenario::parse(&src).unwrap(), src).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.h5");
        let opts = RunOptions {
            threads: 1,
            ..RunOptions::default()
        };
        execute(&plan, &path, &opts, &AtomicBool::new(false)).unwrap();

        let summary = summarise(&path).unwrap();
        let file = File::open(&path).unwrap();
        let task = &plan.task;
        let p = task.conditions();
        for t in &summary.runs[0].trajectories {
            let hidden = file
                .dataset(&format!("runs/tanh-s0/{}/hidden", t.kind))
                .unwrap()
                .read_f64()
                .unwrap();
            let last = &hidden[hidden.len() - p * 8..];
            let ay = target_alignment(last, &task.targets, p);
            let ax = input_alignment(last, &task.inputs, p);
            assert!((t.final_target_alignment - ay).abs() < 1e-12, "{}", t.kind);
            assert!((t.final_input_alignment - ax).abs() < 1e-12, "{}", t.kind);
            assert!((-1.0..=1.0).contains(&t.final_parallelism), "{t:?}");
        }
        assert_eq!(summary.runs[0].trajectories.len(), 2);
        assert!(summary.to_string().contains("a_y"));

        // One seed: the group's averaged kernel is the run's own.
        let read = |name: &str| file.dataset(name).unwrap().read_f64().unwrap();
        let group = read("groups/tanh/flow/target_alignment");
        let own = read("runs/tanh-s0/flow/geometry/target_alignment");
        assert_eq!(group.len(), 3);
        assert!(group.iter().zip(&own).all(|(a, b)| (a - b).abs() < 1e-12));
    }
}
