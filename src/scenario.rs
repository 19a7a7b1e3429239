//! The scenario file: a study described in TOML, strictly validated.
//!
//! This is the first of two configuration stages. [`Scenario::parse`]
//! reads the raw file: unknown keys and wrong types are rejected by the
//! parser, and [`Scenario::validate`] checks every value's range and the
//! relations between keys. Every error names the file, the line, the key,
//! the value and what is allowed. The second stage, [`crate::plan`],
//! builds the task and the runs and cross-checks them before any work.
//!
//! Every key has a default, so an empty file is the built-in default
//! scenario: the cube task with `d = 3`, `k = 1`, `c = c_max / 2`, a
//! Tanh and a ReLU network of 128 units from the same initial weights,
//! each trained by gradient flow and by SGD.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::task::cube::max_alignment;

/// An error in a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML did not parse, or a key is unknown or has the wrong type.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A value is out of its range or contradicts another key.
    #[error("{}: key `{key}` = {value}: {allowed}", location(.file, *.line))]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line of the key, when it appears in the file.
        line: Option<usize>,
        /// The key, as `section.key`.
        key: String,
        /// The offending value, as written.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

fn location(file: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{file}:{l}"),
        None => format!("{file} (default value)"),
    }
}

/// The whole scenario, as written (with defaults for what is not).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// A name for the study; the default output is `repflow-<name>.h5`.
    pub name: Name,
    /// `[task]`.
    pub task: TaskSection,
    /// `[network]`.
    pub network: NetworkSection,
    /// `[init]`.
    pub init: InitSection,
    /// `[flow]`.
    pub flow: FlowSection,
    /// `[sgd]`.
    pub sgd: SgdSection,
    /// `[output]`.
    pub output: OutputSection,
    /// `[geometry]`.
    pub geometry: GeometrySection,
    /// `[seeds]`.
    pub seeds: SeedsSection,
}

/// The scenario's name.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(transparent)]
pub struct Name(pub String);

impl Default for Name {
    fn default() -> Self {
        Name("default".into())
    }
}

/// `[task]`: which conditions, inputs and targets.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TaskSection {
    /// `cube`, `fig1`, `random_kernel`, `xor` or `file`.
    pub kind: String,
    /// Cube: number of latent bits `d`, 2 to 6.
    pub d: usize,
    /// Number of targets: cube 1 to `P - 1`, fig1 1 or 2, random_kernel
    /// 1 or more.
    pub k: usize,
    /// Cube: the input-target alignment `c`, in `[0, c_max]`;
    /// random_kernel: in `[0, 1)`.
    pub c: Option<f64>,
    /// `c` as a fraction of `c_max` (1 for random_kernel), in `[0, 1]`;
    /// used when `c` is not given.
    pub c_fraction: f64,
    /// Cube: `deterministic` or `random` spectrum.
    pub spectrum: String,
    /// Cube, random spectrum: the Dirichlet concentration, > 0.
    pub concentration: f64,
    /// random_kernel: number of conditions `P`, at least 4.
    pub conditions: usize,
    /// random_kernel: rank of the input kernel, `k <= rank < P - k`.
    pub rank: usize,
    /// xor: the linearly separable nudge `eps`, >= 0.
    pub eps: f64,
    /// Input dimension `D`; at least `P - 1` (cube), `rank`
    /// (random_kernel), 3 (xor).
    pub dim: usize,
    /// file: the task file, `.h5`/`.hdf5` or `.csv` (ignores `dim`).
    pub file: Option<String>,
    /// file, HDF5: the inputs dataset `[P, D]`.
    pub inputs: String,
    /// file, HDF5: the targets dataset `[P, K]`.
    pub targets: String,
}

impl Default for TaskSection {
    fn default() -> Self {
        TaskSection {
            kind: "cube".into(),
            d: 3,
            k: 1,
            c: None,
            c_fraction: 0.5,
            spectrum: "deterministic".into(),
            concentration: 1.0,
            conditions: 8,
            rank: 4,
            eps: 0.0,
            dim: 100,
            file: None,
            inputs: "inputs".into(),
            targets: "targets".into(),
        }
    }
}

