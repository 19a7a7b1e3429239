//! Representational geometry of the hidden layer.
//!
//! Measures computed on the `P x N` matrix of hidden responses to the
//! noise-free condition inputs (and on the task's own inputs and targets),
//! one file per family:
//! - [`kernel`]: Gram matrices and centred kernel alignment;
//! - [`assignment`]: the Hungarian method for optimal pairings;
//! - [`classifier`]: the deterministic linear SVM.

pub mod assignment;
pub mod classifier;
pub mod kernel;
