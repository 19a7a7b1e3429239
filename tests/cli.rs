//! The command line from the outside: runs, files, errors, interruption.

use std::path::Path;
use std::time::Duration;

use hdf5_pure::File;

mod common;
use common::{attrs, datasets, interrupt, repflow, run_ok, run_quiet, scenario};

const SMALL: &str = "[task]\nd = 3\ndim = 10\n[network]\nhidden = 16\nactivations = [\"tanh\", \"relu\"]\n\
                     [flow]\nt_end = 20.0\nsaves = 8\n\
                     [sgd]\nsamples = 128\nbatch = 16\nepochs = 8\n\
                     [seeds]\nnetworks = [0, 1]\n";

fn attr_text(file: &File, group: &str, key: &str) -> String {
    attrs(file, group)[key].as_str().unwrap().to_string()
}

#[test]
fn a_small_scenario_runs_end_to_end_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "small.toml", SMALL);
    let out = dir.path().join("small.h5");
    let stdout = run_quiet("run", &s, &out, &[]);
    assert!(stdout.contains("complete"), "{stdout}");

    let file = File::open(&out).unwrap();
    assert_eq!(attr_text(&file, "/", "format"), "repflow");
    assert_eq!(attr_text(&file, "/", "status"), "complete");
    assert!(attr_text(&file, "/", "scenario").contains("[sgd]"));
    let ds = datasets(&out);
    assert_eq!(ds["/task/inputs"].0, vec![8, 10]);
    assert_eq!(ds["/task/targets"].0, vec![8, 1]);
    assert_eq!(ds["/task/latents"].0, vec![8, 3]);
    for run in ["tanh-s0", "tanh-s1", "relu-s0", "relu-s1"] {
        assert_eq!(ds[&format!("/runs/{run}/init/W")].0, vec![16, 10]);
        assert_eq!(ds[&format!("/runs/{run}/init/J")].0, vec![1, 16]);
        let t = ds[&format!("/runs/{run}/flow/t")].0[0];
        assert_eq!(ds[&format!("/runs/{run}/flow/W")].0, vec![t, 16, 10]);
        assert_eq!(ds[&format!("/runs/{run}/flow/hidden")].0, vec![t, 8, 16]);
        let ts = ds[&format!("/runs/{run}/sgd/t")].0[0];
        assert_eq!(ds[&format!("/runs/{run}/sgd/step")].0, vec![ts]);
        assert_eq!(ds[&format!("/runs/{run}/sgd/b")].0, vec![ts, 16]);
    }
    // Tanh and ReLU of one seed start from the same weights.
    assert_eq!(ds["/runs/tanh-s0/init/W"], ds["/runs/relu-s0/init/W"]);
    assert_ne!(ds["/runs/tanh-s0/init/W"], ds["/runs/tanh-s1/init/W"]);
    // The flow starts at the initial weights.
    let w0 = &ds["/runs/tanh-s0/flow/W"].1.numbers()[..160];
    assert_eq!(w0, ds["/runs/tanh-s0/init/W"].1.numbers());

    let summary = run_ok(&["inspect", out.to_str().unwrap()]);
    assert!(summary.contains("status: complete"), "{summary}");
    assert!(
        summary.contains("tanh-s1") && summary.contains("sgd"),
        "{summary}"
    );
}

#[test]
fn the_same_scenario_gives_identical_datasets_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "small.toml", SMALL);
    let (a, b) = (dir.path().join("a.h5"), dir.path().join("b.h5"));
    run_quiet("run", &s, &a, &["-j", "1"]);
    run_quiet("run", &s, &b, &["-j", "2"]);
    let (da, db) = (datasets(&a), datasets(&b));
    assert!(da.len() > 40, "{} datasets", da.len());
    for (name, (shape, values)) in &da {
        let (shape_b, values_b) = &db[name];
        assert_eq!(shape, shape_b, "{name}");
        assert!(values == values_b, "{name} differs between -j 1 and -j 2");
    }
}

#[test]
fn bad_scenarios_are_rejected_with_file_line_key_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[task]\nd = 3\ncolour = 1\n", ":3:", "colour"),
        ("[flow]\nrtol = \"tight\"\n", ":2:", "rtol"),
        ("[flow]\natol = -1.0\n", ":2: key `flow.atol` = -1", "> 0"),
        (
            "[network]\nub = -0.5\n",
            ":2: key `network.ub` = -0.5",
            "> 0",
        ),
        (
            "[sgd]\nsamples = 10\nbatch = 64\n",
            ":3: key `sgd.batch` = 64",
            "[1, 10]",
        ),
        (
            "[task]\nd = 3\nc = 0.5\n",
            ":3: key `task.c` = 0.5",
            "c_max",
        ),
        (
            "[seeds]\nnetworks = [1, 1]\n",
            ":2: key `seeds.networks`",
            "distinct",
        ),
    ];
    for (i, (text, place, hint)) in cases.iter().enumerate() {
        let s = scenario(dir.path(), &format!("bad{i}.toml"), text);
        let out_path = dir.path().join(format!("bad{i}.h5"));
        for args in [
            vec!["validate", s.to_str().unwrap()],
            vec!["run", s.to_str().unwrap(), "-o", out_path.to_str().unwrap()],
        ] {
            let out = repflow().args(&args).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{text:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            let expect = format!("bad{i}.toml{place}");
            assert!(err.contains(&expect), "{err}\n  should contain {expect}");
            assert!(err.contains(hint), "{err}\n  should mention {hint}");
        }
        assert!(!out_path.exists(), "no work starts on a bad scenario");
    }
}

