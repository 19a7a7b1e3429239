//! Unit specialisation: how each hidden unit's weight vector sits relative
//! to the label structure of the inputs, in weight space.
//!
//! With targets `y_c`, readout `J` (`K x N`) and inputs `x_c` (`P`
//! conditions), the *label drive* of unit `i` on condition `c` is
//! `g_ic = sum_o J_oi (y_oc - mean_c y_o)`: the sign and size of the early
//! error signal that reaches the unit (the error `e_c` is about
//! `mean y - y_c` while the outputs are still near their mean). Per unit:
//! - the *inter-class axis* is `sum_c g_ic x_c`, normalised: the direction
//!   early training pushes `w_i` when every condition counts (a linear or
//!   Tanh unit);
//! - the *favoured class* is the set of conditions with `g_ic > 0`: those
//!   the unit's readout rewards it for responding to;
//! - the *intra-class axis* is `x_c2 - x_c1` for the two lowest-indexed
//!   conditions `c1 < c2` of the favoured class, with its component along
//!   the inter-class axis removed, normalised. For the cube family
//!   (conditions numbered by their latent bits) that is the direction of
//!   the lowest latent bit that does not define the favoured class;
//! - the *projections* of `w_i` on the two axes and the ratio
//!   `|intra| / |inter|`; Tanh units collapse onto the inter-class axis
//!   (ratio near 0), ReLU units keep intra-class components;
//! - the *activation pattern*: which conditions have `u_ci > 0`.
//!
//! Across units: the number of *distinct directions* of the rows of `W`
//! after greedy clustering at a stated angle, and *label inheritance*,
//! the share of `|W|_F^2` inside the span of the label-weighted input
//! directions `l_o = sum_c (y_oc - mean y_o) x_c`.
//!
//! The *expected-gradient field* of one unit: on a grid of weight vectors
//! `w = alpha a_inter + beta a_intra`, the early-training flow direction
//! `dw_i/dt = (1/P) sum_c g_ic f'(w . x_c + b_i) x_c` (the negative
//! gradient with the error replaced by `-(y - mean y)`), projected on the
//! two axes. It is the gradient of `(1/P) sum_c g_ic f(w . x_c + b_i)`.
//!
//! After Alleman, Lindsey and Fusi 2024 ("Task structure and nonlinearity
//! jointly determine learned representational geometry", ICLR), whose
//! weight-space argument these measures make concrete.

use nalgebra::{DMatrix, DVector};

use crate::network::Dims;

/// The two axes of one unit and how they were chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitAxes {
    /// The unit inter-class axis in input space.
    pub inter: DVector<f64>,
    /// The unit intra-class axis, orthogonal to `inter`; `None` when the
    /// favoured class has fewer than two conditions or their difference
    /// lies along `inter`.
    pub intra: Option<DVector<f64>>,
    /// The two conditions whose difference defines `intra`.
    pub intra_pair: Option<(usize, usize)>,
    /// The favoured class: conditions with `g_ic > 0`.
    pub favoured: Vec<usize>,
}

/// The weight vector of one unit in its own axes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitProjection {
    /// `w_i . a_inter`.
    pub inter: f64,
    /// `w_i . a_intra` (0 when the unit has no intra-class axis).
    pub intra: f64,
    /// `|intra| / |inter|`; infinite when `inter` is 0 and `intra` not.
    pub ratio: f64,
}

/// One point of the expected-gradient field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FieldPoint {
    /// The inter-class coordinate of the weight vector.
    pub alpha: f64,
    /// The intra-class coordinate of the weight vector.
    pub beta: f64,
    /// The flow direction's component along the inter-class axis.
    pub d_alpha: f64,
    /// The flow direction's component along the intra-class axis.
    pub d_beta: f64,
}

/// The result of greedy clustering of unit directions.
#[derive(Clone, Debug, PartialEq)]
pub struct Clustering {
    /// The number of clusters (distinct directions).
    pub count: usize,
    /// The cluster of each unit; `None` for a zero weight vector.
    pub assignment: Vec<Option<usize>>,
}

/// The inputs, targets and readout the per-unit measures are taken
/// against.
#[derive(Clone, Debug)]
pub struct LabelStructure {
    dims: Dims,
    /// `P x D` inputs, one row per condition.
    inputs: DMatrix<f64>,
    /// `N x P` label drive `g`.
    drive: DMatrix<f64>,
    /// `D x K` label-weighted input directions.
    directions: DMatrix<f64>,
}

