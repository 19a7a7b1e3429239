//! Running a study: every run of every point in one pool.
//!
//! The runs of all points (points x activations x seeds) go to one rayon
//! pool with one progress bar. The file is written before the first run
//! (every run pending), at checkpoints as runs finish, and at the end,
//! always atomically, as [`crate::run::execute`] does for one plan. Runs
//! whose results are already known (kept from an earlier file by
//! `--resume`) are not run again.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::output::{self, Results};
use super::{Study, csv};
use crate::output::{OutputError, RunResult, Storage};
use crate::run::{self, PlanStatus, RunError, RunOptions};

/// Runs every run of `study` missing from `kept` and writes `out`.
///
/// `kept` holds, per point and run, a result to keep (`--resume`), or
/// `None` for a run to compute; pass [`empty_results`] to run everything.
/// With results kept, `out` is overwritten whatever `opts.force` says.
pub fn execute(
    study: &Study,
    out: &Path,
    opts: &RunOptions,
    interrupt: &AtomicBool,
    kept: Results,
) -> Result<PlanStatus, RunError> {
    let resuming = kept.iter().flatten().any(|r| r.is_some());
    if out.exists() && !opts.force && !resuming {
        return Err(RunError::Exists(out.to_path_buf()));
    }
    let first = &study.points[0].plan.scenario.output;
    let storage = Storage {
        ends_only: first.ends_only,
        no_hidden: first.no_hidden,
    };
    let jobs: Vec<(usize, usize)> = kept
        .iter()
        .enumerate()
        .flat_map(|(p, runs)| {
            runs.iter()
                .enumerate()
                .filter(|(_, r)| r.is_none())
                .map(move |(r, _)| (p, r))
        })
        .collect();
    let results = Mutex::new(kept);
    output::write(out, study, &results.lock().unwrap(), "running", storage)?;

    let plan0 = &study.points[0].plan;
    let parts = u64::from(plan0.flow.is_some()) + u64::from(plan0.sgd.is_some());
    let bar = run::progress_bar(opts.progress, jobs.len() as u64 * parts);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| RunError::Threads {
            threads: opts.threads,
            message: e.to_string(),
        })?;

    let finished: Mutex<Vec<(usize, usize, RunResult)>> = Mutex::new(Vec::new());
    let next_write = Mutex::new(after(opts.checkpoint_every));
    let write_error: Mutex<Option<OutputError>> = Mutex::new(None);
    pool.install(|| {
        // One run per task: rayon otherwise hands each thread a block of
        // consecutive runs that it works through alone, and the study
        // files put their slowest runs (small alignments) together, so
        // that one thread was left with a block of them long after the
        // other ran dry (a third of a flow-only study's wall time).
        jobs.par_iter().with_max_len(1).for_each(|&(p, r)| {
            let plan = &study.points[p].plan;
            let result = run::run_one(plan, &plan.runs[r], interrupt, &bar);
            finished.lock().unwrap().push((p, r, result));
            if Instant::now() < *next_write.lock().unwrap() {
                return;
            }
            // One thread writes a checkpoint while the others run on:
            // they hand in their results through `finished` and never
            // wait for the write.
            let Ok(mut all) = results.try_lock() else {
                return;
            };
            for (p, r, result) in finished.lock().unwrap().drain(..) {
                all[p][r] = Some(result);
            }
            let clock = Instant::now();
            if let Err(e) = output::write(out, study, &all, "running", storage) {
                *write_error.lock().unwrap() = Some(e);
            }
            let took = clock.elapsed();
            log::debug!("checkpoint written in {:.2} s", took.as_secs_f64());
            *next_write.lock().unwrap() = after(checkpoint_gap(opts, took));
        });
    });
    bar.finish_and_clear();

    let mut all = results.into_inner().unwrap();
    for (p, r, result) in finished.into_inner().unwrap() {
        all[p][r] = Some(result);
    }
    let status = study_status(&all, interrupt.load(Ordering::Relaxed));
    output::write(out, study, &all, status.name(), storage)?;
    csv::write(&csv::path_for(out), study, &all)?;
    if let Some(e) = write_error.into_inner().unwrap() {
        log::warn!("a checkpoint write failed, the final write succeeded: {e}");
    }
    Ok(status)
}

/// How long to run before the next checkpoint after one that took
/// `took`: at least `opts.checkpoint_every`, and twenty times the write,
/// so that rewriting a file that has grown to gigabytes (a study of 240
/// networks at 100 saved times) costs the writing thread at most about a
/// twentieth of its time.
fn checkpoint_gap(opts: &RunOptions, took: Duration) -> Duration {
    opts.checkpoint_every.max(took * 20)
}

/// `gap` from now, or as far ahead as an instant goes.
fn after(gap: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(gap)
        .unwrap_or_else(|| now + Duration::from_secs(u64::from(u32::MAX)))
}

/// Interrupted, or incomplete when any point is, or complete.
fn study_status(all: &Results, interrupted: bool) -> PlanStatus {
    let statuses: Vec<PlanStatus> = all
        .iter()
        .map(|runs| run::plan_status(runs, interrupted))
        .collect();
    if interrupted {
        PlanStatus::Interrupted
    } else if statuses.contains(&PlanStatus::Incomplete) {
        PlanStatus::Incomplete
    } else {
        PlanStatus::Complete
    }
}

/// No result for any run of any point: run everything.
pub fn empty_results(study: &Study) -> Results {
    study
        .points
        .iter()
        .map(|p| vec![None; p.plan.runs.len()])
        .collect()
}
