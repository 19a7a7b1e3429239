//! Sweeps: one scenario file, many points of parameter space.
//!
//! A scenario file may hold a `[sweep]` table whose keys are dotted
//! scenario keys (`"task.c_fraction"`, `"network.activations"`, ...) and
//! whose values are lists. The sweep is the Cartesian product of those
//! lists, in the order the keys are written, the first key varying
//! slowest. Each point is the file without `[sweep]`, with the point's
//! values set at their keys, and is deserialised and validated by the
//! ordinary scenario machinery; a bad point is reported with the sweep
//! key, the point's values and the scenario's own message.
//!
//! A file without `[sweep]` is a plain scenario: a study of one plan.

pub mod csv;
pub mod dry_run;
pub mod inspect;
pub mod output;
pub mod resume;

pub mod run;

use std::fmt;
use std::path::Path;

use toml::{Table, Value};

use crate::plan::{Plan, PlanError};
use crate::scenario::{Scenario, ScenarioError, Source};

/// An error in a sweep, or in one of its points.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The scenario itself (a plain file, or the TOML syntax) is wrong.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A plain scenario did not resolve.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A `[sweep]` key or value is wrong.
    #[error("{file}:{line}: sweep key `{key}`: {problem}")]
    Key {
        /// The scenario file.
        file: String,
        /// 1-based line of the key.
        line: usize,
        /// The sweep key, as written.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// One point of the sweep is not a valid scenario.
    #[error("sweep point {point} ({values}): {message}")]
    Point {
        /// The point's name, `p0003`.
        point: String,
        /// The point's values, `task.c_fraction = 0.5, ...`.
        values: String,
        /// The scenario's or the plan's message.
        message: String,
    },
}

/// One swept key with its values.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepKey {
    /// The dotted scenario key, e.g. `task.c_fraction`.
    pub key: String,
    /// Its values, in the order written.
    pub values: Vec<Value>,
}

/// One point of a sweep: its values and its resolved plan.
#[derive(Clone, Debug)]
pub struct Point {
    /// The point's name and group, `p0000`, `p0001`, ...
    pub name: String,
    /// One value per swept key, in the order of the keys.
    pub values: Vec<Value>,
    /// The resolved plan.
    pub plan: Plan,
}

/// What a scenario file describes: one plan, or a sweep of plans.
#[derive(Clone, Debug)]
pub struct Study {
    /// The file and its text.
    pub source: Source,
    /// The swept keys; empty for a plain scenario.
    pub keys: Vec<SweepKey>,
    /// The points; one (named `p0000`, no values) for a plain scenario.
    pub points: Vec<Point>,
}

impl Study {
    /// Whether the file has a `[sweep]` table.
    pub fn is_sweep(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The output file named by the scenario (the same for every point).
    pub fn output(&self) -> &Path {
        &self.points[0].plan.output
    }

    /// The number of runs (networks) over all points.
    pub fn runs(&self) -> usize {
        self.points.iter().map(|p| p.plan.runs.len()).sum()
    }

    /// A plain scenario as a study of one point.
    pub fn plain(plan: Plan) -> Study {
        Study {
            source: plan.source.clone(),
            keys: vec![],
            points: vec![Point {
                name: point_name(0),
                values: vec![],
                plan,
            }],
        }
    }

    /// Reads a scenario file, with or without `[sweep]`.
    pub fn load(path: &Path) -> Result<Study, SweepError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
                file: file.clone(),
                source,
            })?;
        Study::parse(Source { file, text })
    }

    /// Parses scenario text, with or without `[sweep]`, and resolves
    /// every point.
    pub fn parse(src: Source) -> Result<Study, SweepError> {
        let mut table: Table = match toml::from_str(&src.text) {
            Ok(t) => t,
            // The scenario parser gives the same syntax error with its
            // line and key.
            Err(_) => return Err(Scenario::parse(&src).unwrap_err().into()),
        };
        let Some(sweep) = table.remove("sweep") else {
            let scenario = Scenario::parse(&src)?;
            return Ok(Study::plain(Plan::build(scenario, src)?));
        };

        let keys = sweep_keys(&src, sweep)?;
        let mut points = Vec::new();
        for (index, values) in product(&keys).into_iter().enumerate() {
            let plan = point_plan(&src, &table, &keys, &values, index)?;
            points.push(Point {
                name: point_name(index),
                values,
                plan,
            });
        }
        Ok(Study {
            source: src,
            keys,
            points,
        })
    }

    /// `key = value, ...` for one point.
    pub fn describe(&self, point: &Point) -> String {
        describe_values(&self.keys, &point.values)
    }
}

/// The group name of point `index`: `p0000`, `p0001`, ...
pub fn point_name(index: usize) -> String {
    format!("p{index:04}")
}

fn describe_values(keys: &[SweepKey], values: &[Value]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{} = {}", k.key, ShowValue(v)))
        .collect();
    parts.join(", ")
}