impl LabelStructure {
    /// From row-major inputs `[P, D]`, targets `[P, K]` and readout
    /// `J` `[K, N]`, with `D`, `N`, `K` from `dims`.
    ///
    /// # Panics
    ///
    /// If the arrays do not have those shapes for a common `P > 0`.
    pub fn new(inputs: &[f64], targets: &[f64], readout: &[f64], dims: Dims) -> Self {
        let Dims {
            inputs: d,
            hidden: n,
            outputs: k,
        } = dims;
        assert!(d > 0 && inputs.len() % d == 0, "inputs are not rows of {d}");
        let p = inputs.len() / d;
        assert!(p > 0, "no conditions");
        assert_eq!(targets.len(), p * k, "targets are not [{p}, {k}]");
        assert_eq!(readout.len(), k * n, "readout is not [{k}, {n}]");

        let x = DMatrix::from_row_slice(p, d, inputs);
        let y = DMatrix::from_row_slice(p, k, targets);
        let centred = DMatrix::from_fn(p, k, |c, o| y[(c, o)] - y.column(o).mean());
        let j = DMatrix::from_row_slice(k, n, readout);
        let drive = j.transpose() * centred.transpose();
        let directions = x.transpose() * &centred;
        LabelStructure {
            dims,
            inputs: x,
            drive,
            directions,
        }
    }

    /// The number of conditions `P`.
    pub fn conditions(&self) -> usize {
        self.inputs.nrows()
    }

    /// The label drive `g` as an `N x P` matrix.
    pub fn drive(&self) -> &DMatrix<f64> {
        &self.drive
    }

    /// The label-weighted input directions `l_o` as the columns of a
    /// `D x K` matrix.
    pub fn label_directions(&self) -> &DMatrix<f64> {
        &self.directions
    }

    /// The axes of unit `i`; `None` when its label drive is zero (the
    /// readout ignores it or the targets are constant).
    ///
    /// # Panics
    ///
    /// If `i` is not a hidden unit.
    pub fn axes(&self, i: usize) -> Option<UnitAxes> {
        assert!(i < self.dims.hidden, "no hidden unit {i}");
        let p = self.conditions();
        let g = DVector::from_iterator(p, self.drive.row(i).iter().copied());
        let raw = self.inputs.tr_mul(&g);
        let norm = raw.norm();
        if norm == 0.0 {
            return None;
        }
        let inter = raw / norm;

        let favoured: Vec<usize> = (0..p).filter(|&c| g[c] > 0.0).collect();
        let (intra, intra_pair) = match favoured[..] {
            [c1, c2, ..] => {
                let diff = (self.inputs.row(c2) - self.inputs.row(c1)).transpose();
                let ortho = &diff - &inter * inter.dot(&diff);
                let size = ortho.norm();
                if size > 1e-10 * diff.norm() {
                    (Some(ortho / size), Some((c1, c2)))
                } else {
                    (None, None)
                }
            }
            _ => (None, None),
        };
        Some(UnitAxes {
            inter,
            intra,
            intra_pair,
            favoured,
        })
    }

    /// The projections of every row of the row-major `[N, D]` weights `w`
    /// on that unit's axes; `None` for units without axes.
    ///
    /// # Panics
    ///
    /// If `w` is not `[N, D]`.
    pub fn projections(&self, w: &[f64]) -> Vec<Option<UnitProjection>> {
        let (n, d) = (self.dims.hidden, self.dims.inputs);
        assert_eq!(w.len(), n * d, "weights are not [{n}, {d}]");
        (0..n)
            .map(|i| {
                let axes = self.axes(i)?;
                let wi = DVector::from_column_slice(&w[i * d..(i + 1) * d]);
                let inter = wi.dot(&axes.inter);
                let intra = axes.intra.as_ref().map_or(0.0, |a| wi.dot(a));
                Some(UnitProjection {
                    inter,
                    intra,
                    ratio: intra.abs() / inter.abs(),
                })
            })
            .collect()
    }

