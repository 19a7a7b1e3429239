//! The resolved plan: everything a scenario asks for, built and
//! cross-checked before any run starts.
//!
//! This is the second configuration stage. From a validated
//! [`Scenario`] it builds the task, the initial weights of every network
//! seed (shared by all activations of that seed, so that Tanh and ReLU
//! start from the same point), the models, the saved times and the solver
//! and SGD settings. What can only be checked against data (weights read
//! from a file must fit the network) is checked here, with errors that
//! name the key that fixes them.

use std::path::PathBuf;

use rand_distr::{Distribution, Normal, Uniform};

use crate::activation::Activation;
use crate::flow::integrator::Solver;
use crate::flow::smooth::FlowSettings;
use crate::geometry::series::GeometrySettings;
use crate::network::{Dims, Loss, Model, Params};
use crate::scenario::{Scenario, Source};
use crate::seed;
use crate::sgd::{Precision, SgdSettings};
use crate::task::cube::{CubeSpec, Spectrum, cube};
use crate::task::fig1::{Fig1Outputs, Fig1Spec, fig1_with};
use crate::task::file::{Hdf5Layout, from_csv, from_hdf5};
use crate::task::random_kernel::{RandomKernelSpec, random_kernel};
use crate::task::xor::{XorSpec, xor};
use crate::task::{Samples, Task};
use crate::trajectory::log_spaced_times;

/// An error found while resolving a scenario.
#[derive(Debug, thiserror::Error)]
#[error("{file}: key `{key}` = {value}: {problem}")]
pub struct PlanError {
    /// The scenario file.
    pub file: String,
    /// The key that fixes it.
    pub key: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub problem: String,
}

/// One network to train: an activation and a seed.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The run's name, `<activation>-s<seed>`, its group in the file.
    pub name: String,
    /// The network seed.
    pub seed: u64,
    /// The initial weights.
    pub init: Params,
    /// The model (activation, loss, frozen parts).
    pub model: Model,
}

impl RunSpec {
    /// The activation.
    pub fn activation(&self) -> Activation {
        self.model.activation
    }

    /// The fixed noisy training set of this run's seed: shared by every
    /// activation of the seed, used by SGD and by the sample flow.
    pub fn samples(&self, task: &Task, n: usize, sigma: f64, task_seed: u64) -> Samples {
        let mut rng = seed::stream(self.seed, &format!("samples/task-{task_seed}"));
        task.samples(n, sigma, &mut rng)
    }
}

/// The flow part of the plan.
#[derive(Clone, Debug)]
pub struct FlowPlan {
    /// Solver, tolerances, budget and saved times.
    pub settings: FlowSettings,
    /// Integrate on the SGD training samples instead of the conditions.
    pub on_samples: bool,
}

/// The SGD part of the plan.
#[derive(Clone, Debug)]
pub struct SgdPlan {
    /// The protocol and saved times.
    pub settings: SgdSettings,
}

/// Everything a run of the scenario needs.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The scenario, with every default filled in.
    pub scenario: Scenario,
    /// Where it came from.
    pub source: Source,
    /// The task.
    pub task: Task,
    /// The networks, in a fixed order (activation-major).
    pub runs: Vec<RunSpec>,
    /// The flow, when enabled.
    pub flow: Option<FlowPlan>,
    /// SGD, when enabled.
    pub sgd: Option<SgdPlan>,
    /// Training-set size and noise (used by SGD and the sample flow).
    pub samples: (usize, f64),
    /// The measures taken along every trajectory, when enabled.
    pub geometry: Option<GeometrySettings>,
    /// The output file named by the scenario.
    pub output: PathBuf,
}

