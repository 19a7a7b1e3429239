//! The gradient flow `d theta / dt = -grad L(theta)`.
//!
//! [`integrator`] drives the adaptive Runge-Kutta solvers; [`smooth`]
//! integrates flows whose right-hand side is smooth (tanh, softplus,
//! linear) and, bounded by a step budget, any other; [`piecewise`]
//! integrates the ReLU family event by event, with Filippov sliding.
//! [`integrate`] picks the path for a model.

pub mod conditions;
pub mod dopri5;
pub mod integrator;
pub mod piecewise;
pub mod reduced;
pub mod smooth;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::network::{Model, Params};
use crate::trajectory::Trajectory;
use integrator::Solver;
use smooth::{FlowData, FlowSettings};

/// Integrates the flow of `model` from `init` on the path its activation
/// needs, in reduced coordinates when the settings ask for them and they
/// are exact. The outcome's `seconds` cover the whole of it: finding the
/// span, the flow, and rebuilding the full weights at every saved time.
pub fn integrate(
    model: &Model,
    init: &Params,
    data: FlowData<'_>,
    settings: &FlowSettings,
    interrupt: &AtomicBool,
) -> Trajectory {
    let clock = Instant::now();
    let (x, xc) = (data.training.0, data.conditions.0);
    let on_conditions = std::ptr::eq(x.as_ptr(), xc.as_ptr()) && x.ncols() == xc.ncols();
    if settings.reduced && on_conditions {
        if let Some(red) = reduced::Reduction::new(model, init, x) {
            let xr = red.inputs_view();
            let data = FlowData {
                training: (xr, data.training.1),
                conditions: (xr, data.conditions.1),
            };
            let full_len = model.state_len();
            let mut tr =
                direct(&red.model, &red.init, data, settings, interrupt, full_len);
            tr.reduced_rank = red.rank();
            let mut tr = red.expand(tr);
            if let Some(o) = tr.outcome.as_mut() {
                o.seconds = clock.elapsed().as_secs_f64();
            }
            return tr;
        }
    }
    direct(model, init, data, settings, interrupt, 0)
}

/// The flow on the path its activation needs, for a state that stands
/// for one of `full_len` components (0: itself; see
/// [`smooth::integrate_standing_for`]). A smooth flow measures its error
/// over those, as the full-space flow does; the piecewise-linear paths
/// measure it on the state they integrate.
fn direct(
    model: &Model,
    init: &Params,
    data: FlowData<'_>,
    settings: &FlowSettings,
    interrupt: &AtomicBool,
    full_len: usize,
) -> Trajectory {
    if model.activation.is_smooth() || settings.plain_kinks {
        return smooth::integrate_standing_for(
            model, init, data, settings, interrupt, full_len,
        );
    }
    let (x, xc) = (data.training.0, data.conditions.0);
    let on_conditions = std::ptr::eq(x.as_ptr(), xc.as_ptr()) && x.ncols() == xc.ncols();
    let dense = settings.solver == Solver::Dopri5;
    if settings.preactivations && on_conditions && dense {
        if let Some(tr) =
            piecewise::integrate_preactivations(model, init, data, settings, interrupt)
        {
            return tr;
        }
    }
    piecewise::integrate(model, init, data, settings, interrupt)
}
