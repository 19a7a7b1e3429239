//! The CSV summary written next to the HDF5 file: one row per run.
//!
//! Columns, in order:
//!
//! - `point`: the point's group (`p0000` for a plain scenario);
//! - one column per swept key, named by the key, with the point's value
//!   as written in TOML;
//! - `run` (the run's group, `<activation>-s<seed>`), `activation`,
//!   `seed`, `status` (`finished` or `pending`);
//! - for `flow` and for `sgd`, prefixed `flow_` and `sgd_`:
//!   `stop_reason`, `t_reached`, `final_loss` and `final_accuracy` (on the
//!   noise-free conditions, at the last saved time), `seconds`;
//! - the work: `flow_rhs_evals`, `flow_accepted_steps`,
//!   `flow_rejected_steps`, `flow_events` (kink events; 0 for smooth
//!   flows) and `sgd_steps`, `sgd_epochs`.
//!
//! A field is empty when it does not apply (SGD disabled, a pending run).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::output::Results;
use super::{ShowValue, Study};
use crate::output::{OutputError, partial_path};
use crate::trajectory::Trajectory;

const FLOW_COUNTS: [&str; 4] =
    ["rhs_evals", "accepted_steps", "rejected_steps", "events"];
const SGD_COUNTS: [&str; 2] = ["steps", "epochs"];

/// The CSV beside an HDF5 file: `study.h5` gives `study.csv`.
pub fn path_for(h5: &Path) -> PathBuf {
    h5.with_extension("csv")
}

/// The whole summary as CSV text.
pub fn summary(study: &Study, results: &Results) -> String {
    let mut header: Vec<String> = vec!["point".into()];
    header.extend(study.keys.iter().map(|k| k.key.clone()));
    header.extend(["run", "activation", "seed", "status"].map(String::from));
    for (kind, counts) in [("flow", &FLOW_COUNTS[..]), ("sgd", &SGD_COUNTS[..])] {
        let fields = ["stop_reason", "t_reached", "final_loss", "final_accuracy"];
        header.extend(fields.iter().map(|f| format!("{kind}_{f}")));
        header.push(format!("{kind}_seconds"));
        header.extend(counts.iter().map(|c| format!("{kind}_{c}")));
    }
    let mut out = row(&header);

    for (point, runs) in study.points.iter().zip(results) {
        for (spec, result) in point.plan.runs.iter().zip(runs) {
            let mut fields = vec![point.name.clone()];
            fields.extend(point.values.iter().map(|v| ShowValue(v).to_string()));
            fields.push(spec.name.clone());
            fields.push(spec.activation().name().to_string());
            fields.push(spec.seed.to_string());
            let status = if result.is_some() {
                "finished"
            } else {
                "pending"
            };
            fields.push(status.into());
            let flow = result.as_ref().and_then(|r| r.flow.as_ref());
            let sgd = result.as_ref().and_then(|r| r.sgd.as_ref());
            fields.extend(trajectory_fields(flow, &FLOW_COUNTS));
            fields.extend(trajectory_fields(sgd, &SGD_COUNTS));
            out += &row(&fields);
        }
    }
    out
}

/// Writes the summary to `path` (through `<path>.partial`).
pub fn write(path: &Path, study: &Study, results: &Results) -> Result<(), OutputError> {
    let partial = partial_path(path);
    let io = |source| OutputError::Rename {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&partial, summary(study, results)).map_err(io)?;
    std::fs::rename(&partial, path).map_err(io)
}

fn trajectory_fields(tr: Option<&Trajectory>, counts: &[&str]) -> Vec<String> {
    let n = 5 + counts.len();
    let Some(tr) = tr else {
        return vec![String::new(); n];
    };
    let Some(o) = &tr.outcome else {
        return vec![String::new(); n];
    };
    let last = |v: &[f64]| v.last().map_or(String::new(), |x| format!("{x:e}"));
    let mut f = vec![
        o.reason.name().to_string(),
        format!("{}", o.t_reached),
        last(&tr.loss),
        last(&tr.accuracy),
        format!("{:.3}", o.seconds),
    ];
    for name in counts {
        let value = o.counts.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        f.push(match (value, *name) {
            (Some(v), _) => v.to_string(),
            (None, "events") => "0".into(),
            (None, _) => String::new(),
        });
    }
    f
}

/// One CSV line; fields holding a comma, a quote or a newline are quoted.
fn row(fields: &[String]) -> String {
    let mut line = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if f.contains([',', '"', '\n']) {
            let _ = write!(line, "\"{}\"", f.replace('"', "\"\""));
        } else {
            line.push_str(f);
        }
    }
    line.push('\n');
    line
}
