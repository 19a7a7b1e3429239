//! Representational geometry of the hidden layer.
//!
//! Measures computed on the `P x N` matrix of hidden responses to the
//! noise-free condition inputs (and on the task's own inputs and targets).

pub mod kernel;