#[test]
fn an_existing_output_is_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "small.toml", SMALL);
    let out = dir.path().join("o.h5");
    std::fs::write(&out, b"precious").unwrap();
    let r = repflow()
        .args(["run", s.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    run_quiet("run", &s, &out, &["--force"]);
    assert!(File::open(&out).is_ok());
}

#[test]
fn an_interrupted_run_leaves_a_readable_file_that_says_how_far_it_got() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough SGD that the interrupt lands mid-run.
    let text = "[network]\nactivations = [\"tanh\"]\nhidden = 64\n[flow]\nenabled = false\n\
                [sgd]\nepochs = 100000\n[seeds]\nnetworks = [0, 1]\n";
    let s = scenario(dir.path(), "long.toml", text);
    let out = dir.path().join("long.h5");
    let args = [
        "-q",
        "run",
        s.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    interrupt(&args, &out, Duration::from_millis(800));

    let file = File::open(&out).unwrap();
    assert_eq!(attr_text(&file, "/", "status"), "interrupted");
    for run in ["tanh-s0", "tanh-s1"] {
        let reason = attr_text(&file, &format!("runs/{run}/sgd"), "stop_reason");
        assert_eq!(reason, "interrupted");
        let g = file.group(&format!("runs/{run}/sgd")).unwrap();
        let t_reached = g.attrs().unwrap()["t_reached"].as_f64().unwrap();
        assert!(t_reached > 0.0, "{run} got somewhere before the interrupt");
        let t = file
            .dataset(&format!("runs/{run}/sgd/t"))
            .unwrap()
            .read_f64()
            .unwrap();
        assert_eq!(*t.last().unwrap(), t_reached, "the state reached is saved");
    }
    assert!(!dir.path().join("long.h5.partial").exists());
}

#[test]
fn a_run_that_stops_early_exits_3_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[network]\nactivations = [\"relu\"]\n[flow]\nmax_steps = 50\nkinks = \"plain\"\n\
                [sgd]\nenabled = false\n";
    let s = scenario(dir.path(), "budget.toml", text);
    let out = dir.path().join("budget.h5");
    let args = [
        "-q",
        "run",
        s.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let r = repflow().args(args).output().unwrap();
    assert_eq!(r.status.code(), Some(3));
    let summary = run_ok(&["inspect", out.to_str().unwrap()]);
    assert!(summary.contains("status: incomplete"), "{summary}");
    assert!(summary.contains("step_budget"), "{summary}");
}

#[test]
fn inspect_rejects_a_file_that_is_not_a_repflow_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.h5");
    let mut fb = hdf5_pure::FileBuilder::new();
    fb.create_dataset("d").with_f64_data(&[1.0]);
    fb.write(&path).unwrap();
    let out = repflow()
        .args(["inspect", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a repflow file"));
}

#[test]
fn the_shipped_default_scenario_is_the_builtin_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/default.toml");
    let (from_file, _) = repflow::scenario::Scenario::load(&path).unwrap();
    assert_eq!(from_file, repflow::scenario::Scenario::builtin().0);
}

#[test]
fn every_shipped_scenario_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            run_ok(&["validate", path.to_str().unwrap()]);
            count += 1;
        }
    }
    assert!(count >= 3);
}

#[test]
fn the_csv_summary_carries_end_of_run_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "small.toml", SMALL);
    let out = dir.path().join("small.h5");
    run_quiet("run", &s, &out, &[]);
    let csv = std::fs::read_to_string(dir.path().join("small.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "one row per run");
    for kind in ["flow", "sgd"] {
        for row in &rows {
            let a_y: f64 = row[col(&format!("{kind}_target_alignment"))]
                .parse()
                .unwrap();
            let ps: f64 = row[col(&format!("{kind}_parallelism"))].parse().unwrap();
            assert!((0.0..=1.0).contains(&a_y), "{kind} a_y {a_y}");
            assert!((-1.0..=1.0).contains(&ps), "{kind} PS {ps}");
        }
    }
    // The CSV agrees with the file it summarises.
    let file = File::open(&out).unwrap();
    let stored = file
        .dataset("runs/tanh-s0/flow/geometry/target_alignment")
        .unwrap()
        .read_f64()
        .unwrap();
    let row = rows.iter().find(|r| r[col("run")] == "tanh-s0").unwrap();
    let a_y: f64 = row[col("flow_target_alignment")].parse().unwrap();
    assert_eq!(a_y, *stored.last().unwrap());
}

#[test]
fn a_task_file_from_data_trains_to_full_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/four_points.csv");
    let text = format!(
        "[task]\nkind = \"file\"\nfile = {:?}\n[network]\nhidden = 8\n\
         [flow]\nt_end = 200.0\nsaves = 6\n[sgd]\nenabled = false\n",
        data.display().to_string()
    );
    let s = scenario(dir.path(), "file.toml", &text);
    let out = dir.path().join("file.h5");
    run_quiet("run", &s, &out, &[]);
    let ds = datasets(&out);
    assert_eq!(ds["/task/inputs"].0, vec![4, 3]);
    for run in ["tanh-s0", "relu-s0"] {
        let acc = ds[&format!("/runs/{run}/flow/accuracy")].1.numbers();
        assert_eq!(*acc.last().unwrap(), 1.0, "{run} separates the four points");
    }
}