    /// For every unit, which conditions have `u_ci = w_i . x_c + b_i > 0`,
    /// from row-major `[N, D]` weights and `[N]` biases.
    ///
    /// # Panics
    ///
    /// If `w` is not `[N, D]` or `b` not `[N]`.
    pub fn activation_patterns(&self, w: &[f64], b: &[f64]) -> Vec<Vec<bool>> {
        let (n, d) = (self.dims.hidden, self.dims.inputs);
        assert_eq!(w.len(), n * d, "weights are not [{n}, {d}]");
        assert_eq!(b.len(), n, "biases are not [{n}]");
        let wm = DMatrix::from_row_slice(n, d, w);
        let u = &wm * self.inputs.transpose();
        (0..n)
            .map(|i| {
                (0..self.conditions())
                    .map(|c| u[(i, c)] + b[i] > 0.0)
                    .collect()
            })
            .collect()
    }

    /// The share of `|W|_F^2` inside the span of the label-weighted input
    /// directions, from row-major `[N, D]` weights; `NaN` for `W = 0`.
    /// The span's basis keeps the left singular vectors of the directions
    /// whose singular value exceeds `1e-10` of the largest.
    ///
    /// # Panics
    ///
    /// If `w` is not `[N, D]`.
    pub fn label_inheritance(&self, w: &[f64]) -> f64 {
        let (n, d) = (self.dims.hidden, self.dims.inputs);
        assert_eq!(w.len(), n * d, "weights are not [{n}, {d}]");
        let wm = DMatrix::from_row_slice(n, d, w);
        let total = wm.norm_squared();
        if total == 0.0 {
            return f64::NAN;
        }
        if self.directions.ncols() == 0 {
            return 0.0;
        }

        let svd = self.directions.clone().svd(true, false);
        let u = svd.u.expect("left singular vectors were asked for");
        let top = svd.singular_values.max();
        let keep: Vec<usize> = (0..svd.singular_values.len())
            .filter(|&r| top > 0.0 && svd.singular_values[r] > 1e-10 * top)
            .collect();
        let inside: f64 = keep
            .iter()
            .map(|&r| (&wm * u.column(r)).norm_squared())
            .sum();
        inside / total
    }

    /// The expected-gradient field of unit `i` with bias `bias` on the
    /// grid `alphas x betas` (alpha-major order), for the activation
    /// derivative `slope` (for example `|u| act.slope(u)` with an
    /// [`crate::activation::Activation`]); `None` when the unit has no
    /// intra-class axis.
    ///
    /// # Panics
    ///
    /// If `i` is not a hidden unit.
    pub fn expected_gradient(
        &self,
        i: usize,
        bias: f64,
        slope: impl Fn(f64) -> f64,
        alphas: &[f64],
        betas: &[f64],
    ) -> Option<Vec<FieldPoint>> {
        let axes = self.axes(i)?;
        let intra = axes.intra?;
        let p = self.conditions();
        let g = self.drive.row(i);

        // Each condition's coordinates in the plane and its projections.
        let on_inter = &self.inputs * &axes.inter;
        let on_intra = &self.inputs * &intra;
        let mut field = Vec::with_capacity(alphas.len() * betas.len());
        for &alpha in alphas {
            for &beta in betas {
                let (mut da, mut db) = (0.0, 0.0);
                for c in 0..p {
                    let u = alpha * on_inter[c] + beta * on_intra[c] + bias;
                    let push = g[c] * slope(u) / p as f64;
                    da += push * on_inter[c];
                    db += push * on_intra[c];
                }
                field.push(FieldPoint {
                    alpha,
                    beta,
                    d_alpha: da,
                    d_beta: db,
                });
            }
        }
        Some(field)
    }
}

