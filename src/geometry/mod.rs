//! Representational geometry of the hidden layer.
//!
//! Measures computed on the `P x N` matrix of hidden responses to the
//! noise-free condition inputs (and on the task's own inputs and targets),
//! one file per family:
//! - [`kernel`]: Gram matrices and centred kernel alignment;
//! - [`alignment`]: target and input alignment and the alignment plane;
//! - [`dimension`]: participation ratio and sparsity;
//! - [`dichotomy`]: class labellings of the conditions;
//! - [`assignment`]: the Hungarian method for optimal pairings;
//! - [`classifier`]: the deterministic linear SVM;
//! - [`abstraction`]: parallelism score, CCGP, shattering dimensionality;
//! - [`specialisation`]: per-unit axes, weight-space structure and the
//!   expected-gradient field;
//! - [`series`]: all of the above along a trajectory, and the
//!   seed-averaged kernel alignment of a group of runs.

pub mod abstraction;
pub mod alignment;
pub mod assignment;
pub mod classifier;
pub mod dichotomy;
pub mod dimension;
pub mod kernel;
pub mod series;
pub mod specialisation;
