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
//!   flows) and `sgd_steps`, `sgd_epochs`;
//! - the geometry at the last measured time, prefixed `flow_` and `sgd_`:
//!   `target_alignment`, `input_alignment`, `participation_ratio`,
//!   `parallelism` (maximising pairing) and `ccgp_pair` of the task's
//!   first dichotomy (its first target bit), `shattering`,
//!   `label_inheritance`, and `median_intra_inter` (the median over units
//!   of the intra/inter projection ratio); empty when not measured.
//!
//! A field is empty when it does not apply (SGD disabled, a pending run).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::output::Results;
use super::{ShowValue, Study};
use crate::geometry::series::GeometrySeries;
use crate::output::{OutputError, partial_path};
use crate::trajectory::Trajectory;

const GEOMETRY: [&str; 8] = [
    "target_alignment",
    "input_alignment",
    "participation_ratio",
    "parallelism",
    "ccgp_pair",
    "shattering",
    "label_inheritance",
    "median_intra_inter",
];

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
        header.extend(GEOMETRY.iter().map(|g| format!("{kind}_{g}")));
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
            let flow_geometry = result.as_ref().and_then(|r| r.flow_geometry.as_ref());
            let sgd_geometry = result.as_ref().and_then(|r| r.sgd_geometry.as_ref());
            fields.extend(trajectory_fields(flow, &FLOW_COUNTS));
            fields.extend(geometry_fields(flow_geometry));
            fields.extend(trajectory_fields(sgd, &SGD_COUNTS));
            fields.extend(geometry_fields(sgd_geometry));
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

/// The [`GEOMETRY`] columns at the last measured time.
fn geometry_fields(g: Option<&GeometrySeries>) -> Vec<String> {
    let Some(g) = g.filter(|g| !g.t.is_empty()) else {
        return vec![String::new(); GEOMETRY.len()];
    };
    let rows = g.t.len();
    let show = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:e}"));
    let last = |v: &[f64]| show(v.last().copied());
    // Per-dichotomy arrays are [T', n]: the last row's first entry.
    let first_of_last_row = |v: &[f64]| {
        let per = v.len() / rows;
        show((per > 0).then(|| v[(rows - 1) * per]))
    };
    let median_ratio = {
        let per = g.intra_inter_ratio.len() / rows;
        let mut r: Vec<f64> = g.intra_inter_ratio[(rows - 1) * per..]
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        r.sort_by(f64::total_cmp);
        show((!r.is_empty()).then(|| r[r.len() / 2]))
    };
    vec![
        last(&g.target_alignment),
        last(&g.input_alignment),
        last(&g.participation_ratio),
        first_of_last_row(&g.parallelism_max),
        first_of_last_row(&g.ccgp_pair),
        last(&g.shattering),
        last(&g.label_inheritance),
        median_ratio,
    ]
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