/// `[network]`: architecture and loss.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// The activations to train, each a separate run from the same
    /// initial weights.
    pub activations: Vec<String>,
    /// Hidden units `N`.
    pub hidden: usize,
    /// `bce` or `mse`.
    pub loss: String,
    /// Train `J` and `b_out` too (the study keeps them frozen).
    pub train_readout: bool,
    /// Train the hidden biases `b`.
    pub train_bias: bool,
    /// Upper bound of `bounded_relu`, > 0.
    pub ub: f64,
    /// Shift of `shifted_relu`: its kink sits at `-shift`.
    pub shift: f64,
    /// Slope of `leaky_relu` below 0, in `[0, 1)`.
    pub leak: f64,
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            activations: vec!["tanh".into(), "relu".into()],
            hidden: 128,
            loss: "bce".into(),
            train_readout: false,
            train_bias: true,
            ub: 1.0,
            shift: 0.0,
            leak: 0.01,
        }
    }
}

/// `[init]`: initial weights, shared by all activations of a seed.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InitSection {
    /// `gaussian` (W, b ~ N(0, scale^2 / D); J, b_out ~ N(0, 1 / N)),
    /// `fig1` (W ~ U(-scale / sqrt(D), scale / sqrt(D)), b = 0, balanced
    /// readout +-1 / sqrt(N), b_out = 0) or `file`.
    pub scheme: String,
    /// Multiplies the spread of `W` and `b`.
    pub scale: f64,
    /// Added to every hidden bias after drawing.
    pub bias_shift: f64,
    /// `file` scheme: the HDF5 file holding `W`, `b`, `J`, `b_out`.
    pub file: Option<String>,
    /// `file` scheme: the group in that file holding them.
    pub group: String,
}

impl Default for InitSection {
    fn default() -> Self {
        InitSection {
            scheme: "gaussian".into(),
            scale: 1.0,
            bias_shift: 0.0,
            file: None,
            group: "/".into(),
        }
    }
}

/// `[flow]`: the gradient flow.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlowSection {
    /// Integrate the flow at all.
    pub enabled: bool,
    /// `dopri5` or `dop853`.
    pub solver: String,
    /// Relative tolerance, > 0.
    pub rtol: f64,
    /// Absolute tolerance, > 0.
    pub atol: f64,
    /// End time, > 0.
    pub t_end: f64,
    /// Number of saved times (log-spaced, plus 0 and `t_end`), >= 2.
    pub saves: usize,
    /// The log-spaced times start `decades` decades below `t_end`.
    pub decades: f64,
    /// Explicit saved times instead (increasing, from 0, ending at
    /// `t_end`).
    pub times: Option<Vec<f64>>,
    /// `conditions` (the noise-free means) or `samples` (the SGD
    /// training set).
    pub data: String,
    /// Budget of solver steps for one run.
    pub max_steps: u64,
    /// Integrate the condition flow in the exact reduced coordinates of
    /// the span of the inputs.
    pub reduced: bool,
    /// Piecewise-linear activations: `events` (located kinks, Filippov
    /// sliding) or `plain` (the solver steps over the kinks, bounded by
    /// `max_steps`; for comparison only).
    pub kinks: String,
    /// Piecewise-linear flows on the conditions: `preactivations` (the
    /// flow of `U = W X + b`, events on the continuous extension) or
    /// `weights` (the flow of `W` and `b`, events landed on).
    pub coordinates: String,
}

impl Default for FlowSection {
    fn default() -> Self {
        FlowSection {
            enabled: true,
            solver: "dopri5".into(),
            rtol: 1e-8,
            atol: 1e-10,
            t_end: 1000.0,
            saves: 60,
            decades: 4.0,
            times: None,
            data: "conditions".into(),
            max_steps: 100_000,
            kinks: "events".into(),
            coordinates: "preactivations".into(),
            reduced: true,
        }
    }
}