impl Plan {
    /// Resolves a validated scenario.
    pub fn build(scenario: Scenario, source: Source) -> Result<Plan, PlanError> {
        let task = build_task(&scenario, &source)?;
        let dims = Dims {
            inputs: task.dim,
            hidden: scenario.network.hidden,
            outputs: task.outputs,
        };
        let loss = match scenario.network.loss.as_str() {
            "mse" => Loss::Mse,
            _ => Loss::Bce,
        };

        let mut inits = Vec::new();
        for &s in &scenario.seeds.networks {
            inits.push(initial_weights(&scenario, &source, dims, s)?);
        }
        let mut runs = Vec::new();
        for act in scenario.activations() {
            for (&s, init) in scenario.seeds.networks.iter().zip(&inits) {
                let mut model =
                    Model::new(act, loss, init, scenario.network.train_readout);
                model.train_bias = scenario.network.train_bias;
                let name = format!("{}-s{s}", act.name());
                runs.push(RunSpec {
                    name,
                    seed: s,
                    init: init.clone(),
                    model,
                });
            }
        }

        let f = &scenario.flow;
        let save_times = match &f.times {
            Some(t) => t.clone(),
            None => log_spaced_times(f.t_end, f.saves, f.decades),
        };
        let flow = f.enabled.then(|| FlowPlan {
            settings: FlowSettings {
                solver: if f.solver == "dop853" {
                    Solver::Dop853
                } else {
                    Solver::Dopri5
                },
                rtol: f.rtol,
                atol: f.atol,
                max_steps: f.max_steps,
                save_times: save_times.clone(),
                reduced: f.reduced,
                plain_kinks: f.kinks == "plain",
                preactivations: f.coordinates == "preactivations",
            },
            on_samples: f.data == "samples",
        });

        let g = &scenario.sgd;
        let batch = if g.full_batch { g.samples } else { g.batch };
        let per_epoch = g.samples.div_ceil(batch) as f64;
        let epochs = g
            .epochs
            .unwrap_or(((f.t_end / (g.eta * per_epoch)).ceil() as u64).max(1));
        let sgd = g.enabled.then_some(SgdPlan {
            settings: SgdSettings {
                precision: if g.precision == "f32" {
                    Precision::Single
                } else {
                    Precision::Double
                },
                eta: g.eta,
                batch,
                epochs,
                save_times,
            },
        });

        let output = PathBuf::from(
            scenario
                .output
                .path
                .clone()
                .unwrap_or_else(|| format!("repflow-{}.h5", scenario.name.0)),
        );
        let geometry = geometry_settings(&scenario);
        Ok(Plan {
            samples: (g.samples, g.noise),
            geometry,
            scenario,
            source,
            task,
            runs,
            flow,
            sgd,
            output,
        })
    }
}

/// The `[geometry]` section as settings, `None` when disabled.
fn geometry_settings(s: &Scenario) -> Option<GeometrySettings> {
    let g = &s.geometry;
    g.enabled.then(|| GeometrySettings {
        every: g.every,
        abstraction: g.abstraction,
        shattering: g.shattering,
        specialisation: g.specialisation,
        field: g.field,
        noise: g.noise,
        samples: g.samples,
        max_splits: g.max_splits,
        max_dichotomies: g.max_dichotomies,
        cluster_angle: g.cluster_angle.to_radians(),
        field_grid: g.field_grid,
        seed: g.seed,
    })
}

fn build_task(s: &Scenario, source: &Source) -> Result<Task, PlanError> {
    let t = &s.task;
    let seed = s.seeds.task;
    Ok(match t.kind.as_str() {
        "fig1" => {
            let outputs = if t.k == 2 {
                Fig1Outputs::Two
            } else {
                Fig1Outputs::One
            };
            fig1_with(Fig1Spec {
                dim: t.dim,
                seed,
                outputs,
            })
        }
        "random_kernel" => random_kernel(RandomKernelSpec {
            conditions: t.conditions,
            rank: t.rank,
            outputs: t.k,
            alignment: s.alignment(),
            dim: t.dim,
            seed,
        }),
        "xor" => xor(XorSpec {
            eps: t.eps,
            dim: t.dim,
            seed,
        }),
        "file" => {
            let path = PathBuf::from(t.file.clone().unwrap_or_default());
            let is_csv = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            let loaded = if is_csv {
                from_csv(&path)
            } else {
                let layout = Hdf5Layout {
                    inputs: t.inputs.clone(),
                    targets: t.targets.clone(),
                };
                from_hdf5(&path, &layout)
            };
            loaded.map_err(|e| PlanError {
                file: source.file.clone(),
                key: "task.file".into(),
                value: format!("{:?}", path.display().to_string()),
                problem: e.to_string(),
            })?
        }
        _ => {
            let spectrum = if t.spectrum == "random" {
                Spectrum::Random {
                    concentration: t.concentration,
                }
            } else {
                Spectrum::Deterministic
            };
            cube(CubeSpec {
                d: t.d,
                k: t.k,
                alignment: s.alignment(),
                dim: t.dim,
                seed,
                spectrum,
            })
        }
    })
}