/// A TOML value as it would be written in the file.
pub struct ShowValue<'a>(pub &'a Value);

impl fmt::Display for ShowValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::String(s) => write!(f, "{s:?}"),
            Value::Array(items) => {
                let parts: Vec<String> =
                    items.iter().map(|v| ShowValue(v).to_string()).collect();
                write!(f, "[{}]", parts.join(", "))
            }
            other => write!(f, "{other}"),
        }
    }
}

/// Sections and keys that cannot be swept: one file holds every point.
const NOT_SWEPT: [&str; 2] = ["name", "output"];

fn sweep_keys(src: &Source, sweep: Value) -> Result<Vec<SweepKey>, SweepError> {
    let err = |key: &str, problem: String| SweepError::Key {
        file: src.file.clone(),
        line: sweep_line(&src.text, key),
        key: key.to_string(),
        problem,
    };
    let Value::Table(sweep) = sweep else {
        return Err(err("sweep", "`sweep` must be a table of lists".into()));
    };
    if sweep.is_empty() {
        return Err(err("sweep", "name at least one key to sweep".into()));
    }

    let known = known_keys();
    let mut keys = Vec::new();
    for (dotted, value) in flatten("", sweep) {
        if NOT_SWEPT.contains(&dotted.split('.').next().unwrap_or("")) {
            return Err(err(
                &dotted,
                "one file holds every point: not sweepable".into(),
            ));
        }
        if !known.contains(&dotted) {
            let problem = "not a scenario key; write it dotted, as \
                           \"section.key\" (e.g. \"task.c_fraction\")";
            return Err(err(&dotted, problem.into()));
        }
        let Value::Array(values) = value else {
            let problem = format!("{} is not a list of values", ShowValue(&value));
            return Err(err(&dotted, problem));
        };
        if values.is_empty() {
            return Err(err(&dotted, "the list of values is empty".into()));
        }
        keys.push(SweepKey {
            key: dotted,
            values,
        });
    }

    // The table does not keep the written order; the lines do.
    keys.sort_by_key(|k| sweep_line(&src.text, &k.key));
    Ok(keys)
}

/// The entries of a sweep table by dotted key: `"task.c" = [...]` and
/// `task.c = [...]` (a nested table) both give `task.c`.
fn flatten(prefix: &str, table: Table) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (key, value) in table {
        let dotted = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Table(t) => out.extend(flatten(&dotted, t)),
            other => out.push((dotted, other)),
        }
    }
    out
}

/// Every `section.key` (and top-level key) a scenario has.
fn known_keys() -> Vec<String> {
    let mut s = Scenario::default();
    s.task.c = Some(0.0);
    s.task.file = Some(String::new());
    s.init.file = Some(String::new());
    s.flow.times = Some(vec![]);
    s.sgd.epochs = Some(1);
    s.output.path = Some(String::new());
    let table: Table = toml::from_str(&s.to_toml()).expect("the scenario serialises");
    let mut keys = Vec::new();
    for (section, value) in table {
        match value {
            Value::Table(t) => keys.extend(t.keys().map(|k| format!("{section}.{k}"))),
            _ => keys.push(section),
        }
    }
    keys
}

/// The line of `key` inside `[sweep]` (quoted or not), or of `[sweep]`.
fn sweep_line(text: &str, key: &str) -> usize {
    let mut section = String::new();
    let mut header = 1;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            if section == "sweep" {
                header = i + 1;
            }
            continue;
        }
        let Some((k, _)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"').trim_matches('\'');
        let nested = section
            .strip_prefix("sweep.")
            .is_some_and(|s| format!("{s}.{k}") == key);
        if (section == "sweep" && k == key) || nested {
            return i + 1;
        }
    }
    header
}

/// Every combination of the keys' values, the first key slowest.
fn product(keys: &[SweepKey]) -> Vec<Vec<Value>> {
    let mut points = vec![vec![]];
    for key in keys {
        let mut next = Vec::with_capacity(points.len() * key.values.len());
        for prefix in &points {
            for v in &key.values {
                let mut p: Vec<Value> = prefix.clone();
                p.push(v.clone());
                next.push(p);
            }
        }
        points = next;
    }
    points
}

/// The base table with one point's values set, validated and resolved.
fn point_plan(
    src: &Source,
    base: &Table,
    keys: &[SweepKey],
    values: &[Value],
    index: usize,
) -> Result<Plan, SweepError> {
    let mut table = base.clone();
    for (key, value) in keys.iter().zip(values) {
        set_dotted(&mut table, &key.key, value.clone());
    }
    let fail = |message: String| SweepError::Point {
        point: point_name(index),
        values: describe_values(keys, values),
        message,
    };

    let scenario: Scenario = match Value::Table(table).try_into() {
        Ok(s) => s,
        Err(e) => {
            let e: toml::de::Error = e;
            let key = culprit(base, keys, values).unwrap_or("sweep");
            let line = sweep_line(&src.text, key);
            let msg = e.message().trim().to_string();
            return Err(fail(format!("{}:{line}: key `{key}`: {msg}", src.file)));
        }
    };
    let at_sweep_key = |mut e: ScenarioError| {
        if let ScenarioError::Invalid { line, key, .. } = &mut e
            && keys.iter().any(|k| k.key == *key)
        {
            *line = Some(sweep_line(&src.text, key));
        }
        e
    };
    scenario
        .validate(src)
        .map_err(|e| fail(at_sweep_key(e).to_string()))?;
    Plan::build(scenario, src.clone()).map_err(|e| fail(e.to_string()))
}

