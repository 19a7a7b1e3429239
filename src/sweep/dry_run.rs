//! `repflow sweep --dry-run`: the points of a sweep and the work they ask
//! for, without running anything.
//!
//! The work estimate counts what is known before running: the runs, the
//! flow's saved states (each flow lands on every saved time; how many
//! right-hand-side evaluations it takes in between depends on the
//! dynamics and is not estimated) and the SGD steps (runs x epochs x
//! steps per epoch, exact).

use std::fmt::Write as _;

use super::{ShowValue, Study};

/// The work a study asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Networks to train, over all points.
    pub runs: u64,
    /// Flow trajectories.
    pub flows: u64,
    /// Saved states of all flows (flows x saved times).
    pub flow_saves: u64,
    /// SGD steps of all runs.
    pub sgd_steps: u64,
}

/// Counts the work of every point.
pub fn work(study: &Study) -> Work {
    let mut w = Work::default();
    for point in &study.points {
        let plan = &point.plan;
        let runs = plan.runs.len() as u64;
        w.runs += runs;
        if let Some(f) = &plan.flow {
            w.flows += runs;
            w.flow_saves += runs * f.settings.save_times.len() as u64;
        }
        if let Some(g) = &plan.sgd {
            let per_epoch = plan.samples.0.div_ceil(g.settings.batch) as u64;
            w.sgd_steps += runs * g.settings.epochs * per_epoch;
        }
    }
    w
}

/// What `repflow sweep --dry-run` prints: a table of points and the work.
pub fn describe(study: &Study) -> String {
    let mut s = String::new();
    let keys: Vec<String> = study
        .keys
        .iter()
        .map(|k| format!("{} ({} values)", k.key, k.values.len()))
        .collect();
    if study.is_sweep() {
        let _ = writeln!(
            s,
            "{}: valid, {} points over {}",
            study.source.file,
            study.points.len(),
            keys.join(" x ")
        );
    } else {
        let _ = writeln!(s, "{}: valid, no [sweep]: one point", study.source.file);
    }

    let mut header = format!("{:<7}", "point");
    for k in &study.keys {
        let _ = write!(header, " {:<22}", k.key);
    }
    let _ = writeln!(s, "{} runs", header);
    for p in &study.points {
        let mut line = format!("{:<7}", p.name);
        for v in &p.values {
            let _ = write!(line, " {:<22}", ShowValue(v).to_string());
        }
        let _ = writeln!(s, "{line} {}", p.plan.runs.len());
    }

    let w = work(study);
    let _ = writeln!(s, "work: {} runs", w.runs);
    let _ = writeln!(
        s,
        "  flow: {} trajectories, {} saved states (solver steps depend on the dynamics)",
        w.flows, w.flow_saves
    );
    let _ = writeln!(s, "  sgd: {} steps", w.sgd_steps);
    let _ = writeln!(s, "output: {}", study.output().display());
    s
}