/// The initial weights of network seed `seed`.
fn initial_weights(
    s: &Scenario,
    source: &Source,
    dims: Dims,
    seed: u64,
) -> Result<Params, PlanError> {
    let i = &s.init;
    let Dims {
        inputs: d,
        hidden: n,
        outputs: k,
    } = dims;
    let mut p = Params::zeros(dims);
    let mut rng = seed::stream(seed, "init");
    match i.scheme.as_str() {
        "file" => p = read_weights(s, source, dims)?,
        "fig1" => {
            let r = i.scale / (d as f64).sqrt();
            let uniform = Uniform::new_inclusive(-r, r).expect("finite bounds");
            p.w.iter_mut().for_each(|w| *w = uniform.sample(&mut rng));
            let v = 1.0 / (n as f64).sqrt();
            for o in 0..k {
                for u in 0..n {
                    p.j[o * n + u] = if u < n / 2 { v } else { -v };
                }
            }
        }
        _ => {
            let hidden =
                Normal::new(0.0, i.scale / (d as f64).sqrt()).expect("scale > 0");
            let readout = Normal::new(0.0, 1.0 / (n as f64).sqrt()).expect("n > 0");
            p.w.iter_mut().for_each(|w| *w = hidden.sample(&mut rng));
            p.b.iter_mut().for_each(|b| *b = hidden.sample(&mut rng));
            p.j.iter_mut().for_each(|j| *j = readout.sample(&mut rng));
            p.b_out
                .iter_mut()
                .for_each(|b| *b = readout.sample(&mut rng));
        }
    }
    p.b.iter_mut().for_each(|b| *b += i.bias_shift);
    Ok(p)
}

