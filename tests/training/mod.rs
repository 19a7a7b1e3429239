//! Training one run of a plan in-process, for the test binaries that
//! look at trajectories rather than files.

use std::sync::atomic::AtomicBool;

use repflow::plan::{Plan, RunSpec};
use repflow::seed;
use repflow::sgd::{self, SgdSettings};
use repflow::trajectory::Trajectory;

/// The SGD run of `spec` under `settings`, on its own training set and
/// batch order, exactly as `repflow run` trains it.
pub fn sgd_run(plan: &Plan, spec: &RunSpec, settings: &SgdSettings) -> Trajectory {
    let (n, sigma) = plan.samples;
    let samples = spec.samples(&plan.task, n, sigma, plan.scenario.seeds.task);
    let conditions = (plan.task.inputs_view(), plan.task.targets_view());
    let mut rng = seed::stream(spec.seed, "batches");
    let stop = AtomicBool::new(false);
    sgd::train(
        &spec.model,
        &spec.init,
        &samples,
        conditions,
        settings,
        &mut rng,
        &stop,
    )
}