/// The first swept key whose value alone does not deserialise.
fn culprit<'a>(base: &Table, keys: &'a [SweepKey], values: &[Value]) -> Option<&'a str> {
    keys.iter().zip(values).find_map(|(key, value)| {
        let mut table = base.clone();
        set_dotted(&mut table, &key.key, value.clone());
        let bad = Value::Table(table).try_into::<Scenario>().is_err();
        bad.then_some(key.key.as_str())
    })
}

fn set_dotted(table: &mut Table, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
        }
        Some((section, rest)) => {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(t) = entry {
                t.insert(rest.to_string(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[task]\ndim = 10\n[network]\nhidden = 4\n[flow]\nt_end = 5.0\n";

    fn study(sweep: &str) -> Result<Study, SweepError> {
        Study::parse(Source {
            file: "s.toml".into(),
            text: format!("{BASE}{sweep}"),
        })
    }

    #[test]
    fn points_are_the_product_with_the_first_key_slowest() {
        let s = study(
            "[sweep]\n\"network.ub\" = [1.0, 2.0]\n\
             \"network.activations\" = [[\"tanh\"], [\"relu\"], [\"bounded_relu\"]]\n",
        )
        .unwrap();
        assert_eq!(s.points.len(), 6);
        let names: Vec<&str> = s.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(names, ["network.ub", "network.activations"]);
        let ubs: Vec<f64> = s
            .points
            .iter()
            .map(|p| p.plan.scenario.network.ub)
            .collect();
        assert_eq!(ubs, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        let acts: Vec<&str> = s
            .points
            .iter()
            .map(|p| p.plan.scenario.network.activations[0].as_str())
            .collect();
        assert_eq!(acts, ["tanh", "relu", "bounded_relu"].repeat(2));
        assert_eq!(s.points[5].name, "p0005");
        // The base keys stay as written at every point.
        assert!(s.points.iter().all(|p| p.plan.scenario.network.hidden == 4));
    }

    #[test]
    fn the_written_order_of_keys_wins_over_the_alphabet() {
        let s = study(
            "[sweep]\n\"task.c_fraction\" = [0.0, 1.0]\n\"init.bias_shift\" = [0.5]\n",
        )
        .unwrap();
        assert_eq!(s.keys[0].key, "task.c_fraction");
        assert_eq!(s.points[1].plan.scenario.task.c_fraction, 1.0);
        assert_eq!(s.points[1].plan.scenario.init.bias_shift, 0.5);
    }

    #[test]
    fn a_file_without_a_sweep_is_one_plain_point() {
        let s = study("").unwrap();
        assert!(!s.is_sweep());
        assert_eq!(s.points.len(), 1);
    }

    #[test]
    fn bad_sweep_keys_name_the_line_the_key_and_the_problem() {
        let cases = [
            (
                "[sweep]\n\"task.colour\" = [1]\n",
                "s.toml:8: sweep key `task.colour`",
                "not a scenario key",
            ),
            (
                "[sweep]\n\"sgd.eta\" = 0.1\n",
                "s.toml:8: sweep key `sgd.eta`",
                "not a list",
            ),
            (
                "[sweep]\n\"sgd.eta\" = []\n",
                "s.toml:8: sweep key `sgd.eta`",
                "empty",
            ),
            (
                "[sweep]\n\"output.path\" = [\"a.h5\"]\n",
                "s.toml:8: sweep key `output.path`",
                "one file",
            ),
        ];
        for (text, head, problem) in cases {
            let m = study(text).unwrap_err().to_string();
            assert!(m.starts_with(head), "{m}\n  expected to start with {head}");
            assert!(m.contains(problem), "{m}\n  expected to mention {problem}");
        }
    }

    #[test]
    fn a_bad_point_names_the_point_its_values_and_the_sweep_line() {
        let m = study("[sweep]\n\"sgd.eta\" = [0.1, -0.1]\n")
            .unwrap_err()
            .to_string();
        assert!(m.starts_with("sweep point p0001 (sgd.eta = -0.1)"), "{m}");
        assert!(m.contains("s.toml:8: key `sgd.eta` = -0.1: must be"), "{m}");

        let m = study("[sweep]\n\"network.hidden\" = [\"many\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("s.toml:8: key `network.hidden`: invalid type"),
            "{m}"
        );
    }
}
