//! Reading a repflow file back: a summary of its task and runs.
//!
//! [`summarise`] reads what `repflow inspect` prints: the file's status,
//! the task's attributes, and per run and per trajectory (flow, SGD) the
//! stop reason, the time reached, the work done and the final loss and
//! accuracy on the noise-free conditions.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::Path;

use hdf5_pure::{AttrValue, File, Group};

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

fn text(attrs: &HashMap<String, AttrValue>, key: &str) -> String {
    attrs
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
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
            "{:<22} {:<5} {:<20} {:>10} {:>6} {:>17} {:>9} {:>10}",
            "run", "path", "stop", "t", "saves", "final loss", "accuracy", "work"
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
                    "{:<22} {:<5} {:<20} {:>10.4} {:>6} {:>17.10e} {:>9.4} {:>10}",
                    r.name,
                    t.kind,
                    t.stop_reason,
                    t.t_reached,
                    t.saves,
                    t.final_loss,
                    t.final_accuracy,
                    work
                )?;
            }
        }
        Ok(())
    }
}

fn short(key: &str) -> &str {
    if key == "rhs_evals" { "evals" } else { key }
}