/// `[sgd]`: the SGD baseline.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SgdSection {
    /// Run SGD at all.
    pub enabled: bool,
    /// Learning rate, > 0.
    pub eta: f64,
    /// Batch size, 1 to `samples`.
    pub batch: usize,
    /// Full-batch gradient descent (overrides `batch`).
    pub full_batch: bool,
    /// Size of the fixed noisy training set.
    pub samples: usize,
    /// Input noise `sigma`, >= 0.
    pub noise: f64,
    /// Passes over the training set; by default enough to reach
    /// `flow.t_end` at `t = eta * step`.
    pub epochs: Option<u64>,
    /// `f64` or `f32`: the precision of the steps (snapshots and
    /// measures are always `f64`).
    pub precision: String,
}

impl Default for SgdSection {
    fn default() -> Self {
        SgdSection {
            enabled: true,
            eta: 0.1,
            batch: 64,
            full_batch: false,
            samples: 5000,
            noise: 1.0,
            epochs: None,
            precision: "f64".into(),
        }
    }
}

/// `[output]`: what to write.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// The HDF5 file; default `repflow-<name>.h5` (the `-o` flag wins).
    pub path: Option<String>,
    /// Do not store `W` and `b` at every saved time, only at the ends.
    pub ends_only: bool,
    /// Do not store the hidden responses.
    pub no_hidden: bool,
}

/// `[geometry]`: the study's measures along every trajectory (see
/// `docs/geometry.md`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GeometrySection {
    /// Measure at all.
    pub enabled: bool,
    /// Measure every `every`-th saved time (the last always), >= 1.
    pub every: usize,
    /// Parallelism scores and CCGP of the task's dichotomies.
    pub abstraction: bool,
    /// Shattering dimensionality.
    pub shattering: bool,
    /// Per-unit projections, activation patterns, distinct directions,
    /// label inheritance.
    pub specialisation: bool,
    /// The expected-gradient field at the initial weights.
    pub field: bool,
    /// Noise added to hidden responses for CCGP and SD, >= 0.
    pub noise: f64,
    /// Noisy samples per condition for CCGP and SD, >= 1.
    pub samples: usize,
    /// Most CCGP splits per dichotomy, >= 1.
    pub max_splits: usize,
    /// Random balanced dichotomies for SD when P > 8, >= 1.
    pub max_dichotomies: usize,
    /// Units within this angle in degrees count as one direction, in
    /// [0, 180].
    pub cluster_angle: f64,
    /// Points per side of the field's grid, >= 2.
    pub field_grid: usize,
    /// Seed of the CCGP and SD noise.
    pub seed: u64,
}

impl Default for GeometrySection {
    fn default() -> Self {
        GeometrySection {
            enabled: true,
            every: 5,
            abstraction: true,
            shattering: true,
            specialisation: true,
            field: false,
            noise: 0.5,
            samples: 10,
            max_splits: 20,
            max_dichotomies: 35,
            cluster_angle: 10.0,
            field_grid: 21,
            seed: 0,
        }
    }
}

/// `[seeds]`: randomness.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SeedsSection {
    /// Seed of the task (embedding, random patterns).
    pub task: u64,
    /// Network seeds: initial weights, training samples, batch order.
    pub networks: Vec<u64>,
}

impl Default for SeedsSection {
    fn default() -> Self {
        SeedsSection {
            task: 0,
            networks: vec![0],
        }
    }
}

