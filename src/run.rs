//! Running a plan: every network in parallel, the file always valid.
//!
//! The runs of a plan (activations x seeds) are independent. They run on
//! a rayon pool of the requested size; each run integrates its flow, then
//! trains its SGD baseline, from the same initial weights. Every run draws
//! its randomness from its own seeded streams, so the datasets written are
//! bit-identical whatever the number of threads.
//!
//! The output file is written before the first run starts (all runs
//! pending), rewritten at checkpoints as runs finish, and written a last
//! time at the end, each time to a temporary name renamed into place. A
//! run that panics is recorded as failed and the others go on; an
//! interruption stops every run at its next step and the file records how
//! far each got.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::flow;
use crate::flow::smooth::FlowData;
use crate::geometry::series::{GeometrySeries, measure};
use crate::output::{OutputError, RunResult};
use crate::plan::{Plan, RunSpec};
use crate::seed;
use crate::sgd;
use crate::trajectory::{Outcome, StopReason, Trajectory};

/// How to run a plan.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Overwrite an existing output file.
    pub force: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Least time between two checkpoint writes.
    pub checkpoint_every: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threads: 0,
            force: false,
            progress: false,
            checkpoint_every: Duration::from_secs(5),
        }
    }
}

/// How a whole plan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanStatus {
    /// Every flow and SGD run reached its end.
    Complete,
    /// Some run stopped early (budget, underflow, divergence, failure).
    Incomplete,
    /// The user interrupted it.
    Interrupted,
}

impl PlanStatus {
    /// The file's root `status` attribute.
    pub fn name(&self) -> &'static str {
        match self {
            PlanStatus::Complete => "complete",
            PlanStatus::Incomplete => "incomplete",
            PlanStatus::Interrupted => "interrupted",
        }
    }
}

/// Errors that stop a plan from running at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The output exists and `--force` was not given.
    #[error("{0} exists; pass --force to overwrite it, or -o to write elsewhere")]
    Exists(PathBuf),
    /// The thread pool could not be built.
    #[error("cannot start {threads} worker threads: {message}")]
    Threads {
        /// How many were asked for.
        threads: usize,
        /// Why not.
        message: String,
    },
    /// Writing the file failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Runs every network of `plan` and writes `out` (and its CSV summary):
/// the one-point case of [`crate::sweep::run::execute`].
pub fn execute(
    plan: &Plan,
    out: &Path,
    opts: &RunOptions,
    interrupt: &AtomicBool,
) -> Result<PlanStatus, RunError> {
    let study = crate::sweep::Study::plain(plan.clone());
    let everything = crate::sweep::run::empty_results(&study);
    crate::sweep::run::execute(&study, out, opts, interrupt, everything)
}

/// Interrupted, complete when every trajectory completed, else incomplete.
pub(crate) fn plan_status(all: &[Option<RunResult>], interrupted: bool) -> PlanStatus {
    if interrupted {
        return PlanStatus::Interrupted;
    }
    let complete = |t: &Option<Trajectory>| {
        t.as_ref().is_none_or(|t| {
            t.outcome
                .as_ref()
                .is_some_and(|o| o.reason == StopReason::Completed)
        })
    };
    let all_done = all.iter().all(|r| {
        r.as_ref()
            .is_some_and(|r| complete(&r.flow) && complete(&r.sgd))
    });
    if all_done {
        PlanStatus::Complete
    } else {
        PlanStatus::Incomplete
    }
}

pub(crate) fn progress_bar(visible: bool, len: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} trajectories, eta {eta} {msg}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// The flow and the SGD baseline of one network.
pub(crate) fn run_one(
    plan: &Plan,
    spec: &RunSpec,
    interrupt: &AtomicBool,
    bar: &ProgressBar,
) -> RunResult {
    let task = &plan.task;
    let (n_samples, sigma) = plan.samples;
    let needs_samples =
        plan.sgd.is_some() || plan.flow.as_ref().is_some_and(|f| f.on_samples);
    let samples = needs_samples
        .then(|| spec.samples(task, n_samples, sigma, plan.scenario.seeds.task));
    let conditions = (task.inputs_view(), task.targets_view());
    let mut result = RunResult::default();

    if let Some(fp) = &plan.flow {
        let training = match (&samples, fp.on_samples) {
            (Some(s), true) => (s.inputs_view(), s.targets_view()),
            _ => conditions,
        };
        let data = FlowData {
            training,
            conditions,
        };
        let (model, init, settings) = (&spec.model, &spec.init, &fp.settings);
        let tr = guarded("flow", || {
            flow::integrate(model, init, data, settings, interrupt)
        });
        report(&spec.name, "flow", &tr);
        result.flow_geometry = measure_geometry(plan, spec, &tr);
        result.flow = Some(thinned(plan, tr));
        bar.inc(1);
    }
    if let (Some(sp), Some(samples)) = (&plan.sgd, &samples) {
        let mut rng = seed::stream(spec.seed, "batches");
        let tr = guarded("sgd", || {
            sgd::train(
                &spec.model,
                &spec.init,
                samples,
                conditions,
                &sp.settings,
                &mut rng,
                interrupt,
            )
        });
        report(&spec.name, "sgd", &tr);
        result.sgd_geometry = measure_geometry(plan, spec, &tr);
        result.sgd = Some(thinned(plan, tr));
        bar.inc(1);
    }
    result
}

/// `tr` with only the weights its file will hold, when the plan writes
/// the ends only: the rest would wait in memory for the whole study.
fn thinned(plan: &Plan, mut tr: Trajectory) -> Trajectory {
    if plan.scenario.output.ends_only && tr.len() > 2 {
        tr.keep_weights_at(&crate::output::ends_of(tr.len()));
    }
    tr
}

/// The plan's geometry of one trajectory; `None` when the plan has no
/// `[geometry]` or the measures panicked (logged).
fn measure_geometry(
    plan: &Plan,
    spec: &RunSpec,
    tr: &Trajectory,
) -> Option<GeometrySeries> {
    let settings = plan.geometry.as_ref()?;
    let measured = catch_unwind(AssertUnwindSafe(|| {
        measure(&plan.task, &spec.model, tr, settings)
    }));
    match measured {
        Ok(series) => Some(series),
        Err(_) => {
            log::warn!("{}: the geometry measures failed", spec.name);
            None
        }
    }
}

/// Runs `f`, turning a panic into a failed, empty trajectory.
fn guarded(what: &str, f: impl FnOnce() -> Trajectory) -> Trajectory {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Trajectory {
            outcome: Some(Outcome {
                reason: StopReason::Failed(format!("{what} panicked: {msg}")),
                t_reached: 0.0,
                counts: vec![],
                seconds: 0.0,
            }),
            ..Trajectory::default()
        }
    })
}

fn report(name: &str, what: &str, tr: &Trajectory) {
    let Some(o) = &tr.outcome else { return };
    let loss = tr.loss.last().copied().unwrap_or(f64::NAN);
    if o.reason == StopReason::Completed {
        log::info!(
            "{name} {what}: completed t = {} loss {loss:.4e} in {:.2} s",
            o.t_reached,
            o.seconds
        );
    } else {
        log::warn!(
            "{name} {what}: {} at t = {} (loss {loss:.4e})",
            o.reason,
            o.t_reached
        );
    }
}