/// Greedy clustering of the rows of the row-major `[N, D]` weights by
/// direction: each unit in turn joins the first cluster whose first member
/// lies within `max_angle` radians of it, or starts a new one. Directions
/// are signed (`w` and `-w` differ). Zero rows join no cluster.
///
/// # Panics
///
/// If `w` is not rows of `d`.
pub fn distinct_directions(w: &[f64], d: usize, max_angle: f64) -> Clustering {
    assert!(d > 0 && w.len() % d == 0, "weights are not rows of {d}");
    let cos_min = max_angle.cos();
    let mut leaders: Vec<Vec<f64>> = Vec::new();
    let assignment = w
        .chunks_exact(d)
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm == 0.0 {
                return None;
            }
            let unit: Vec<f64> = row.iter().map(|v| v / norm).collect();
            let near = leaders.iter().position(|l| {
                let cos: f64 = l.iter().zip(&unit).map(|(a, b)| a * b).sum();
                cos >= cos_min
            });
            Some(near.unwrap_or_else(|| {
                leaders.push(unit);
                leaders.len() - 1
            }))
        })
        .collect();
    Clustering {
        count: leaders.len(),
        assignment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::task::Task;
    use crate::task::cube::Spectrum;
    use crate::task::cube::{CubeSpec, cube};

    fn task() -> Task {
        cube(CubeSpec {
            d: 3,
            k: 1,
            alignment: 0.3,
            dim: 10,
            seed: 8,
            spectrum: Spectrum::Deterministic,
        })
    }

    /// Three units reading out `+1`, `-1` and `0`.
    fn structure(t: &Task) -> LabelStructure {
        let dims = Dims {
            inputs: t.dim,
            hidden: 3,
            outputs: 1,
        };
        LabelStructure::new(&t.inputs, &t.targets, &[1.0, -1.0, 0.0], dims)
    }

    fn input(t: &Task, c: usize) -> DVector<f64> {
        DVector::from_column_slice(&t.inputs[c * t.dim..(c + 1) * t.dim])
    }

    #[test]
    fn the_axes_follow_the_readout_sign() {
        let t = task();
        let s = structure(&t);

        // Unit 0 favours the target class (bit 0 set), unit 1 the other.
        let a0 = s.axes(0).unwrap();
        let a1 = s.axes(1).unwrap();
        assert_eq!(a0.favoured, vec![1, 3, 5, 7]);
        assert_eq!(a1.favoured, vec![0, 2, 4, 6]);
        assert_eq!(a0.intra_pair, Some((1, 3)));
        assert_eq!(a1.intra_pair, Some((0, 2)));
        assert!((&a0.inter + &a1.inter).norm() < 1e-12);
        assert!(s.axes(2).is_none());

        // The inter-class axis is the mean difference of the classes.
        let mut diff = DVector::zeros(t.dim);
        for c in 0..8 {
            let sign = if c & 1 == 1 { 1.0 } else { -1.0 };
            diff += input(&t, c) * sign;
        }
        assert!((diff.normalize() - &a0.inter).norm() < 1e-12);

        // The intra-class axis is unit, orthogonal to it, along x_3 - x_1.
        let intra = a0.intra.unwrap();
        assert!((intra.norm() - 1.0).abs() < 1e-12);
        assert!(intra.dot(&a0.inter).abs() < 1e-12);
        let raw = (input(&t, 3) - input(&t, 1)).normalize();
        assert!(intra.dot(&raw) > 0.0);
    }

    #[test]
    fn a_unit_built_on_its_axes_projects_onto_them() {
        let t = task();
        let s = structure(&t);
        let mut w = vec![0.0; 3 * t.dim];
        for (i, (a, b)) in [(2.0, 0.5), (-1.0, 3.0), (1.0, 1.0)].iter().enumerate() {
            if let Some(axes) = s.axes(i) {
                let v = &axes.inter * *a + axes.intra.unwrap() * *b;
                w[i * t.dim..(i + 1) * t.dim].copy_from_slice(v.as_slice());
            }
        }
        let pr = s.projections(&w);
        let p0 = pr[0].unwrap();
        assert!((p0.inter - 2.0).abs() < 1e-12 && (p0.intra - 0.5).abs() < 1e-12);
        assert!((p0.ratio - 0.25).abs() < 1e-12);
        let p1 = pr[1].unwrap();
        assert!((p1.inter + 1.0).abs() < 1e-12 && (p1.intra - 3.0).abs() < 1e-12);
        assert!((p1.ratio - 3.0).abs() < 1e-12);
        assert!(pr[2].is_none());
    }

    #[test]
    fn activation_patterns_mark_positive_pre_activations() {
        let t = task();
        let s = structure(&t);
        let axes = s.axes(0).unwrap();
        let mut w = vec![0.0; 3 * t.dim];
        w[..t.dim].copy_from_slice(axes.inter.as_slice());
        let pats = s.activation_patterns(&w, &[0.0, -1.0, 1.0]);
        // Along the inter-class axis, exactly the favoured class is on.
        let expect: Vec<bool> = (0..8).map(|c| c & 1 == 1).collect();
        assert_eq!(pats[0], expect);
        assert_eq!(pats[1], vec![false; 8]);
        assert_eq!(pats[2], vec![true; 8]);
    }

    #[test]
    fn label_inheritance_is_the_share_inside_the_label_span() {
        let t = task();
        let s = structure(&t);
        let l = s.label_directions().column(0).normalize();
        // An orthogonal direction: the intra-class axis of unit 0.
        let o = s.axes(0).unwrap().intra.unwrap();
        assert!(l.dot(&o).abs() < 1e-12);

        let rows = |vs: &[DVector<f64>]| -> Vec<f64> {
            vs.iter()
                .flat_map(|v| v.iter().copied().collect::<Vec<_>>())
                .collect()
        };
        let inside = rows(&[l.clone() * 2.0, l.clone() * -1.0, l.clone()]);
        assert!((s.label_inheritance(&inside) - 1.0).abs() < 1e-12);
        let outside = rows(&[o.clone(), o.clone() * 3.0, o.clone()]);
        assert!(s.label_inheritance(&outside).abs() < 1e-12);
        // |l|^2 = 1 + 1, |o|^2 = 4 + 4: a fifth inside.
        let mixed = rows(&[&l + &o * 2.0, l.clone(), o.clone() * 2.0]);
        assert!((s.label_inheritance(&mixed) - 2.0 / 10.0).abs() < 1e-12);
        assert!(s.label_inheritance(&vec![0.0; 3 * t.dim]).is_nan());
    }

    #[test]
    fn a_linear_unit_is_pushed_along_its_inter_class_axis_everywhere() {
        let t = task();
        let s = structure(&t);
        let g = s.drive().row(0);
        let push: DVector<f64> =
            (0..8).map(|c| input(&t, c) * g[c]).sum::<DVector<f64>>();
        let size = push.norm() / 8.0;

        let grid = [-2.0, 0.0, 1.5];
        let field = s
            .expected_gradient(0, 0.3, |u| Activation::Linear.slope(u), &grid, &grid)
            .unwrap();
        assert_eq!(field.len(), 9);
        for pt in &field {
            assert!((pt.d_alpha - size).abs() < 1e-12 && pt.d_beta.abs() < 1e-12);
        }
    }

    #[test]
    fn the_field_is_the_gradient_of_the_label_weighted_response() {
        let t = task();
        let s = structure(&t);
        let axes = s.axes(0).unwrap();
        let intra = axes.intra.clone().unwrap();
        let g = s.drive().row(0).into_owned();
        let bias = -0.2;
        for act in [Activation::Tanh, Activation::Softplus] {
            let potential = |a: f64, b: f64| -> f64 {
                let w = &axes.inter * a + &intra * b;
                (0..8)
                    .map(|c| g[c] * act.value(w.dot(&input(&t, c)) + bias))
                    .sum::<f64>()
                    / 8.0
            };
            let grid = [-0.4, 0.1, 0.35];
            let field = s
                .expected_gradient(0, bias, |u| act.slope(u), &grid, &grid)
                .unwrap();
            let h = 1e-6;
            for pt in field {
                let (a, b) = (pt.alpha, pt.beta);
                let fa = (potential(a + h, b) - potential(a - h, b)) / (2.0 * h);
                let fb = (potential(a, b + h) - potential(a, b - h)) / (2.0 * h);
                assert!((fa - pt.d_alpha).abs() < 1e-7, "{act} {a} {b}");
                assert!((fb - pt.d_beta).abs() < 1e-7, "{act} {a} {b}");
            }
        }
    }

    #[test]
    fn a_relu_unit_that_is_off_everywhere_feels_no_push() {
        let t = task();
        let s = structure(&t);
        let field = s
            .expected_gradient(0, -1e3, |u| Activation::Relu.slope(u), &[1.0], &[1.0])
            .unwrap();
        assert_eq!((field[0].d_alpha, field[0].d_beta), (0.0, 0.0));
    }

    #[test]
    fn clustering_counts_distinct_directions() {
        let w = [
            1.0, 0.0, //
            0.99, 0.05, // 3 degrees from the first
            -1.0, 0.0, // opposite: its own direction
            0.0, 0.0, // dead
            0.0, 2.0, // orthogonal
            0.05, 1.0,
        ];
        let cl = distinct_directions(&w, 2, 10f64.to_radians());
        assert_eq!(cl.count, 3);
        assert_eq!(
            cl.assignment,
            vec![Some(0), Some(0), Some(1), None, Some(2), Some(2)]
        );
        assert_eq!(distinct_directions(&w, 2, 1e-3).count, 5);
    }
}
