//! The study's measures along a trajectory, and across the seeds of a
//! group.
//!
//! [`measure`] takes one flow or SGD [`Trajectory`] and computes, at every
//! `every`-th saved time (the last one always included), the measures of
//! the sibling modules on the noise-free hidden responses `Z` `[P, N]`:
//! target and input alignment and the alignment plane; participation
//! ratio and sparsity; for each of the task's own dichotomies (targets,
//! then latent bits) the parallelism score under both pairings, CCGP
//! (pair and half splits) and, once per time, shattering
//! dimensionality; per unit the projections on its inter- and
//! intra-class axes, its activation pattern, and across units the
//! number of distinct directions and the label inheritance. Optionally
//! it adds the expected-gradient field of every unit at the initial
//! weights on a grid of the `(inter, intra)` plane.
//!
//! *Matched pairs for CCGP.* When the task has latent bits and a
//! dichotomy is one of them, a condition is paired with the condition
//! whose latents differ only in that bit (the pairs the task's structure
//! defines). Otherwise the pairs are the minimum-total-distance pairing
//! of the task's *inputs*, fixed for the whole trajectory so that CCGP at
//! different times is measured on the same splits. The attribute
//! `ccgp_pairs` of the written group says which, per dichotomy.
//!
//! *Axes.* The per-unit axes come from [`LabelStructure`] with the run's
//! readout `J`: the frozen initial `J` when the readout does not learn,
//! the saved `J` of each time when it does.
//!
//! [`group_alignment`] averages the hidden kernels `Z Z^T` of several
//! runs of one group (same task and activation, different seeds) at each
//! saved time and measures the averaged kernel's alignment with `K_x` and
//! `K_y`.

use hdf5_pure::{AttrValue, Group, GroupBuilder};

use super::abstraction::{
    CcgpDraw, CcgpSplit, NoiseProtocol, min_distance_pairs, parallelism_max,
    parallelism_min_distance, shattering_dimensionality,
};
use super::alignment::{PlanePoint, input_alignment, target_alignment};
use super::dichotomy::{canonical, classes, is_balanced, task_dichotomies};
use super::dimension::{participation_ratio, sparsity};
use super::kernel::{cka, gram};
use super::specialisation::{LabelStructure, distinct_directions};
use crate::network::Model;
use crate::output::Optional;
use crate::task::Task;
use crate::trajectory::Trajectory;

/// Which measures [`measure`] computes, how often and with what noise.
#[derive(Clone, Debug, PartialEq)]
pub struct GeometrySettings {
    /// Measure every `every`-th saved time (1: all); the last saved time
    /// is always measured.
    pub every: usize,
    /// Parallelism scores and CCGP of the task's dichotomies.
    pub abstraction: bool,
    /// Shattering dimensionality.
    pub shattering: bool,
    /// Per-unit projections, activation patterns, distinct directions
    /// and label inheritance.
    pub specialisation: bool,
    /// The expected-gradient field at the initial weights.
    pub field: bool,
    /// Standard deviation of the noise added to hidden responses for
    /// CCGP and SD.
    pub noise: f64,
    /// Noisy samples per condition, for training and again for testing.
    pub samples: usize,
    /// At most this many CCGP splits per dichotomy and variant.
    pub max_splits: usize,
    /// Random balanced dichotomies for SD when `P > 8`.
    pub max_dichotomies: usize,
    /// Units within this angle (radians) count as one direction.
    pub cluster_angle: f64,
    /// Points per side of the field's grid.
    pub field_grid: usize,
    /// Seed of the CCGP and SD noise and of the PS local search.
    pub seed: u64,
}

impl Default for GeometrySettings {
    fn default() -> Self {
        GeometrySettings {
            every: 1,
            abstraction: true,
            shattering: true,
            specialisation: true,
            field: false,
            noise: 0.5,
            samples: 10,
            max_splits: 20,
            max_dichotomies: 35,
            cluster_angle: 10f64.to_radians(),
            field_grid: 21,
            seed: 0,
        }
    }
}

/// The expected-gradient field of every unit at the initial weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The inter-class coordinates of the grid.
    pub alphas: Vec<f64>,
    /// The intra-class coordinates of the grid.
    pub betas: Vec<f64>,
    /// `[N, G, G]` flow component along the inter-class axis (alpha
    /// major); `NaN` for units without an intra-class axis.
    pub d_alpha: Vec<f64>,
    /// `[N, G, G]` flow component along the intra-class axis.
    pub d_beta: Vec<f64>,
}

