//! Sweeps from the outside: points, the index, the CSV, dry runs,
//! interruption and `--resume`, and the scenario files under scenarios/.

use std::path::Path;
use std::time::Duration;

use hdf5_pure::File;

mod common;
use common::{Values, attrs, datasets, interrupt, repflow, run_ok, run_quiet, scenario};

const SWEEP: &str = "[task]\nd = 3\ndim = 10\n[network]\nhidden = 16\n\
                     [flow]\nt_end = 20.0\nsaves = 8\n\
                     [sgd]\nsamples = 128\nbatch = 16\nepochs = 4\n\
                     [seeds]\nnetworks = [0, 1]\n\
                     [sweep]\n\"task.c_fraction\" = [0.0, 1.0]\n\
                     \"network.activations\" = [[\"tanh\"], [\"bounded_relu\"]]\n";

#[test]
fn a_sweep_writes_one_group_per_point_an_index_and_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "sweep.toml", SWEEP);
    let out = dir.path().join("sweep.h5");
    run_quiet("sweep", &s, &out, &[]);

    let ds = datasets(&out);
    let c = &ds["/sweep/table/task.c_fraction"].1;
    assert_eq!(
        *c,
        Values::Numbers(vec![0.0, 0.0, 1.0, 1.0]),
        "the first key varies slowest"
    );
    let acts = Values::Text(
        [
            "[\"tanh\"]",
            "[\"bounded_relu\"]",
            "[\"tanh\"]",
            "[\"bounded_relu\"]",
        ]
        .map(String::from)
        .to_vec(),
    );
    assert_eq!(ds["/sweep/table/network.activations"].1, acts);
    assert_eq!(
        ds["/sweep/table/point"].1,
        Values::Text(
            ["p0000", "p0001", "p0002", "p0003"]
                .map(String::from)
                .to_vec()
        )
    );
    for (p, run) in [("p0000", "tanh-s0"), ("p0003", "bounded_relu-s1")] {
        assert_eq!(ds[&format!("/points/{p}/task/inputs")].0, vec![8, 10]);
        assert_eq!(
            ds[&format!("/points/{p}/runs/{run}/init/W")].0,
            vec![16, 10]
        );
        assert!(ds.contains_key(&format!("/points/{p}/runs/{run}/sgd/loss")));
    }
    // Each point's task is built from its own alignment.
    assert_ne!(
        ds["/points/p0000/task/inputs"],
        ds["/points/p0002/task/inputs"]
    );
    let file = File::open(&out).unwrap();
    let a = attrs(&file, "points/p0002");
    assert_eq!(a["task.c_fraction"].as_f64(), Some(1.0));
    assert_eq!(a["network.activations"].as_str(), Some("[\"tanh\"]"));
    assert_eq!(attrs(&file, "/")["status"].as_str(), Some("complete"));

    let csv = std::fs::read_to_string(dir.path().join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 4 * 2, "a header and one row per run");
    assert!(lines[0].starts_with("point,task.c_fraction,network.activations,run,"));
    assert!(
        lines[8].starts_with("p0003,1.0,\"[\"\"bounded_relu\"\"]\",bounded_relu-s1,")
    );
    assert!(lines[8].contains(",completed,"), "{}", lines[8]);

    let summary = run_ok(&["inspect", out.to_str().unwrap()]);
    assert!(
        summary.contains("== p0003: task.c_fraction = 1"),
        "{summary}"
    );
}

#[test]
fn a_dry_run_lists_the_points_and_the_work_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "sweep.toml", SWEEP);
    let out = run_ok(&["sweep", s.to_str().unwrap(), "--dry-run"]);
    assert!(out.contains("4 points"), "{out}");
    assert!(out.contains("p0003   1.0"), "{out}");
    // 4 points x 2 seeds; 8 saved times each; 4 epochs of 8 steps.
    assert!(out.contains("work: 8 runs"), "{out}");
    assert!(out.contains("64 saved states"), "{out}");
    assert!(out.contains("sgd: 256 steps"), "{out}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_bad_sweep_is_rejected_before_any_work_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        "bad.toml",
        "[sweep]\n\"sgd.eta\" = [0.1]\n\"network.ub\" = [1.0, 0.0]\n",
    );
    let out_path = dir.path().join("bad.h5");
    let r = repflow()
        .args([
            "sweep",
            s.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("sweep point p0001 (sgd.eta = 0.1, network.ub = 0.0)"),
        "{err}"
    );
    assert!(err.contains("bad.toml:3: key `network.ub` = 0"), "{err}");
    assert!(!out_path.exists());
}

