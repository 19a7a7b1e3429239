//! Helpers shared by the command-line test binaries.
//!
//! Each binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdf5_pure::{AttrValue, File};

/// The `repflow` binary under test.
pub fn repflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_repflow"))
}

/// Writes a scenario file `name` into `dir` and returns its path.
pub fn scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `repflow` with `args`, asserts success, returns its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = repflow().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "repflow {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `repflow -q <command> <scenario> -o <out> <extra...>`, asserts
/// success, returns its stdout.
pub fn run_quiet(command: &str, scenario: &Path, out: &Path, extra: &[&str]) -> String {
    let (s, o) = (scenario.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["-q", command, s, "-o", o];
    args.extend_from_slice(extra);
    run_ok(&args)
}

/// The values of a dataset: numbers (integers widened) or strings.
/// Numbers compare by their bits, so that `NaN` equals itself and a
/// comparison of two files is bit for bit.
#[derive(Debug)]
pub enum Values {
    Numbers(Vec<f64>),
    Text(Vec<String>),
}

impl PartialEq for Values {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Values::Numbers(a), Values::Numbers(b)) => {
                a.len() == b.len()
                    && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (Values::Text(a), Values::Text(b)) => a == b,
            _ => false,
        }
    }
}

impl Values {
    /// The numbers of a numeric dataset.
    pub fn numbers(&self) -> &[f64] {
        match self {
            Values::Numbers(v) => v,
            Values::Text(_) => panic!("a string dataset"),
        }
    }
}

/// Every dataset of a file, by path, with its shape.
pub fn datasets(path: &Path) -> BTreeMap<String, (Vec<u64>, Values)> {
    let file = File::open(path).unwrap();
    let mut all = BTreeMap::new();
    let mut stack = vec![String::new()];
    while let Some(prefix) = stack.pop() {
        let group = if prefix.is_empty() {
            file.root()
        } else {
            file.group(&prefix).unwrap()
        };
        for name in group.datasets().unwrap() {
            let full = format!("{prefix}/{name}");
            let ds = file.dataset(&full).unwrap();
            let values = match ds.read_f64() {
                Ok(v) => Values::Numbers(v),
                Err(_) => match ds.read_i64() {
                    Ok(v) => Values::Numbers(v.iter().map(|&x| x as f64).collect()),
                    Err(_) => Values::Text(ds.read_string().unwrap()),
                },
            };
            all.insert(full, (ds.shape().unwrap(), values));
        }
        for name in group.groups().unwrap() {
            stack.push(format!("{prefix}/{name}"));
        }
    }
    all
}

/// The attributes of a group (`/` for the root).
pub fn attrs(file: &File, group: &str) -> HashMap<String, AttrValue> {
    if group == "/" {
        file.root().attrs().unwrap()
    } else {
        file.group(group).unwrap().attrs().unwrap()
    }
}

/// Starts `repflow args`, waits until it has written `out` and then
/// `after` longer, interrupts it with SIGINT and checks that it exits
/// with 130.
pub fn interrupt(args: &[&str], out: &Path, after: Duration) {
    let mut child = repflow()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !out.exists() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(after);
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
}
