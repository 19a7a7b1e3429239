//! The HDF5 layout of a sweep: one group per point, and an index.
//!
//! ```text
//! /                       format, format_version, repflow_version, created,
//!                         status, scenario (the file's text, with [sweep]),
//!                         scenario_source, sweep_keys, points_total,
//!                         points_finished, runs_total, runs_finished
//! /points/<p0000>/        scenario (the point's resolved scenario), status,
//!                         runs_total, runs_finished, one attribute per
//!                         swept key with the point's value
//!     task/, runs/        exactly as at the root of a plain file
//! /sweep/table/point      [points] the point names
//! /sweep/table/<key>      [points] the swept key's value at each point:
//!                         f64 for numbers, strings (as written in TOML)
//!                         otherwise
//! ```
//!
//! A plain scenario keeps the plain layout ([`crate::output::write`]).

use std::path::Path;

use hdf5_pure::{AttrValue, FileBuilder, GroupBuilder};
use toml::Value;

use super::{ShowValue, Study, SweepKey};
use crate::output::{self, OutputError, RunResult, Storage};

/// The results of every run of every point: `results[point][run]`.
pub type Results = Vec<Vec<Option<RunResult>>>;

/// Writes the study's file with the results so far, atomically; a plain
/// scenario gets the plain layout.
pub fn write(
    path: &Path,
    study: &Study,
    results: &Results,
    status: &str,
    storage: Storage,
) -> Result<(), OutputError> {
    if !study.is_sweep() {
        return output::write(path, &study.points[0].plan, &results[0], status, storage);
    }

    let mut fb = FileBuilder::new();
    output::file_attrs(&mut fb, status);
    root_attrs(&mut fb, study, results);

    let mut points = fb.create_group("points");
    for (point, res) in study.points.iter().zip(results) {
        let mut g = points.create_group(&point.name);
        point_attrs(&mut g, study, point, res);
        let (task, runs) = (g.create_group("task"), g.create_group("runs"));
        let (task, runs) = output::plan_groups(task, runs, &point.plan, res, storage);
        g.add_group(task);
        g.add_group(runs);
        let groups = g.create_group("groups");
        if let Some(groups) = output::add_groups(groups, &point.plan, res) {
            g.add_group(groups);
        }
        points.add_group(g.finish());
    }
    fb.add_group(points.finish());

    let mut sweep = fb.create_group("sweep");
    let table = table_group(sweep.create_group("table"), study);
    sweep.add_group(table);
    fb.add_group(sweep.finish());
    output::commit(fb, path)
}

fn root_attrs(fb: &mut FileBuilder, study: &Study, results: &Results) {
    let runs_finished = results.iter().flatten().filter(|r| r.is_some()).count();
    let points_finished = results
        .iter()
        .filter(|r| r.iter().all(|r| r.is_some()))
        .count();
    let keys: Vec<&str> = study.keys.iter().map(|k| k.key.as_str()).collect();
    fb.set_attr("scenario", AttrValue::String(study.source.text.clone()));
    fb.set_attr(
        "scenario_source",
        AttrValue::String(study.source.file.clone()),
    );
    fb.set_attr("sweep_keys", AttrValue::String(keys.join(", ")));
    fb.set_attr("points_total", AttrValue::I64(study.points.len() as i64));
    fb.set_attr("points_finished", AttrValue::I64(points_finished as i64));
    fb.set_attr("runs_total", AttrValue::I64(study.runs() as i64));
    fb.set_attr("runs_finished", AttrValue::I64(runs_finished as i64));
}

fn point_attrs(
    g: &mut GroupBuilder,
    study: &Study,
    point: &super::Point,
    results: &[Option<RunResult>],
) {
    let finished = results.iter().filter(|r| r.is_some()).count();
    let status = if finished == results.len() {
        "finished"
    } else {
        "pending"
    };
    g.set_attr("scenario", AttrValue::String(point.plan.scenario.to_toml()));
    g.set_attr("status", AttrValue::String(status.into()));
    g.set_attr("runs_total", AttrValue::I64(results.len() as i64));
    g.set_attr("runs_finished", AttrValue::I64(finished as i64));
    for (key, value) in study.keys.iter().zip(&point.values) {
        let attr = match number(value) {
            Some(x) => AttrValue::F64(x),
            None => AttrValue::String(ShowValue(value).to_string()),
        };
        g.set_attr(&key.key, attr);
    }
}

fn table_group(mut g: GroupBuilder, study: &Study) -> hdf5_pure::FinishedGroup {
    let names: Vec<&str> = study.points.iter().map(|p| p.name.as_str()).collect();
    g.create_dataset("point").with_vlen_strings(&names);
    for (i, key) in study.keys.iter().enumerate() {
        let column: Vec<&Value> = study.points.iter().map(|p| &p.values[i]).collect();
        match numeric_column(key, &column) {
            Some(xs) => {
                g.create_dataset(&key.key).with_f64_data(&xs);
            }
            None => {
                let texts: Vec<String> =
                    column.iter().map(|v| ShowValue(v).to_string()).collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                g.create_dataset(&key.key).with_vlen_strings(&refs);
            }
        }
    }
    g.finish()
}

/// A number (integer or float) as f64.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Float(x) => Some(*x),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

fn numeric_column(key: &SweepKey, column: &[&Value]) -> Option<Vec<f64>> {
    if key.values.iter().all(|v| number(v).is_some()) {
        Some(column.iter().filter_map(|v| number(v)).collect())
    } else {
        None
    }
}
