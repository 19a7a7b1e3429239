//! repflow: learning dynamics of one-hidden-layer networks.
//!
//! repflow integrates the gradient flow `d theta / dt = -grad L(theta)` of
//! a one-hidden-layer network in weight space with adaptive Runge-Kutta
//! solvers, trains an SGD baseline from the same initial weights on the
//! same time axis (`t = eta * step`), and writes both trajectories to one
//! HDF5 file.
//!
//! The modules, one concept each:
//! - [`scenario`]: the TOML scenario, strictly validated, and the resolved
//!   [`plan`] of runs built from it;
//! - [`task`]: conditions, inputs and targets;
//! - [`activation`], [`network`]: the model, its loss and gradient;
//! - [`flow`]: the gradient flow; [`sgd`]: the SGD baseline;
//! - [`geometry`]: representational measures;
//! - [`output`]: the HDF5 layout, written and read back; [`run`]: runs a
//!   plan in parallel and keeps the file valid whatever happens;
//! - [`sweep`]: `[sweep]` tables, their points, files and CSV summaries.
#![deny(missing_docs)]

pub mod activation;
pub mod cli;
pub mod fastmath;
pub mod flow;
pub mod geometry;
pub mod inspect;
pub mod network;
pub mod output;
pub mod plan;
pub mod run;
pub mod scenario;
pub mod seed;
pub mod sgd;
pub mod simd;
pub mod sweep;
pub mod task;
pub mod trajectory;