#[test]
fn an_interrupted_sweep_resumes_to_the_same_datasets_as_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    // Two quick points, then two long ones that the interrupt lands in;
    // with the weights kept at the ends only and geometry measured, as
    // the study files do: kept runs keep their geometry series.
    let text = "[output]\nends_only = true\n[geometry]\nevery = 2\n\
                [task]\nd = 3\ndim = 10\n\
                [network]\nhidden = 16\nactivations = [\"tanh\"]\n\
                [flow]\nt_end = 20.0\nsaves = 8\n[sgd]\nsamples = 128\nbatch = 16\n\
                [seeds]\nnetworks = [0, 1]\n\
                [sweep]\n\"sgd.epochs\" = [4, 50000]\n\"task.c_fraction\" = [0.5, 1.0]\n";
    let s = scenario(dir.path(), "long.toml", text);
    let (out, clean) = (dir.path().join("long.h5"), dir.path().join("clean.h5"));
    let args = [
        "-q",
        "run",
        s.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-j",
        "1",
    ];
    interrupt(&args, &out, Duration::from_millis(700));

    let file = File::open(&out).unwrap();
    assert_eq!(attrs(&file, "/")["status"].as_str(), Some("interrupted"));
    let quick = attrs(&file, "points/p0000/runs/tanh-s1/sgd");
    assert_eq!(quick["stop_reason"].as_str(), Some("completed"));
    let interrupted = ["p0002", "p0003"].iter().any(|p| {
        ["tanh-s0", "tanh-s1"].iter().any(|r| {
            let a = attrs(&file, &format!("points/{p}/runs/{r}"));
            let sgd = a["status"].as_str() == Some("finished")
                && attrs(&file, &format!("points/{p}/runs/{r}/sgd"))["stop_reason"]
                    .as_str()
                    == Some("interrupted");
            sgd || a["status"].as_str() == Some("pending")
        })
    });
    assert!(
        interrupted,
        "the interrupt landed before the long runs ended"
    );
    let seconds = quick["seconds"].as_f64().unwrap();
    drop(file);

    let mut resume = args.to_vec();
    resume.push("--resume");
    run_ok(&resume);
    run_quiet("run", &s, &clean, &[]);

    let file = File::open(&out).unwrap();
    assert_eq!(attrs(&file, "/")["status"].as_str(), Some("complete"));
    let kept = attrs(&file, "points/p0000/runs/tanh-s1/sgd");
    assert_eq!(
        kept["seconds"].as_f64(),
        Some(seconds),
        "a finished run is kept"
    );
    // A kept run's attributes come back as written, timings aside.
    let clean_file = File::open(&clean).unwrap();
    for part in ["flow", "sgd"] {
        let group = format!("points/p0000/runs/tanh-s1/{part}");
        let (mut a, mut b) = (attrs(&file, &group), attrs(&clean_file, &group));
        a.remove("seconds");
        b.remove("seconds");
        assert_eq!(a, b, "{group}");
    }
    drop(clean_file);
    let (resumed, clean) = (datasets(&out), datasets(&clean));
    assert_eq!(
        resumed.keys().collect::<Vec<_>>(),
        clean.keys().collect::<Vec<_>>()
    );
    assert!(resumed.len() > 60, "{} datasets", resumed.len());
    let kept_geometry = "/points/p0000/runs/tanh-s1/sgd/geometry/target_alignment";
    assert!(
        resumed.contains_key(kept_geometry),
        "{kept_geometry} missing"
    );
    for (name, value) in &clean {
        assert_eq!(&resumed[name], value, "{name} differs after --resume");
    }
}

/// Trajectories of the CI twins known to stop early, as (twin,
/// activation, trajectory, stop reason); every other trajectory must
/// complete. None at present: the Fig. 1 twin's ReLU flow, with its hidden
/// biases frozen at zero, completes since the event decision leaves the
/// frozen bias out of the velocities.
const KNOWN_STOPS: [(&str, &str, &str, &str); 0] = [];

/// The `task`/`runs` prefixes of a file: every point of a sweep, or the root.
fn plan_prefixes(file: &File) -> Vec<String> {
    let groups = file.root().groups().unwrap();
    if !groups.iter().any(|g| g == "points") {
        return vec![String::new()];
    }
    let points = file.group("points").unwrap().groups().unwrap();
    points.iter().map(|p| format!("points/{p}/")).collect()
}

fn series(file: &File, path: &str) -> Vec<f64> {
    file.dataset(path).unwrap().read_f64().unwrap()
}