/// Reads `W`, `b`, `J`, `b_out` from `init.group` of `init.file`.
fn read_weights(s: &Scenario, source: &Source, dims: Dims) -> Result<Params, PlanError> {
    let path = s.init.file.clone().unwrap_or_default();
    let err = |key: &str, value: &str, problem: String| PlanError {
        file: source.file.clone(),
        key: key.into(),
        value: value.into(),
        problem,
    };
    let file = hdf5_pure::File::open(&path)
        .map_err(|e| err("init.file", &path, format!("cannot open it as HDF5: {e}")))?;
    let Dims {
        inputs: d,
        hidden: n,
        outputs: k,
    } = dims;
    let group = s.init.group.trim_end_matches('/');
    let read = |name: &str, shape: Vec<u64>| -> Result<Vec<f64>, PlanError> {
        let full = format!("{group}/{name}");
        let ds = file.dataset(&full).map_err(|e| {
            err(
                "init.group",
                &s.init.group,
                format!("no dataset {full} in {path}: {e}"),
            )
        })?;
        let got = ds.shape().unwrap_or_default();
        if got != shape {
            let problem = format!(
                "{full} in {path} has shape {got:?}, the network needs {shape:?} \
                 (task D = {d}, network.hidden = {n}, K = {k})"
            );
            return Err(err("init.file", &path, problem));
        }
        ds.read_f64()
            .map_err(|e| err("init.file", &path, format!("reading {full}: {e}")))
    };
    Ok(Params {
        dims,
        w: read("W", vec![n as u64, d as u64])?,
        b: read("b", vec![n as u64])?,
        j: read("J", vec![k as u64, n as u64])?,
        b_out: read("b_out", vec![k as u64])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Plan {
        let src = Source {
            file: "t.toml".into(),
            text: text.into(),
        };
        Plan::build(Scenario::parse(&src).unwrap(), src).unwrap()
    }

    #[test]
    fn the_default_plan_pairs_tanh_and_relu_from_the_same_weights() {
        let p = plan("");
        let names: Vec<_> = p.runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["tanh-s0", "relu-s0"]);
        assert_eq!(p.runs[0].init, p.runs[1].init);
        assert_eq!(p.task.conditions(), 8);
        let sgd = &p.sgd.unwrap().settings;
        // 5000 samples in batches of 64 is 79 steps an epoch; 127 epochs
        // first reach t = 1000 at eta = 0.1.
        assert_eq!(sgd.epochs, 127);
    }

    #[test]
    fn every_task_kind_resolves_with_its_measured_alignment() {
        let kinds = [
            (
                "cube",
                "spectrum = \"random\"\nconcentration = 2.0\nc = 0.2\n",
                0.2,
            ),
            ("random_kernel", "conditions = 8\nrank = 4\nc = 0.4\n", 0.4),
            ("xor", "eps = 0.0\n", 0.0),
        ];
        for (kind, extra, c) in kinds {
            let p = plan(&format!("[task]\nkind = \"{kind}\"\n{extra}"));
            assert_eq!(p.task.kind, kind);
            assert!((p.task.measured_alignment() - c).abs() < 1e-10, "{kind}");
        }
        let p = plan("[task]\nkind = \"fig1\"\nk = 2\ndim = 50\n");
        assert_eq!((p.task.outputs, p.task.dim), (2, 50));
    }

    #[test]
    fn the_geometry_section_resolves_to_settings_in_radians() {
        let p = plan("[geometry]\nevery = 3\ncluster_angle = 90\nfield = true\n");
        let g = p.geometry.unwrap();
        assert_eq!((g.every, g.field), (3, true));
        assert!((g.cluster_angle - std::f64::consts::FRAC_PI_2).abs() < 1e-15);
        assert!(plan("[geometry]\nenabled = false\n").geometry.is_none());
    }

    #[test]
    fn a_missing_task_file_names_the_key() {
        let src = Source {
            file: "t.toml".into(),
            text: "[task]\nkind = \"file\"\nfile = \"/nonexistent/t.csv\"\n".into(),
        };
        let e = Plan::build(Scenario::parse(&src).unwrap(), src).unwrap_err();
        assert!(e.to_string().contains("key `task.file`"), "{e}");
    }

    #[test]
    fn gaussian_weights_have_the_requested_spread() {
        let p = plan("[network]\nhidden = 400\n[init]\nscale = 2.0\nbias_shift = 0.5\n");
        let init = &p.runs[0].init;
        let var = init.w.iter().map(|w| w * w).sum::<f64>() / init.w.len() as f64;
        assert!((var - 4.0 / 100.0).abs() < 0.004, "{var}");
        let mean_b = init.b.iter().sum::<f64>() / init.b.len() as f64;
        assert!((mean_b - 0.5).abs() < 0.03, "{mean_b}");
    }

    #[test]
    fn the_fig1_scheme_has_a_balanced_readout() {
        let p = plan("[task]\nkind = \"fig1\"\n[init]\nscheme = \"fig1\"\n");
        let init = &p.runs[0].init;
        assert!(init.j.iter().sum::<f64>().abs() < 1e-12);
        assert_eq!(init.j.iter().filter(|&&j| j > 0.0).count(), 64);
        assert!(init.b.iter().all(|&b| b == 0.0));
        assert!(init.w.iter().all(|w| w.abs() <= 0.1));
    }

    #[test]
    fn weights_from_a_file_must_fit_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.h5");
        let mut fb = hdf5_pure::FileBuilder::new();
        let mut g = fb.create_group("start");
        g.create_dataset("W")
            .with_f64_data(&[0.5; 6])
            .with_shape(&[2, 3]);
        g.create_dataset("b").with_f64_data(&[0.1, 0.2]);
        g.create_dataset("J")
            .with_f64_data(&[1.0, -1.0])
            .with_shape(&[1, 2]);
        g.create_dataset("b_out").with_f64_data(&[0.0]);
        fb.add_group(g.finish());
        fb.write(&path).unwrap();

        let text = |hidden: usize| {
            format!(
                "[task]\nkind = \"fig1\"\ndim = 3\n[network]\nhidden = {hidden}\n\
                 [init]\nscheme = \"file\"\nfile = {:?}\ngroup = \"start\"\n",
                path.display().to_string()
            )
        };
        let p = plan(&text(2));
        assert_eq!(p.runs[0].init.b, vec![0.1, 0.2]);

        let src = Source {
            file: "t.toml".into(),
            text: text(5),
        };
        let e = Plan::build(Scenario::parse(&src).unwrap(), src).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("key `init.file`") && m.contains("[2, 3]"), "{m}");
    }
}