/// A scenario with the file it came from and its text, for messages.
#[derive(Clone, Debug)]
pub struct Source {
    /// The file name, or `<built-in default>`.
    pub file: String,
    /// The TOML text.
    pub text: String,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<(Scenario, Source), ScenarioError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
                file: file.clone(),
                source,
            })?;
        let src = Source { file, text };
        let s = Scenario::parse(&src)?;
        Ok((s, src))
    }

    /// The built-in default scenario.
    pub fn builtin() -> (Scenario, Source) {
        let src = Source {
            file: "<built-in default>".into(),
            text: String::new(),
        };
        (Scenario::default(), src)
    }

    /// Parses and validates scenario text.
    pub fn parse(src: &Source) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(&src.text).map_err(|e| {
            let line = e.span().map_or(1, |sp| line_of(&src.text, sp.start));
            let message = e.message().trim();
            let message = match key_at_line(&src.text, line) {
                Some(key) if !message.contains(&key) => format!("key `{key}`: {message}"),
                _ => message.to_string(),
            };
            ScenarioError::Syntax {
                file: src.file.clone(),
                line,
                message,
            }
        })?;
        s.validate(src)?;
        Ok(s)
    }

    /// The scenario as TOML, every key with its value.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a scenario always serialises")
    }

    /// The activations, with their parameters.
    pub fn activations(&self) -> Vec<Activation> {
        let n = &self.network;
        n.activations
            .iter()
            .map(|a| parse_activation(a, n).expect("validated"))
            .collect()
    }

    /// The requested alignment `c` of a cube or random-kernel task.
    pub fn alignment(&self) -> f64 {
        let t = &self.task;
        let cmax = if t.kind == "cube" {
            max_alignment(t.d, t.k)
        } else {
            1.0
        };
        t.c.unwrap_or(t.c_fraction * cmax)
    }

    /// Checks every value against its range and the other keys.
    pub fn validate(&self, src: &Source) -> Result<(), ScenarioError> {
        let check = Checker { src };
        let (t, n, i, f, g) =
            (&self.task, &self.network, &self.init, &self.flow, &self.sgd);

        let kinds = ["cube", "fig1", "random_kernel", "xor", "file"];
        check.one_of("task", "kind", &t.kind, &kinds)?;
        check.real("task", "c_fraction", t.c_fraction, 0.0, 1.0)?;
        match t.kind.as_str() {
            "cube" => self.validate_cube(&check)?,
            "fig1" => {
                check.range("task", "k", t.k, 1, 2)?;
                check.at_least("task", "dim", t.dim, 1, "1")?;
            }
            "random_kernel" => {
                check.at_least("task", "conditions", t.conditions, 4, "4")?;
                check.at_least("task", "k", t.k, 1, "1")?;
                let top = t.conditions.saturating_sub(t.k + 1);
                check
                    .range("task", "rank", t.rank, t.k, top)
                    .map_err(|e| with_hint(e, "k <= rank <= conditions - k - 1"))?;
                check.at_least("task", "dim", t.dim, t.rank, "task.rank")?;
                let c = self.alignment();
                if !(0.0..1.0).contains(&c) {
                    return Err(check.invalid("task", "c", c, "must lie in [0, 1)"));
                }
            }
            "xor" => {
                check.at_least("task", "dim", t.dim, 3, "3")?;
                if !(t.eps >= 0.0 && t.eps.is_finite()) {
                    return Err(check.invalid(
                        "task",
                        "eps",
                        t.eps,
                        "must be a finite number >= 0",
                    ));
                }
            }
            _ => {
                let Some(f) = &t.file else {
                    return Err(check.invalid(
                        "task",
                        "file",
                        "(missing)",
                        "the `file` kind needs `file = \"task.h5\"` or a .csv",
                    ));
                };
                let lower = f.to_lowercase();
                if ![".h5", ".hdf5", ".csv"].iter().any(|e| lower.ends_with(e)) {
                    return Err(check.invalid(
                        "task",
                        "file",
                        format!("{f:?}"),
                        "must end in .h5, .hdf5 or .csv",
                    ));
                }
            }
        }

        if n.activations.is_empty() {
            return Err(check.invalid(
                "network",
                "activations",
                "[]",
                "name at least one activation",
            ));
        }
        for a in &n.activations {
            if parse_activation(a, n).is_none() {
                let allowed =
                    format!("each must be one of {}", Activation::NAMES.join(", "));
                return Err(check.invalid(
                    "network",
                    "activations",
                    format!("{a:?}"),
                    allowed,
                ));
            }
        }
        check.at_least("network", "hidden", n.hidden, 1, "1")?;
        check.one_of("network", "loss", &n.loss, &["bce", "mse"])?;
        if n.ub <= 0.0 || !n.ub.is_finite() {
            return Err(check.invalid(
                "network",
                "ub",
                n.ub,
                "must be a finite number > 0",
            ));
        }
        check.finite("network", "shift", n.shift)?;
        if !(0.0..1.0).contains(&n.leak) {
            return Err(check.invalid("network", "leak", n.leak, "must lie in [0, 1)"));
        }

        check.one_of("init", "scheme", &i.scheme, &["gaussian", "fig1", "file"])?;
        check.positive("init", "scale", i.scale)?;
        check.finite("init", "bias_shift", i.bias_shift)?;
        if i.scheme == "file" && i.file.is_none() {
            return Err(check.invalid(
                "init",
                "file",
                "(missing)",
                "the `file` scheme needs `file = \"weights.h5\"`",
            ));
        }

        check.one_of("flow", "solver", &f.solver, &["dopri5", "dop853"])?;
        check.positive("flow", "rtol", f.rtol)?;
        check.positive("flow", "atol", f.atol)?;
        check.positive("flow", "t_end", f.t_end)?;
        check.at_least("flow", "saves", f.saves, 2, "2")?;
        check.positive("flow", "decades", f.decades)?;
        check.one_of("flow", "data", &f.data, &["conditions", "samples"])?;
        check.one_of("flow", "kinks", &f.kinks, &["events", "plain"])?;
        check.one_of(
            "flow",
            "coordinates",
            &f.coordinates,
            &["preactivations", "weights"],
        )?;
        check.at_least("flow", "max_steps", f.max_steps as usize, 1, "1")?;
        if let Some(times) = &f.times {
            let ok = times.len() >= 2
                && times[0] == 0.0
                && times.windows(2).all(|w| w[1] > w[0])
                && *times.last().unwrap() == f.t_end;
            if !ok {
                let allowed =
                    format!("must increase from 0 and end at flow.t_end = {}", f.t_end);
                return Err(check.invalid(
                    "flow",
                    "times",
                    format!("{times:?}"),
                    allowed,
                ));
            }
        }

        check.positive("sgd", "eta", g.eta)?;
        check.at_least("sgd", "samples", g.samples, 1, "1")?;
        check
            .range("sgd", "batch", g.batch, 1, g.samples)
            .map_err(|e| with_hint(e, "at most sgd.samples"))?;
        if !(g.noise >= 0.0 && g.noise.is_finite()) {
            return Err(check.invalid(
                "sgd",
                "noise",
                g.noise,
                "must be a finite number >= 0",
            ));
        }
        if let Some(e) = g.epochs {
            check.at_least("sgd", "epochs", e as usize, 1, "1")?;
        }
        check.one_of("sgd", "precision", &g.precision, &["f64", "f32"])?;
        self.validate_geometry(&check)?;
        if !f.enabled && !g.enabled {
            return Err(check.invalid(
                "flow",
                "enabled",
                false,
                "the flow and SGD cannot both be disabled",
            ));
        }
        if self.seeds.networks.is_empty() {
            return Err(check.invalid(
                "seeds",
                "networks",
                "[]",
                "name at least one network seed",
            ));
        }
        let mut seeds = self.seeds.networks.clone();
        seeds.sort_unstable();
        if seeds.windows(2).any(|w| w[0] == w[1]) {
            let v = format!("{:?}", self.seeds.networks);
            return Err(check.invalid("seeds", "networks", v, "seeds must be distinct"));
        }
        Ok(())
    }
}

