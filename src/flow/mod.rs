//! The gradient flow `d theta / dt = -grad L(theta)`.
//!
//! [`integrator`] drives the adaptive Runge-Kutta solvers; [`smooth`]
//! integrates flows whose right-hand side is smooth (tanh, softplus,
//! linear) and, bounded by a step budget, any other; [`piecewise`]
//! integrates the ReLU family event by event, with Filippov sliding.

pub mod integrator;
pub mod piecewise;
pub mod smooth;