#[test]
fn every_ci_twin_runs_and_tanh_learns_every_aligned_task() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let dir = tempfile::tempdir().unwrap();
    let mut twins = 0;
    for entry in std::fs::read_dir(root.join("ci")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let study = root.join("study").join(format!("{name}.toml"));
        assert!(
            study.exists() || root.join(format!("{name}.toml")).exists(),
            "{name}: a CI twin of no study file"
        );
        let out = dir.path().join(format!("{name}.h5"));
        let r = repflow()
            .args([
                "-q",
                "run",
                path.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let known: Vec<_> = KNOWN_STOPS.iter().filter(|k| k.0 == name).collect();
        let code = if known.is_empty() { 0 } else { 3 };
        assert_eq!(r.status.code(), Some(code), "{name}: {r:?}");

        let file = File::open(&out).unwrap();
        let mut aligned_tanh = 0;
        for prefix in plan_prefixes(&file) {
            let aligned = attrs(&file, &format!("{prefix}task"))["alignment"]
                .as_f64()
                .unwrap()
                > 1e-9;
            for run in file
                .group(&format!("{prefix}runs"))
                .unwrap()
                .groups()
                .unwrap()
            {
                let run_attrs = attrs(&file, &format!("{prefix}runs/{run}"));
                let activation = run_attrs["activation"].as_str().unwrap().to_string();
                for kind in ["flow", "sgd"] {
                    let g = format!("{prefix}runs/{run}/{kind}");
                    let reason = attrs(&file, &g)["stop_reason"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let expected = known
                        .iter()
                        .find(|k| k.1 == activation && k.2 == kind)
                        .map_or("completed", |k| k.3);
                    assert_eq!(reason, expected, "{name} {g}");
                    if !(aligned && activation == "tanh") {
                        continue;
                    }
                    let loss = series(&file, &format!("{g}/train_loss"));
                    assert!(loss.last() < loss.first(), "{name} {g}: {loss:?}");
                    if kind == "flow" {
                        let acc = series(&file, &format!("{g}/accuracy"));
                        assert_eq!(acc.last(), Some(&1.0), "{name} {g}");
                        aligned_tanh += 1;
                    }
                }
            }
        }
        assert!(aligned_tanh > 0, "{name}: no Tanh run on an aligned task");
        if name.starts_with("alignment_") {
            check_study_directions(&file, &name);
        }
        twins += 1;
    }
    assert_eq!(twins, 11);
}

/// The study's directions on an alignment twin, at every point with
/// `c > 0`: the seed-mean final target alignment of Tanh above ReLU's,
/// and ReLU's input alignment above Tanh's. For the flow on every twin;
/// for SGD on the `d = 3` twins, whose 20 short epochs already show them
/// (at `d = 5` they do not yet: the SGD there is too short to say).
fn check_study_directions(file: &File, name: &str) {
    check_directions(file, name, "flow");
    if name.starts_with("alignment_d3") {
        check_directions(file, name, "sgd");
    }
}

fn check_directions(file: &File, name: &str, kind: &str) {
    let end = |g: &str| *series(file, g).last().unwrap();
    for prefix in plan_prefixes(file) {
        let c = attrs(file, &format!("{prefix}task"))["alignment"]
            .as_f64()
            .unwrap();
        if c <= 1e-9 {
            continue;
        }
        let runs = file
            .group(&format!("{prefix}runs"))
            .unwrap()
            .groups()
            .unwrap();
        let mean = |act: &str, measure: &str| {
            let of: Vec<f64> = runs
                .iter()
                .filter(|r| r.starts_with(&format!("{act}-")))
                .map(|r| end(&format!("{prefix}runs/{r}/{kind}/geometry/{measure}")))
                .collect();
            of.iter().sum::<f64>() / of.len() as f64
        };
        let (ty, ry) = (
            mean("tanh", "target_alignment"),
            mean("relu", "target_alignment"),
        );
        let (tx, rx) = (
            mean("tanh", "input_alignment"),
            mean("relu", "input_alignment"),
        );
        assert!(
            ty > ry,
            "{name} {prefix} {kind}: target alignment tanh {ty} relu {ry}"
        );
        assert!(
            rx > tx,
            "{name} {prefix} {kind}: input alignment relu {rx} tanh {tx}"
        );
    }
}

#[test]
fn every_study_file_validates_and_says_what_it_reproduces_and_how_long() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/study");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        run_ok(&["validate", path.to_str().unwrap()]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# "), "{}: no comment", path.display());
        assert!(
            text.contains("# Takes about"),
            "{}: no timing",
            path.display()
        );
        assert!(text.contains("ends_only = true"), "{}", path.display());
        count += 1;
    }
    assert_eq!(count, 10);
}

#[test]
fn checkpoints_written_after_every_run_lose_no_result() {
    // Runs finishing on two threads while one of them rewrites the file:
    // every result handed in must reach the final file, the same as a
    // run that never checkpoints.
    use repflow::run::{PlanStatus, RunOptions};
    use repflow::scenario::Source;
    use repflow::sweep::{Study, run};
    use std::sync::atomic::AtomicBool;

    let text = "[task]\nd = 2\ndim = 6\n[network]\nhidden = 8\n\
                activations = [\"tanh\", \"relu\"]\n[flow]\nt_end = 5.0\nsaves = 4\n\
                [sgd]\nsamples = 64\nbatch = 16\nepochs = 3\n[geometry]\nenabled = false\n\
                [seeds]\nnetworks = [0, 1, 2]\n[sweep]\n\"task.c_fraction\" = [0.5, 1.0]\n";
    let src = Source {
        file: "checkpoints.toml".into(),
        text: text.into(),
    };
    let study = Study::parse(src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let mut written = Vec::new();
    for (name, every) in [("eager.h5", Duration::ZERO), ("never.h5", Duration::MAX)] {
        let opts = RunOptions {
            threads: 2,
            force: true,
            progress: false,
            checkpoint_every: every,
        };
        let out = dir.path().join(name);
        let kept = run::empty_results(&study);
        let status = run::execute(&study, &out, &opts, &stop, kept).unwrap();
        assert_eq!(status, PlanStatus::Complete, "{name}");
        written.push(datasets(&out));
    }
    assert!(written[0].len() > 50, "{} datasets", written[0].len());
    assert_eq!(written[0], written[1]);
}