impl Scenario {
    fn validate_cube(&self, check: &Checker<'_>) -> Result<(), ScenarioError> {
        let t = &self.task;
        check.range("task", "d", t.d, 2, 6)?;
        let p = 1usize << t.d;
        check.range("task", "k", t.k, 1, p - 1)?;
        let cmax = max_alignment(t.d, t.k);
        if let Some(c) = t.c {
            let allowed = format!(
                "must lie in [0, c_max] = [0, {cmax}] for d = {}, k = {}",
                t.d, t.k
            );
            if !(0.0..=cmax * (1.0 + 1e-12)).contains(&c) {
                return Err(check.invalid("task", "c", c, allowed));
            }
        }
        check.one_of(
            "task",
            "spectrum",
            &t.spectrum,
            &["deterministic", "random"],
        )?;
        check.positive("task", "concentration", t.concentration)?;
        if t.spectrum == "random" && t.k == p - 1 {
            let allowed = "a random spectrum needs k < P - 1 (with every parity a target the \
                           spectrum is fixed)";
            return Err(check.invalid("task", "spectrum", "\"random\"", allowed));
        }
        check.at_least(
            "task",
            "dim",
            t.dim,
            p - 1,
            "P - 1 (the number of features)",
        )
    }
}

impl Scenario {
    fn validate_geometry(&self, check: &Checker<'_>) -> Result<(), ScenarioError> {
        let g = &self.geometry;
        check.at_least("geometry", "every", g.every, 1, "1")?;
        if !(g.noise >= 0.0 && g.noise.is_finite()) {
            return Err(check.invalid(
                "geometry",
                "noise",
                g.noise,
                "must be a finite number >= 0",
            ));
        }
        check.at_least("geometry", "samples", g.samples, 1, "1")?;
        check.at_least("geometry", "max_splits", g.max_splits, 1, "1")?;
        check.at_least("geometry", "max_dichotomies", g.max_dichotomies, 1, "1")?;
        check.real("geometry", "cluster_angle", g.cluster_angle, 0.0, 180.0)?;
        check.at_least("geometry", "field_grid", g.field_grid, 2, "2")
    }
}

