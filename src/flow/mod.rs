//! The gradient flow `d theta / dt = -grad L(theta)`.
//!
//! [`integrator`] drives the adaptive Runge-Kutta solvers; [`smooth`]
//! integrates flows whose right-hand side is smooth (tanh, softplus,
//! linear) and, bounded by a step budget, any other; [`piecewise`]
//! integrates the ReLU family event by event, with Filippov sliding.
//! [`integrate`] picks the path for a model.

pub mod integrator;
pub mod piecewise;
pub mod smooth;

use std::sync::atomic::AtomicBool;

use crate::network::{Model, Params};
use crate::trajectory::Trajectory;
use smooth::{FlowData, FlowSettings};

/// Integrates the flow of `model` from `init` on the path its activation
/// needs.
pub fn integrate(
    model: &Model,
    init: &Params,
    data: FlowData<'_>,
    settings: &FlowSettings,
    interrupt: &AtomicBool,
) -> Trajectory {
    if model.activation.is_smooth() {
        smooth::integrate(model, init, data, settings, interrupt)
    } else {
        piecewise::integrate(model, init, data, settings, interrupt)
    }
}