/// The measures of one trajectory at its measured times.
#[derive(Clone, Debug, PartialEq)]
pub struct GeometrySeries {
    /// The settings used.
    pub settings: GeometrySettings,
    /// Conditions `P` and hidden units `N`.
    pub shape: (usize, usize),
    /// The index of each measured time among the saved times.
    pub rows: Vec<usize>,
    /// `[T']` the measured times.
    pub t: Vec<f64>,
    /// `[T']` `A(K_z, K_y)`.
    pub target_alignment: Vec<f64>,
    /// `[T']` `A(K_z, K_x)`.
    pub input_alignment: Vec<f64>,
    /// `[T', 2]` alignment-plane coordinates `(u_1, u_2)`; `NaN` when the
    /// task's alignment is 1.
    pub plane: Vec<f64>,
    /// `[T']` radius in the alignment plane.
    pub plane_radius: Vec<f64>,
    /// `[T']` angle from the input kernel towards the target kernel.
    pub plane_angle: Vec<f64>,
    /// `[T']` participation ratio.
    pub participation_ratio: Vec<f64>,
    /// `[T']` fraction of positive hidden responses.
    pub sparsity: Vec<f64>,
    /// The task's dichotomies, canonical.
    pub dichotomies: Vec<Vec<bool>>,
    /// What each dichotomy is (`target 0`, `latent 1`, ...).
    pub dichotomy_names: Vec<String>,
    /// The matched pairs CCGP uses per dichotomy and where they came
    /// from (`latent` or `input_min_distance`); empty when unbalanced.
    pub ccgp_pairs: Vec<(Vec<(usize, usize)>, &'static str)>,
    /// `[T', n_dich]` PS maximised over pairings (`NaN`: unbalanced or
    /// not computed).
    pub parallelism_max: Vec<f64>,
    /// `[T', n_dich]` PS of the minimum-distance pairing.
    pub parallelism_min_distance: Vec<f64>,
    /// `[T', n_dich]` CCGP trained on one matched pair.
    pub ccgp_pair: Vec<f64>,
    /// `[T', n_dich]` CCGP trained on half the matched pairs.
    pub ccgp_half: Vec<f64>,
    /// `[T']` shattering dimensionality (`NaN` when not computed).
    pub shattering: Vec<f64>,
    /// `[T', N]` `w_i . a_inter` (`NaN` for units without axes).
    pub projection_inter: Vec<f64>,
    /// `[T', N]` `w_i . a_intra`.
    pub projection_intra: Vec<f64>,
    /// `[T', N]` `|intra| / |inter|`.
    pub intra_inter_ratio: Vec<f64>,
    /// `[T', N, P]` 1 where `u_ci > 0`.
    pub activation_patterns: Vec<i64>,
    /// `[T']` distinct directions of the rows of `W` (-1: not computed).
    pub distinct_directions: Vec<i64>,
    /// `[T']` share of `|W|_F^2` in the label-weighted input span.
    pub label_inheritance: Vec<f64>,
    /// The expected-gradient field, when asked for.
    pub field: Option<Field>,
}

/// The saved-time indices measured: every `every`-th and the last.
pub fn measured_rows(len: usize, every: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let mut rows: Vec<usize> = (0..len).step_by(every.max(1)).collect();
    if *rows.last().unwrap() != len - 1 {
        rows.push(len - 1);
    }
    rows
}

/// The study's measures of `tr`, a trajectory of `model` on `task`, at
/// the saved times `settings` selects. An empty trajectory gives an
/// empty series.
///
/// # Panics
///
/// If the trajectory's arrays do not fit the model and the task, its
/// weights were thinned ([`Trajectory::keep_weights_at`]), or a sample
/// count in `settings` is zero.
pub fn measure(
    task: &Task,
    model: &Model,
    tr: &Trajectory,
    settings: &GeometrySettings,
) -> GeometrySeries {
    assert!(
        tr.weight_rows.is_empty(),
        "the geometry needs the weights at every saved time, not thinned ones"
    );
    let p = task.conditions();
    let n = model.dims.hidden;
    let rows = measured_rows(tr.len(), settings.every);
    let mut s = GeometrySeries {
        t: rows.iter().map(|&r| tr.t[r]).collect(),
        rows: rows.clone(),
        ..skeleton(task, model, settings)
    };

    for &r in &rows {
        let z = &tr.hidden[r * p * n..(r + 1) * p * n];
        push_representation(&mut s, task, z);
        push_abstraction(&mut s, z, r);
        if settings.specialisation {
            push_specialisation(&mut s, task, model, tr, r);
        }
    }

    if settings.field && !rows.is_empty() {
        s.field = Some(field_at_start(&s, task, model, tr));
    }
    s
}

/// A series of `model` on `task` with no measured time: what the task
/// and the settings fix (shape, dichotomies and their CCGP pairs).
fn skeleton(task: &Task, model: &Model, settings: &GeometrySettings) -> GeometrySeries {
    let dichotomies = task_dichotomies(task);
    GeometrySeries {
        settings: settings.clone(),
        shape: (task.conditions(), model.dims.hidden),
        dichotomy_names: dichotomy_names(task, &dichotomies),
        ccgp_pairs: dichotomies.iter().map(|l| ccgp_pairs(task, l)).collect(),
        dichotomies,
        ..empty()
    }
}

fn empty() -> GeometrySeries {
    GeometrySeries {
        settings: GeometrySettings::default(),
        shape: (0, 0),
        rows: vec![],
        t: vec![],
        target_alignment: vec![],
        input_alignment: vec![],
        plane: vec![],
        plane_radius: vec![],
        plane_angle: vec![],
        participation_ratio: vec![],
        sparsity: vec![],
        dichotomies: vec![],
        dichotomy_names: vec![],
        ccgp_pairs: vec![],
        parallelism_max: vec![],
        parallelism_min_distance: vec![],
        ccgp_pair: vec![],
        ccgp_half: vec![],
        shattering: vec![],
        projection_inter: vec![],
        projection_intra: vec![],
        intra_inter_ratio: vec![],
        activation_patterns: vec![],
        distinct_directions: vec![],
        label_inheritance: vec![],
        field: None,
    }
}

/// `target k` / `latent j` names of the task's dichotomies; a dichotomy
/// that is both gets both, joined by ` = `.
fn dichotomy_names(task: &Task, dichotomies: &[Vec<bool>]) -> Vec<String> {
    let p = task.conditions();
    let k = task.outputs;
    let mut sources: Vec<(String, Vec<bool>)> = (0..k)
        .map(|o| {
            let l: Vec<bool> = (0..p).map(|c| task.targets[c * k + o] > 0.5).collect();
            (format!("target {o}"), canonical(&l))
        })
        .collect();
    if let Some((d, bits)) = &task.latents {
        for j in 0..*d {
            let l: Vec<bool> = (0..p).map(|c| bits[c * d + j] != 0).collect();
            sources.push((format!("latent {j}"), canonical(&l)));
        }
    }
    dichotomies
        .iter()
        .map(|dich| {
            let names: Vec<&str> = sources
                .iter()
                .filter(|(_, l)| l == dich)
                .map(|(name, _)| name.as_str())
                .collect();
            names.join(" = ")
        })
        .collect()
}

/// The matched pairs CCGP uses for a dichotomy (see the module doc).
fn ccgp_pairs(task: &Task, labels: &[bool]) -> (Vec<(usize, usize)>, &'static str) {
    let p = labels.len();
    if !is_balanced(labels) || p < 4 {
        return (Vec::new(), "none");
    }
    if let Some(pairs) = latent_pairs(task, labels) {
        return (pairs, "latent");
    }
    (
        min_distance_pairs(&task.inputs, p, labels),
        "input_min_distance",
    )
}

/// Pairs `(negative, positive)` differing only in the latent bit that
/// equals the dichotomy, if one does.
fn latent_pairs(task: &Task, labels: &[bool]) -> Option<Vec<(usize, usize)>> {
    let (d, bits) = task.latents.as_ref()?;
    let p = labels.len();
    let row = |c: usize| &bits[c * d..(c + 1) * d];
    let j = (0..*d).find(|&j| {
        let l: Vec<bool> = (0..p).map(|c| row(c)[j] != 0).collect();
        canonical(&l) == labels
    })?;
    let (neg, pos) = classes(labels);
    neg.iter()
        .map(|&a| {
            let b = pos
                .iter()
                .copied()
                .find(|&b| (0..*d).all(|i| (i == j) != (row(a)[i] == row(b)[i])))?;
            Some((a, b))
        })
        .collect()
}

fn push_representation(s: &mut GeometrySeries, task: &Task, z: &[f64]) {
    let p = task.conditions();
    let ay = target_alignment(z, &task.targets, p);
    let ax = input_alignment(z, &task.inputs, p);
    s.target_alignment.push(ay);
    s.input_alignment.push(ax);
    match PlanePoint::new(ax, ay, task.measured_alignment().clamp(0.0, 1.0)) {
        Some(pt) => {
            s.plane.extend([pt.u1, pt.u2]);
            s.plane_radius.push(pt.radius());
            s.plane_angle.push(pt.angle());
        }
        None => {
            s.plane.extend([f64::NAN; 2]);
            s.plane_radius.push(f64::NAN);
            s.plane_angle.push(f64::NAN);
        }
    }
    s.participation_ratio.push(participation_ratio(z, p));
    s.sparsity.push(sparsity(z));
}

/// PS, CCGP per dichotomy and SD at saved time `row`; the noise seed
/// depends on the row so that times do not share noise draws.
fn push_abstraction(s: &mut GeometrySeries, z: &[f64], row: usize) {
    let (p, _) = s.shape;
    let st = &s.settings;
    let noise = NoiseProtocol {
        sigma: st.noise,
        train_per_condition: st.samples,
        test_per_condition: st.samples,
        seed: st.seed ^ (row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    };

    // One draw of trials and splits per kind of split, shared by every
    // dichotomy with as many pairs (all of them, when the dichotomies are
    // balanced); drawn again only for a dichotomy with another count.
    let mut draws: Vec<(CcgpSplit, CcgpDraw)> = Vec::new();
    for (labels, (pairs, _)) in s.dichotomies.iter().zip(&s.ccgp_pairs) {
        if !st.abstraction || pairs.is_empty() {
            s.parallelism_max.push(f64::NAN);
            s.parallelism_min_distance.push(f64::NAN);
            s.ccgp_pair.push(f64::NAN);
            s.ccgp_half.push(f64::NAN);
            continue;
        }
        let ps = parallelism_max(z, p, labels, st.seed);
        s.parallelism_max.push(ps.score);
        let ps_min = parallelism_min_distance(z, p, labels);
        s.parallelism_min_distance.push(ps_min.score);
        for (split, out) in [
            (CcgpSplit::Pair, &mut s.ccgp_pair),
            (CcgpSplit::Half, &mut s.ccgp_half),
        ] {
            let m = pairs.len();
            let at = match draws
                .iter()
                .position(|(k, d)| *k == split && d.pairs() == m)
            {
                Some(at) => at,
                None => {
                    let draw = CcgpDraw::new(z, p, m, split, &noise, st.max_splits);
                    draws.push((split, draw));
                    draws.len() - 1
                }
            };
            out.push(draws[at].1.generalisation(pairs).accuracy);
        }
    }

    let sd = if st.shattering && p % 2 == 0 && p >= 2 {
        shattering_dimensionality(z, p, &noise, st.max_dichotomies).mean
    } else {
        f64::NAN
    };
    s.shattering.push(sd);
}

/// The readout `J` `[K, N]` in force at saved time `row`.
fn readout_at<'a>(model: &'a Model, tr: &'a Trajectory, row: usize) -> &'a [f64] {
    match &model.frozen_readout {
        Some((j, _)) => j,
        None => {
            let kn = model.dims.outputs * model.dims.hidden;
            &tr.j[row * kn..(row + 1) * kn]
        }
    }
}

fn push_specialisation(
    s: &mut GeometrySeries,
    task: &Task,
    model: &Model,
    tr: &Trajectory,
    row: usize,
) {
    let (d, n) = (model.dims.inputs, model.dims.hidden);
    let labels = LabelStructure::new(
        &task.inputs,
        &task.targets,
        readout_at(model, tr, row),
        model.dims,
    );
    let w = &tr.w[row * n * d..(row + 1) * n * d];
    let b = &tr.b[row * n..(row + 1) * n];

    for proj in labels.projections(w) {
        let (inter, intra, ratio) = proj.map_or((f64::NAN, f64::NAN, f64::NAN), |q| {
            (q.inter, q.intra, q.ratio)
        });
        s.projection_inter.push(inter);
        s.projection_intra.push(intra);
        s.intra_inter_ratio.push(ratio);
    }
    for pattern in labels.activation_patterns(w, b) {
        s.activation_patterns
            .extend(pattern.iter().map(|&on| i64::from(on)));
    }
    let clusters = distinct_directions(w, d, s.settings.cluster_angle);
    s.distinct_directions.push(clusters.count as i64);
    s.label_inheritance.push(labels.label_inheritance(w));
}

/// The field of every unit at the first saved weights, on a square grid
/// reaching 1.2 times the largest projection any unit reaches along the
/// series (or 1 when none is finite and non-zero).
fn field_at_start(
    s: &GeometrySeries,
    task: &Task,
    model: &Model,
    tr: &Trajectory,
) -> Field {
    let n = model.dims.hidden;
    let g = s.settings.field_grid.max(2);
    let reach = s
        .projection_inter
        .iter()
        .chain(&s.projection_intra)
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let half = if reach > 0.0 { 1.2 * reach } else { 1.0 };
    let grid: Vec<f64> = (0..g)
        .map(|i| -half + 2.0 * half * i as f64 / (g - 1) as f64)
        .collect();

    let labels = LabelStructure::new(
        &task.inputs,
        &task.targets,
        readout_at(model, tr, 0),
        model.dims,
    );
    let act = model.activation;
    let mut field = Field {
        alphas: grid.clone(),
        betas: grid.clone(),
        d_alpha: Vec::with_capacity(n * g * g),
        d_beta: Vec::with_capacity(n * g * g),
    };
    for i in 0..n {
        match labels.expected_gradient(i, tr.b[i], |u| act.slope(u), &grid, &grid) {
            Some(points) => {
                field.d_alpha.extend(points.iter().map(|q| q.d_alpha));
                field.d_beta.extend(points.iter().map(|q| q.d_beta));
            }
            None => {
                field.d_alpha.extend(std::iter::repeat_n(f64::NAN, g * g));
                field.d_beta.extend(std::iter::repeat_n(f64::NAN, g * g));
            }
        }
    }
    field
}

/// The alignment of the seed-averaged hidden kernel of a group of runs.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupAlignment {
    /// `[T']` the measured times (those every run reached).
    pub t: Vec<f64>,
    /// `[T']` `A(mean_s K_z^s, K_y)`.
    pub target_alignment: Vec<f64>,
    /// `[T']` `A(mean_s K_z^s, K_x)`.
    pub input_alignment: Vec<f64>,
    /// How many runs were averaged.
    pub runs: usize,
}

/// CKA of the seed-averaged hidden kernel `mean_s Z_s Z_s^T` with `K_x`
/// and `K_y` at every `every`-th saved time that all `runs` reached
/// (they share their saved times; the shortest run sets the length).
/// Runs without saved times are left out.
pub fn group_alignment(
    task: &Task,
    runs: &[&Trajectory],
    every: usize,
) -> GroupAlignment {
    let p = task.conditions();
    let runs: Vec<&Trajectory> = runs.iter().copied().filter(|r| !r.is_empty()).collect();
    let len = runs.iter().map(|r| r.len()).min().unwrap_or(0);
    let rows = measured_rows(len, every);
    let (kx, ky) = (gram(&task.inputs, p), gram(&task.targets, p));

    let mut out = GroupAlignment {
        t: rows.iter().map(|&r| runs[0].t[r]).collect(),
        target_alignment: Vec::with_capacity(rows.len()),
        input_alignment: Vec::with_capacity(rows.len()),
        runs: runs.len(),
    };
    for &r in &rows {
        let mut mean = nalgebra::DMatrix::<f64>::zeros(p, p);
        for tr in &runs {
            let per = tr.hidden.len() / tr.len();
            mean += gram(&tr.hidden[r * per..(r + 1) * per], p);
        }
        mean /= runs.len() as f64;
        out.target_alignment.push(cka(&mean, &ky));
        out.input_alignment.push(cka(&mean, &kx));
    }
    out
}

/// Writes `series` as the `geometry` subgroup of `parent` (layout in
/// `docs/geometry.md`). Nothing is written for an empty series.
pub fn write_group(parent: &mut GroupBuilder, series: &GeometrySeries) {
    if series.t.is_empty() {
        return;
    }
    let (p, n) = (series.shape.0 as u64, series.shape.1 as u64);
    let t = series.t.len() as u64;
    let nd = series.dichotomies.len() as u64;
    let mut g = parent.create_group("geometry");

    let rows: Vec<i64> = series.rows.iter().map(|&r| r as i64).collect();
    g.create_dataset("t").with_f64_data(&series.t);
    g.create_dataset("rows").with_i64_data(&rows);
    for (name, v) in [
        ("target_alignment", &series.target_alignment),
        ("input_alignment", &series.input_alignment),
        ("plane_radius", &series.plane_radius),
        ("plane_angle", &series.plane_angle),
        ("participation_ratio", &series.participation_ratio),
        ("sparsity", &series.sparsity),
        ("shattering", &series.shattering),
    ] {
        g.create_dataset(name).with_f64_data(v);
    }
    g.create_dataset("plane")
        .with_f64_data(&series.plane)
        .with_shape(&[t, 2]);
    write_dichotomies(&mut g, series, t, nd);
    if !series.distinct_directions.is_empty() {
        write_specialisation(&mut g, series, [t, n, p]);
    }
    if let Some(f) = &series.field {
        write_field(&mut g, f, n);
    }
    write_attrs(&mut g, series);
    parent.add_group(g.finish());
}

fn write_dichotomies(g: &mut GroupBuilder, s: &GeometrySeries, t: u64, nd: u64) {
    let p = s.shape.0 as u64;
    let labels: Vec<i64> = s
        .dichotomies
        .iter()
        .flat_map(|l| l.iter().map(|&v| i64::from(v)))
        .collect();
    g.create_dataset("dichotomies")
        .with_i64_data(&labels)
        .with_shape(&[nd, p]);
    for (name, v) in [
        ("parallelism_max", &s.parallelism_max),
        ("parallelism_min_distance", &s.parallelism_min_distance),
        ("ccgp_pair", &s.ccgp_pair),
        ("ccgp_half", &s.ccgp_half),
    ] {
        g.create_dataset(name).with_f64_data(v).with_shape(&[t, nd]);
    }
}

fn write_specialisation(g: &mut GroupBuilder, s: &GeometrySeries, shape: [u64; 3]) {
    let [t, n, p] = shape;
    for (name, v) in [
        ("projection_inter", &s.projection_inter),
        ("projection_intra", &s.projection_intra),
        ("intra_inter_ratio", &s.intra_inter_ratio),
    ] {
        g.create_dataset(name).with_f64_data(v).with_shape(&[t, n]);
    }
    g.create_dataset("activation_patterns")
        .with_i64_data(&s.activation_patterns)
        .with_shape(&[t, n, p]);
    g.create_dataset("distinct_directions")
        .with_i64_data(&s.distinct_directions);
    g.create_dataset("label_inheritance")
        .with_f64_data(&s.label_inheritance);
}

fn write_field(g: &mut GroupBuilder, f: &Field, n: u64) {
    let side = f.alphas.len() as u64;
    let mut fg = g.create_group("field");
    fg.create_dataset("alpha").with_f64_data(&f.alphas);
    fg.create_dataset("beta").with_f64_data(&f.betas);
    fg.create_dataset("d_alpha")
        .with_f64_data(&f.d_alpha)
        .with_shape(&[n, side, side]);
    fg.create_dataset("d_beta")
        .with_f64_data(&f.d_beta)
        .with_shape(&[n, side, side]);
    g.add_group(fg.finish());
}

fn write_attrs(g: &mut GroupBuilder, s: &GeometrySeries) {
    let st = &s.settings;
    let text = |v: String| AttrValue::String(v);
    g.set_attr("dichotomy_names", text(s.dichotomy_names.join("; ")));
    let sources: Vec<&str> = s.ccgp_pairs.iter().map(|(_, src)| *src).collect();
    g.set_attr("ccgp_pairs", text(sources.join("; ")));
    g.set_attr(
        "parallelism_reported",
        text("parallelism_max (maximised over pairings)".into()),
    );
    g.set_attr(
        "classifier",
        text(
            "linear SVM, squared hinge, C = 1, bias regularised; CCGP: dual coordinate \
             descent to a projected-gradient spread of 1e-2; SD: finite Newton, exact"
                .into(),
        ),
    );
    g.set_attr("noise_sigma", AttrValue::F64(st.noise));
    g.set_attr("samples_per_condition", AttrValue::I64(st.samples as i64));
    g.set_attr("max_splits", AttrValue::I64(st.max_splits as i64));
    g.set_attr("max_dichotomies", AttrValue::I64(st.max_dichotomies as i64));
    g.set_attr("cluster_angle", AttrValue::F64(st.cluster_angle));
    g.set_attr("every", AttrValue::I64(st.every as i64));
    g.set_attr("seed", AttrValue::I64(st.seed as i64));
}

/// The series [`write_group`] wrote as the `geometry` subgroup of
/// `parent`, measured on `task` with `model` and `settings`: the same
/// value, bit for bit, as the one written. A parent without the subgroup
/// gives the empty series (what an empty trajectory measures).
pub fn read_group(
    parent: &Group,
    task: &Task,
    model: &Model,
    settings: &GeometrySettings,
) -> Result<GeometrySeries, hdf5_pure::Error> {
    let mut s = skeleton(task, model, settings);
    if !parent.groups()?.iter().any(|g| g == "geometry") {
        return Ok(s);
    }
    let g = parent.group("geometry")?;
    let data = Optional::new(&g)?;
    let (f64s, i64s) = (|n| data.f64s(n), |n| data.i64s(n));
    s.t = f64s("t")?;
    s.rows = i64s("rows")?.into_iter().map(|r| r as usize).collect();
    s.target_alignment = f64s("target_alignment")?;
    s.input_alignment = f64s("input_alignment")?;
    s.plane = f64s("plane")?;
    s.plane_radius = f64s("plane_radius")?;
    s.plane_angle = f64s("plane_angle")?;
    s.participation_ratio = f64s("participation_ratio")?;
    s.sparsity = f64s("sparsity")?;
    s.shattering = f64s("shattering")?;
    s.parallelism_max = f64s("parallelism_max")?;
    s.parallelism_min_distance = f64s("parallelism_min_distance")?;
    s.ccgp_pair = f64s("ccgp_pair")?;
    s.ccgp_half = f64s("ccgp_half")?;
    s.projection_inter = f64s("projection_inter")?;
    s.projection_intra = f64s("projection_intra")?;
    s.intra_inter_ratio = f64s("intra_inter_ratio")?;
    s.activation_patterns = i64s("activation_patterns")?;
    s.distinct_directions = i64s("distinct_directions")?;
    s.label_inheritance = f64s("label_inheritance")?;
    if g.groups()?.iter().any(|n| n == "field") {
        let f = g.group("field")?;
        s.field = Some(Field {
            alphas: f.dataset("alpha")?.read_f64()?,
            betas: f.dataset("beta")?.read_f64()?,
            d_alpha: f.dataset("d_alpha")?.read_f64()?,
            d_beta: f.dataset("d_beta")?.read_f64()?,
        });
    }
    Ok(s)
}

/// Writes a group's seed-averaged alignment as datasets of `parent`.
pub fn write_group_alignment(parent: &mut GroupBuilder, a: &GroupAlignment) {
    if a.t.is_empty() {
        return;
    }
    parent.create_dataset("t").with_f64_data(&a.t);
    parent
        .create_dataset("target_alignment")
        .with_f64_data(&a.target_alignment);
    parent
        .create_dataset("input_alignment")
        .with_f64_data(&a.input_alignment);
    parent.set_attr("runs", AttrValue::I64(a.runs as i64));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::network::{Dims, Loss, Params};

    /// Four conditions `c = b0 + 2 b1` at `x_c = (2 b0 - 1, 2 b1 - 1)`,
    /// target `b0`.
    fn square() -> Task {
        let bits: Vec<i64> = (0..4).flat_map(|c| [c & 1, c >> 1]).collect();
        Task {
            kind: "test",
            dim: 2,
            outputs: 1,
            inputs: bits.iter().map(|&b| 2.0 * b as f64 - 1.0).collect(),
            targets: (0..4).map(|c| (c & 1) as f64).collect(),
            latents: Some((2, bits)),
            attrs: vec![],
        }
    }

    /// A linear network with readout `(1, -1)`: at `t = 0` `W = I`, at
    /// `t = 1` `W = diag(1, 0)`; biases 0.
    fn model_and_trajectory(task: &Task) -> (Model, Trajectory) {
        let dims = Dims {
            inputs: 2,
            hidden: 2,
            outputs: 1,
        };
        let init = Params {
            dims,
            w: vec![1.0, 0.0, 0.0, 1.0],
            b: vec![0.0; 2],
            j: vec![1.0, -1.0],
            b_out: vec![0.0],
        };
        let model = Model::new(Activation::Linear, Loss::Bce, &init, false);
        let mut hidden = task.inputs.clone();
        hidden.extend(task.inputs.chunks(2).flat_map(|x| [x[0], 0.0]));
        let tr = Trajectory {
            t: vec![0.0, 1.0],
            w: vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            b: vec![0.0; 4],
            hidden,
            ..Trajectory::default()
        };
        (model, tr)
    }

    fn settings() -> GeometrySettings {
        GeometrySettings {
            noise: 0.1,
            field: true,
            field_grid: 3,
            ..GeometrySettings::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn alignments_and_dimension_match_the_hand_computed_square() {
        let task = square();
        let (model, tr) = model_and_trajectory(&task);
        let s = measure(&task, &model, &tr, &settings());
        let h = 0.5f64.sqrt();

        // Z = X, then Z = (x_0, 0): the input kernel, then the target's.
        assert_eq!(s.t, vec![0.0, 1.0]);
        assert!(close(s.input_alignment[0], 1.0) && close(s.target_alignment[0], h));
        assert!(close(s.input_alignment[1], h) && close(s.target_alignment[1], 1.0));
        assert!(s.plane_angle[0].abs() < 1e-12);
        assert!(close(s.plane_angle[1], h.acos()));
        assert!(close(s.plane_radius[0], 1.0) && close(s.plane_radius[1], 1.0));
        assert!(close(s.participation_ratio[0], 2.0));
        assert!(close(s.participation_ratio[1], 1.0));
        assert_eq!(s.sparsity, vec![0.5, 0.25]);
    }

    #[test]
    fn dichotomies_use_the_latent_pairs_and_score_the_square() {
        let task = square();
        let (model, tr) = model_and_trajectory(&task);
        let s = measure(&task, &model, &tr, &settings());

        assert_eq!(s.dichotomy_names, vec!["target 0 = latent 0", "latent 1"]);
        assert_eq!(s.ccgp_pairs[0], (vec![(0, 1), (2, 3)], "latent"));
        assert_eq!(s.ccgp_pairs[1], (vec![(0, 2), (1, 3)], "latent"));
        // [T' = 2, 2 dichotomies]: parallel at t = 0; at t = 1 the
        // representation ignores b1, so its coding vectors vanish.
        assert_eq!(s.parallelism_max, vec![1.0, 1.0, 1.0, 0.0]);
        assert_eq!(s.parallelism_min_distance, vec![1.0, 1.0, 1.0, 0.0]);
        assert_eq!(&s.ccgp_pair[..3], &[1.0, 1.0, 1.0]);
        assert!(s.ccgp_pair[3] < 0.8, "{}", s.ccgp_pair[3]);
        // Of the 3 balanced splits, the XOR one is not linear at t = 0.
        assert!(s.shattering[0] < 0.9 && s.shattering[0] > 0.6);
    }

    #[test]
    fn units_project_on_their_own_axes() {
        let task = square();
        let (model, tr) = model_and_trajectory(&task);
        let s = measure(&task, &model, &tr, &settings());

        // Unit 0 favours b0 = 1: inter (1, 0), intra (0, 1); unit 1
        // favours b0 = 0: inter (-1, 0), intra (0, 1).
        assert_eq!(&s.projection_inter[..2], &[1.0, 0.0]);
        assert_eq!(&s.projection_intra[..2], &[0.0, 1.0]);
        assert_eq!(s.intra_inter_ratio[0], 0.0);
        assert!(s.intra_inter_ratio[1].is_infinite());
        assert!(s.intra_inter_ratio[3].is_nan());
        assert_eq!(&s.activation_patterns[..8], &[0, 1, 0, 1, 0, 0, 1, 1]);
        assert_eq!(s.distinct_directions, vec![2, 1]);
        assert!(close(s.label_inheritance[0], 0.5));
        assert!(close(s.label_inheritance[1], 1.0));

        // The field spans 1.2 x the largest projection, 3 x 3 per unit.
        let f = s.field.unwrap();
        assert_eq!(f.alphas, vec![-1.2, 0.0, 1.2]);
        assert_eq!(f.d_alpha.len(), 2 * 9);
        // Linear unit 0: dw/dt = (1/P) sum_c g_c x_c = (1/4)(2, 0).
        assert!(f.d_alpha[..9].iter().all(|&v| close(v, 0.5)));
        assert!(f.d_beta[..9].iter().all(|&v| v.abs() < 1e-15));
    }

    #[test]
    fn every_keeps_the_last_time_and_empty_runs_give_empty_series() {
        assert_eq!(measured_rows(5, 2), vec![0, 2, 4]);
        assert_eq!(measured_rows(4, 2), vec![0, 2, 3]);
        assert_eq!(measured_rows(3, 10), vec![0, 2]);
        assert!(measured_rows(0, 1).is_empty());
        let task = square();
        let (model, _) = model_and_trajectory(&task);
        let s = measure(&task, &model, &Trajectory::default(), &settings());
        assert!(s.t.is_empty() && s.target_alignment.is_empty());
    }

    #[test]
    fn the_group_kernel_is_the_mean_of_the_seeds_kernels() {
        let task = square();
        let (_, tr) = model_and_trajectory(&task);
        let mut other = tr.clone();
        other.hidden.rotate_left(8);
        let g = group_alignment(&task, &[&tr, &other], 1);
        // Mean kernel x0 x0^T + x1 x1^T / 2 against K_y = x0 x0^T.
        assert_eq!(g.runs, 2);
        assert!(close(g.target_alignment[0], 1.25f64.sqrt().recip()));
        assert!(close(g.target_alignment[1], g.target_alignment[0]));
    }

    #[test]
    fn the_written_group_has_the_documented_shapes() {
        let task = square();
        let (model, tr) = model_and_trajectory(&task);
        let s = measure(&task, &model, &tr, &settings());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.h5");
        let mut fb = hdf5_pure::FileBuilder::new();
        let mut run = fb.create_group("flow");
        write_group(&mut run, &s);
        fb.add_group(run.finish());
        fb.write(&path).unwrap();

        let file = hdf5_pure::File::open(&path).unwrap();
        let shape = |name: &str| {
            let ds = file.dataset(&format!("flow/geometry/{name}")).unwrap();
            ds.shape().unwrap()
        };
        assert_eq!(shape("plane"), vec![2, 2]);
        assert_eq!(shape("parallelism_max"), vec![2, 2]);
        assert_eq!(shape("activation_patterns"), vec![2, 2, 4]);
        assert_eq!(shape("field/d_alpha"), vec![2, 3, 3]);
        let ta = file.dataset("flow/geometry/target_alignment").unwrap();
        assert_eq!(ta.read_f64().unwrap(), s.target_alignment);
    }
}