fn with_hint(e: ScenarioError, hint: &str) -> ScenarioError {
    match e {
        ScenarioError::Invalid {
            file,
            line,
            key,
            value,
            allowed,
        } => ScenarioError::Invalid {
            file,
            line,
            key,
            value,
            allowed: format!("{allowed} ({hint})"),
        },
        other => other,
    }
}

/// An activation name with the parameters of the `[network]` section.
pub fn parse_activation(name: &str, n: &NetworkSection) -> Option<Activation> {
    Some(match name {
        "tanh" => Activation::Tanh,
        "relu" => Activation::Relu,
        "bounded_relu" => Activation::BoundedRelu { ub: n.ub },
        "shifted_relu" => Activation::ShiftedRelu { shift: n.shift },
        "leaky_relu" => Activation::LeakyRelu { leak: n.leak },
        "softplus" => Activation::Softplus,
        "hard_tanh" => Activation::HardTanh,
        "linear" => Activation::Linear,
        _ => return None,
    })
}

/// Builds range errors that point at the key's line.
struct Checker<'a> {
    src: &'a Source,
}

impl Checker<'_> {
    fn invalid(
        &self,
        section: &str,
        key: &str,
        value: impl fmt::Display,
        allowed: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.src.file.clone(),
            line: find_key(&self.src.text, section, key),
            key: format!("{section}.{key}"),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    fn one_of(
        &self,
        s: &str,
        k: &str,
        v: &str,
        options: &[&str],
    ) -> Result<(), ScenarioError> {
        if options.contains(&v) {
            return Ok(());
        }
        Err(self.invalid(
            s,
            k,
            format!("{v:?}"),
            format!("must be one of {}", options.join(", ")),
        ))
    }

    fn range(
        &self,
        s: &str,
        k: &str,
        v: usize,
        lo: usize,
        hi: usize,
    ) -> Result<(), ScenarioError> {
        if (lo..=hi).contains(&v) {
            return Ok(());
        }
        Err(self.invalid(s, k, v, format!("must lie in [{lo}, {hi}]")))
    }

    fn at_least(
        &self,
        s: &str,
        k: &str,
        v: usize,
        lo: usize,
        what: &str,
    ) -> Result<(), ScenarioError> {
        if v >= lo {
            return Ok(());
        }
        Err(self.invalid(s, k, v, format!("must be at least {what}")))
    }

    fn real(
        &self,
        s: &str,
        k: &str,
        v: f64,
        lo: f64,
        hi: f64,
    ) -> Result<(), ScenarioError> {
        if (lo..=hi).contains(&v) {
            return Ok(());
        }
        Err(self.invalid(s, k, v, format!("must lie in [{lo}, {hi}]")))
    }

    fn positive(&self, s: &str, k: &str, v: f64) -> Result<(), ScenarioError> {
        if v > 0.0 && v.is_finite() {
            return Ok(());
        }
        Err(self.invalid(s, k, v, "must be a finite number > 0"))
    }

    fn finite(&self, s: &str, k: &str, v: f64) -> Result<(), ScenarioError> {
        if v.is_finite() {
            return Ok(());
        }
        Err(self.invalid(s, k, v, "must be a finite number"))
    }
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The dotted key (`section.key`) set on 1-based `line`, if any.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.split('#').next().unwrap_or("").trim();
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        }
        if i + 1 == line {
            let (key, _) = l.split_once('=')?;
            let key = key.trim();
            return Some(if section.is_empty() {
                key.into()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    None
}

/// The 1-based line where `key` is set inside `[section]`, if it is.
pub fn find_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_string();
            continue;
        }
        let Some((k, _)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let dotted = format!("{section}.{key}");
        if (current == section && k == key) || (current.is_empty() && k == dotted) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(&Source {
            file: "s.toml".into(),
            text: text.into(),
        })
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_file_is_the_builtin_default() {
        assert_eq!(parse("").unwrap(), Scenario::default());
    }

    #[test]
    fn the_default_round_trips_through_toml() {
        let s = Scenario::default();
        assert_eq!(parse(&s.to_toml()).unwrap(), s);
    }

    #[test]
    fn unknown_keys_name_the_line_and_the_key() {
        let m = message("[task]\nd = 3\ncolour = 2\n");
        assert!(m.starts_with("s.toml:3:"), "{m}");
        assert!(m.contains("colour"), "{m}");
    }

    #[test]
    fn wrong_types_name_the_line() {
        let m = message("[flow]\n\nrtol = \"small\"\n");
        assert!(m.starts_with("s.toml:3:"), "{m}");
    }

    #[test]
    fn out_of_range_values_name_key_value_line_and_range() {
        let cases = [
            (
                "[flow]\nrtol = -1e-8\n",
                "s.toml:2: key `flow.rtol` = -0.00000001",
                "> 0",
            ),
            (
                "[network]\nub = 0.0\n",
                "s.toml:2: key `network.ub` = 0",
                "> 0",
            ),
            (
                "[sgd]\nsamples = 100\nbatch = 200\n",
                "s.toml:3: key `sgd.batch` = 200",
                "[1, 100]",
            ),
            (
                "[sgd]\nprecision = \"f16\"\n",
                "s.toml:2: key `sgd.precision` = \"f16\"",
                "one of f64, f32",
            ),
            ("[task]\nc = 0.9\n", "s.toml:2: key `task.c` = 0.9", "c_max"),
            ("[task]\nd = 9\n", "s.toml:2: key `task.d` = 9", "[2, 6]"),
            ("[task]\ndim = 3\n", "s.toml:2: key `task.dim` = 3", "P - 1"),
            (
                "[network]\nactivations = [\"gelu\"]\n",
                "s.toml:2: key `network.activations` = \"gelu\"",
                "relu",
            ),
            (
                "[geometry]\nevery = 0\n",
                "s.toml:2: key `geometry.every` = 0",
                "at least 1",
            ),
            (
                "[geometry]\nsamples = 3\ncluster_angle = 200\n",
                "s.toml:3: key `geometry.cluster_angle` = 200",
                "[0, 180]",
            ),
            (
                "[flow]\ntimes = [0.0, 5.0, 2.0]\n",
                "s.toml:2: key `flow.times`",
                "increase",
            ),
        ];
        for (text, head, range) in cases {
            let m = message(text);
            assert!(m.starts_with(head), "{m}\n  expected to start with {head}");
            assert!(m.contains(range), "{m}\n  expected to mention {range}");
        }
    }

    #[test]
    fn dotted_keys_at_the_top_are_found_too() {
        assert_eq!(
            find_key("name = \"x\"\nflow.rtol = -1\n", "flow", "rtol"),
            Some(2)
        );
    }

    #[test]
    fn alignment_defaults_to_half_the_maximum() {
        let s = Scenario::default();
        assert!((s.alignment() - 0.5 * (1.0f64 / 7.0).sqrt()).abs() < 1e-15);
    }
}
