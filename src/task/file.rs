//! Tasks given as files: the inputs `[P, D]` and binary targets `[P, K]` of
//! `P` conditions, from an HDF5 file or a CSV file.
//!
//! HDF5: two two-dimensional datasets, by default `inputs` (`[P, D]`) and
//! `targets` (`[P, K]`); [`Hdf5Layout`] names other paths. Any numeric type
//! is read and converted to `f64`.
//!
//! CSV: comma-separated, one row per condition. Blank lines and lines that
//! start with `#` are skipped. The first remaining line is a header naming
//! every column: `x0` .. `x{D-1}` for the inputs and `y0` .. `y{K-1}` for
//! the targets, in any order, each exactly once (so the header fixes `D`
//! and `K`). Fields are trimmed of surrounding white space and parsed as
//! `f64`.
//!
//! Both formats are checked the same way: at least one condition, `D >= 1`
//! and `K >= 1`, the same number of conditions in inputs and targets,
//! finite inputs and targets in `{0, 1}`. Inputs are taken as they are, so
//! `|x_c|^2` is whatever the file holds. A file task has no latent bits;
//! its stored alignment is measured from the data.

use std::path::{Path, PathBuf};

use hdf5_pure::AttrValue;

use super::Task;

/// Why a task file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TaskFileError {
    /// The HDF5 file could not be opened.
    #[error("cannot open task file {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        source: hdf5_pure::Error,
    },
    /// A dataset is missing or unreadable.
    #[error("task file {}: cannot read dataset `{dataset}`: {source}", path.display())]
    Dataset {
        /// The file.
        path: PathBuf,
        /// The dataset's path in the file.
        dataset: String,
        /// The reader's error.
        source: hdf5_pure::Error,
    },
    /// A dataset is not two-dimensional.
    #[error(
        "task file {}: dataset `{dataset}` has shape {shape:?}, not \
         [conditions, columns]",
        path.display()
    )]
    NotMatrix {
        /// The file.
        path: PathBuf,
        /// The dataset's path in the file.
        dataset: String,
        /// Its shape.
        shape: Vec<u64>,
    },
    /// The CSV file could not be read.
    #[error("cannot read task file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CSV file has no header line.
    #[error(
        "task file {}: the first line must name the columns x0.., y0.., found `{line}`",
        path.display()
    )]
    MissingHeader {
        /// The file.
        path: PathBuf,
        /// The first line that is not blank or a comment, or empty.
        line: String,
    },
    /// A CSV header names a column that is not `x<i>` or `y<j>`.
    #[error("task file {}: column `{column}` is not named x<i> or y<j>", path.display())]
    BadColumn {
        /// The file.
        path: PathBuf,
        /// The column's name.
        column: String,
    },
    /// A CSV header names a column twice.
    #[error("task file {}: column `{column}` appears twice", path.display())]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The column's name.
        column: String,
    },
    /// A CSV header skips a column index, or has no inputs or no targets.
    #[error(
        "task file {}: column `{column}` is missing (inputs are x0, x1, .., \
         targets y0, y1, .., at least one of each)",
        path.display()
    )]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The first missing column.
        column: String,
    },
    /// A CSV row has a different number of fields than the header.
    #[error(
        "task file {}, line {line}: {found} fields, but the header names {expected}",
        path.display()
    )]
    RaggedRow {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// Fields on the line.
        found: usize,
        /// Columns in the header.
        expected: usize,
    },
    /// A CSV field is not a number.
    #[error(
        "task file {}, line {line}, column `{column}`: `{text}` is not a number",
        path.display()
    )]
    BadNumber {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The column's name.
        column: String,
        /// The field.
        text: String,
    },
    /// The file holds no conditions, no input columns or no target columns.
    #[error(
        "task file {}: {what} holds no values (it needs at least one condition \
         and one column)",
        path.display()
    )]
    Empty {
        /// The file.
        path: PathBuf,
        /// The dataset, or `rows` for a CSV file.
        what: String,
    },
    /// Inputs and targets disagree on the number of conditions.
    #[error(
        "task file {}: `{inputs}` has {input_rows} conditions but `{targets}` has \
         {target_rows}",
        path.display()
    )]
    ConditionMismatch {
        /// The file.
        path: PathBuf,
        /// The inputs' dataset.
        inputs: String,
        /// Its rows.
        input_rows: usize,
        /// The targets' dataset.
        targets: String,
        /// Its rows.
        target_rows: usize,
    },
    /// An input or target is NaN or infinite.
    #[error(
        "task file {}: {location} at condition {condition} is {value}",
        path.display()
    )]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// The dataset and column, or the CSV column.
        location: String,
        /// The 0-based condition.
        condition: usize,
        /// The value.
        value: f64,
    },
    /// A target is neither 0 nor 1.
    #[error(
        "task file {}: target {location} at condition {condition} is {value}, not 0 or 1",
        path.display()
    )]
    NonBinary {
        /// The file.
        path: PathBuf,
        /// The dataset and column, or the CSV column.
        location: String,
        /// The 0-based condition.
        condition: usize,
        /// The value.
        value: f64,
    },
}

/// Where the inputs and targets live in an HDF5 task file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hdf5Layout {
    /// Path of the `[P, D]` inputs dataset.
    pub inputs: String,
    /// Path of the `[P, K]` targets dataset.
    pub targets: String,
}

impl Default for Hdf5Layout {
    fn default() -> Self {
        Hdf5Layout {
            inputs: "inputs".into(),
            targets: "targets".into(),
        }
    }
}

/// A `[rows, cols]` row-major array read from a file.
struct Array {
    rows: usize,
    cols: usize,
    values: Vec<f64>,
}

/// Reads a task from the two datasets of an HDF5 file.
pub fn from_hdf5(path: &Path, layout: &Hdf5Layout) -> Result<Task, TaskFileError> {
    let file = hdf5_pure::File::open(path).map_err(|source| TaskFileError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let inputs = read_matrix(&file, path, &layout.inputs)?;
    let targets = read_matrix(&file, path, &layout.targets)?;

    let at = |dataset: &str| {
        let dataset = dataset.to_string();
        move |column: usize| format!("dataset `{dataset}`, column {column}")
    };
    let mut task = build(
        path,
        (&layout.inputs, inputs, &at(&layout.inputs)),
        (&layout.targets, targets, &at(&layout.targets)),
    )?;
    task.attrs.extend([
        ("format".into(), AttrValue::String("hdf5".into())),
        (
            "inputs_dataset".into(),
            AttrValue::String(layout.inputs.clone()),
        ),
        (
            "targets_dataset".into(),
            AttrValue::String(layout.targets.clone()),
        ),
    ]);
    Ok(task)
}

/// One two-dimensional dataset as `f64`.
fn read_matrix(
    file: &hdf5_pure::File,
    path: &Path,
    dataset: &str,
) -> Result<Array, TaskFileError> {
    let fail = |source| TaskFileError::Dataset {
        path: path.to_path_buf(),
        dataset: dataset.to_string(),
        source,
    };
    let handle = file.dataset(dataset).map_err(fail)?;
    let shape = handle.shape().map_err(fail)?;
    let &[rows, cols] = shape.as_slice() else {
        return Err(TaskFileError::NotMatrix {
            path: path.to_path_buf(),
            dataset: dataset.to_string(),
            shape,
        });
    };
    let values = if rows * cols == 0 {
        Vec::new()
    } else {
        handle.read_f64().map_err(fail)?
    };
    Ok(Array {
        rows: rows as usize,
        cols: cols as usize,
        values,
    })
}

/// Reads a task from a CSV file with the column convention of the module
/// doc.
pub fn from_csv(path: &Path) -> Result<Task, TaskFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TaskFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
    let header = lines.next().map(|(_, line)| line).unwrap_or("");
    let columns = parse_header(path, header)?;
    let d = columns.iter().filter(|c| c.0 == 'x').count();
    let k = columns.len() - d;

    let mut inputs = Array {
        rows: 0,
        cols: d,
        values: Vec::new(),
    };
    let mut targets = Array {
        rows: 0,
        cols: k,
        values: Vec::new(),
    };
    for (line, row) in lines {
        let fields: Vec<&str> = row.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(TaskFileError::RaggedRow {
                path: path.to_path_buf(),
                line,
                found: fields.len(),
                expected: columns.len(),
            });
        }
        let (mut x, mut y) = (vec![0.0; d], vec![0.0; k]);
        for (&(kind, index), field) in columns.iter().zip(&fields) {
            let value: f64 = field.parse().map_err(|_| TaskFileError::BadNumber {
                path: path.to_path_buf(),
                line,
                column: format!("{kind}{index}"),
                text: field.to_string(),
            })?;
            if kind == 'x' {
                x[index] = value;
            } else {
                y[index] = value;
            }
        }
        inputs.values.extend(x);
        targets.values.extend(y);
        inputs.rows += 1;
        targets.rows += 1;
    }

    let mut task = build(
        path,
        ("rows", inputs, &|j| format!("column `x{j}`")),
        ("rows", targets, &|j| format!("column `y{j}`")),
    )?;
    task.attrs
        .push(("format".into(), AttrValue::String("csv".into())));
    Ok(task)
}

/// The columns a CSV header names, as (`x` or `y`, index), after checking
/// that each of `x0..x{D-1}` and `y0..y{K-1}` appears exactly once.
fn parse_header(path: &Path, header: &str) -> Result<Vec<(char, usize)>, TaskFileError> {
    let first = header.split(',').next().unwrap_or("").trim();
    if header.is_empty() || first.parse::<f64>().is_ok() {
        return Err(TaskFileError::MissingHeader {
            path: path.to_path_buf(),
            line: header.to_string(),
        });
    }
    let mut columns = Vec::new();
    for name in header.split(',').map(str::trim) {
        let kind = name.chars().next().filter(|c| *c == 'x' || *c == 'y');
        let index = name.get(1..).and_then(|rest| {
            let digits = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| rest.parse::<usize>().ok()).flatten()
        });
        let (Some(kind), Some(index)) = (kind, index) else {
            return Err(TaskFileError::BadColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
            });
        };
        if columns.contains(&(kind, index)) {
            return Err(TaskFileError::DuplicateColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
            });
        }
        columns.push((kind, index));
    }

    for kind in ['x', 'y'] {
        let count = columns.iter().filter(|c| c.0 == kind).count();
        let missing = (0..=count).find(|&i| !columns.contains(&(kind, i)));
        if let Some(i) = missing.filter(|&i| i < count || count == 0) {
            return Err(TaskFileError::MissingColumn {
                path: path.to_path_buf(),
                column: format!("{kind}{i}"),
            });
        }
    }
    Ok(columns)
}

/// A named array and how to name one of its columns in an error.
type Named<'a> = (&'a str, Array, &'a dyn Fn(usize) -> String);

/// Checks inputs and targets against each other and builds the task.
fn build(path: &Path, inputs: Named, targets: Named) -> Result<Task, TaskFileError> {
    let (x_name, x, x_at) = inputs;
    let (y_name, y, y_at) = targets;
    for (name, array) in [(x_name, &x), (y_name, &y)] {
        if array.rows == 0 || array.cols == 0 {
            return Err(TaskFileError::Empty {
                path: path.to_path_buf(),
                what: name.to_string(),
            });
        }
    }
    if x.rows != y.rows {
        return Err(TaskFileError::ConditionMismatch {
            path: path.to_path_buf(),
            inputs: x_name.to_string(),
            input_rows: x.rows,
            targets: y_name.to_string(),
            target_rows: y.rows,
        });
    }

    let cell = |array: &Array, i: usize| (i / array.cols, i % array.cols);
    let bad = x
        .values
        .iter()
        .chain(&y.values)
        .position(|v| !v.is_finite());
    if let Some(i) = bad {
        let (value, (condition, column), at) = if i < x.values.len() {
            (x.values[i], cell(&x, i), x_at)
        } else {
            let j = i - x.values.len();
            (y.values[j], cell(&y, j), y_at)
        };
        return Err(TaskFileError::NotFinite {
            path: path.to_path_buf(),
            location: at(column),
            condition,
            value,
        });
    }
    if let Some(j) = y.values.iter().position(|&v| v != 0.0 && v != 1.0) {
        let (condition, column) = cell(&y, j);
        return Err(TaskFileError::NonBinary {
            path: path.to_path_buf(),
            location: y_at(column),
            condition,
            value: y.values[j],
        });
    }

    let (p, dim, k) = (x.rows, x.cols, y.cols);
    let mut task = Task {
        kind: "file",
        dim,
        outputs: k,
        inputs: x.values,
        targets: y.values,
        latents: None,
        attrs: vec![],
    };
    let measured = task.measured_alignment();
    task.attrs = vec![
        ("kind".into(), AttrValue::String("file".into())),
        (
            "source".into(),
            AttrValue::String(path.display().to_string()),
        ),
        ("P".into(), AttrValue::I64(p as i64)),
        ("D".into(), AttrValue::I64(dim as i64)),
        ("K".into(), AttrValue::I64(k as i64)),
        ("alignment".into(), AttrValue::F64(measured)),
    ];
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdf5_pure::FileBuilder;
    use tempfile::TempDir;

    const INPUTS: [f64; 6] = [1.0, -2.0, 0.5, 3.0, 0.0, 0.25];
    const TARGETS: [f64; 6] = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0];

    /// An HDF5 file with the given `f64` datasets (name, values, shape).
    fn hdf5(dir: &TempDir, sets: &[(&str, &[f64], &[u64])]) -> PathBuf {
        let path = dir.path().join("task.h5");
        let mut builder = FileBuilder::new();
        for (name, values, shape) in sets {
            builder
                .create_dataset(name)
                .with_f64_data(values)
                .with_shape(shape);
        }
        builder.write(&path).expect("test file is written");
        path
    }

    fn csv(dir: &TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("task.csv");
        std::fs::write(&path, text).expect("test file is written");
        path
    }

    fn read_hdf5(sets: &[(&str, &[f64], &[u64])]) -> Result<Task, TaskFileError> {
        let dir = TempDir::new().unwrap();
        from_hdf5(&hdf5(&dir, sets), &Hdf5Layout::default())
    }

    fn read_csv(text: &str) -> Result<Task, TaskFileError> {
        let dir = TempDir::new().unwrap();
        from_csv(&csv(&dir, text))
    }

    #[test]
    fn hdf5_tasks_read_back_as_written() {
        let t =
            read_hdf5(&[("inputs", &INPUTS, &[3, 2]), ("targets", &TARGETS, &[3, 2])])
                .unwrap();
        assert_eq!(
            (t.kind, t.conditions(), t.dim, t.outputs),
            ("file", 3, 2, 2)
        );
        assert_eq!(t.inputs, INPUTS);
        assert_eq!(t.targets, TARGETS);
        assert!(t.latents.is_none());
        let stored = t.attrs.iter().find(|(n, _)| n == "alignment");
        assert!(
            matches!(stored, Some((_, AttrValue::F64(a))) if *a == t.measured_alignment())
        );
    }

    #[test]
    fn hdf5_dataset_paths_are_configurable_and_integers_convert() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("ints.h5");
        let mut builder = FileBuilder::new();
        builder
            .create_dataset("X")
            .with_f64_data(&INPUTS)
            .with_shape(&[2, 3]);
        builder
            .create_dataset("Y")
            .with_i64_data(&[1, 0])
            .with_shape(&[2, 1]);
        builder.write(&path).unwrap();
        let layout = Hdf5Layout {
            inputs: "X".into(),
            targets: "Y".into(),
        };
        let t = from_hdf5(&path, &layout).unwrap();
        assert_eq!((t.dim, t.outputs), (3, 1));
        assert_eq!(t.targets, vec![1.0, 0.0]);
        let err = from_hdf5(&path, &Hdf5Layout::default()).unwrap_err();
        let named = |d: &str| d == "inputs";
        assert!(
            matches!(err, TaskFileError::Dataset { ref dataset, .. } if named(dataset))
        );
    }

    #[test]
    fn a_missing_hdf5_file_is_an_open_error_naming_it() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("absent.h5");
        let err = from_hdf5(&path, &Hdf5Layout::default()).unwrap_err();
        assert!(matches!(err, TaskFileError::Open { .. }), "{err}");
        assert!(err.to_string().contains("absent.h5"), "{err}");
    }

    #[test]
    fn a_missing_dataset_is_named() {
        let err = read_hdf5(&[("inputs", &INPUTS, &[3, 2])]).unwrap_err();
        assert!(matches!(err, TaskFileError::Dataset { .. }), "{err}");
        assert!(err.to_string().contains("`targets`"), "{err}");
    }

    #[test]
    fn a_one_dimensional_dataset_is_not_a_matrix() {
        let err = read_hdf5(&[("inputs", &INPUTS, &[6]), ("targets", &TARGETS, &[3, 2])])
            .unwrap_err();
        match err {
            TaskFileError::NotMatrix { dataset, shape, .. } => {
                assert_eq!((dataset.as_str(), shape), ("inputs", vec![6]));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn hdf5_condition_counts_must_agree() {
        let err =
            read_hdf5(&[("inputs", &INPUTS, &[3, 2]), ("targets", &TARGETS, &[2, 3])])
                .unwrap_err();
        assert!(
            matches!(
                err,
                TaskFileError::ConditionMismatch {
                    input_rows: 3,
                    target_rows: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn hdf5_nan_inputs_are_located() {
        let mut x = INPUTS;
        x[3] = f64::NAN;
        let err = read_hdf5(&[("inputs", &x, &[3, 2]), ("targets", &TARGETS, &[3, 2])])
            .unwrap_err();
        match &err {
            TaskFileError::NotFinite {
                location,
                condition,
                ..
            } => {
                assert_eq!(location, "dataset `inputs`, column 1");
                assert_eq!(*condition, 1);
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn hdf5_targets_must_be_binary() {
        let mut y = TARGETS;
        y[4] = 0.5;
        let err = read_hdf5(&[("inputs", &INPUTS, &[3, 2]), ("targets", &y, &[3, 2])])
            .unwrap_err();
        match &err {
            TaskFileError::NonBinary {
                location,
                condition,
                value,
                ..
            } => {
                assert_eq!(location, "dataset `targets`, column 0");
                assert_eq!((*condition, *value), (2, 0.5));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn an_hdf5_dataset_without_columns_is_empty() {
        let err = read_hdf5(&[("inputs", &[], &[3, 0]), ("targets", &TARGETS, &[3, 2])])
            .unwrap_err();
        assert!(
            matches!(err, TaskFileError::Empty { ref what, .. } if what == "inputs"),
            "{err}"
        );
    }

    #[test]
    fn csv_tasks_read_back_in_header_order() {
        let text = "# a comment\n\ny0, x1, x0\n1, 2.5, -1\n\n0, 0, 4e-1\n";
        let t = read_csv(text).unwrap();
        assert_eq!((t.conditions(), t.dim, t.outputs), (2, 2, 1));
        assert_eq!(t.inputs, vec![-1.0, 2.5, 0.4, 0.0]);
        assert_eq!(t.targets, vec![1.0, 0.0]);
    }

    #[test]
    fn an_unreadable_csv_is_a_read_error() {
        let dir = TempDir::new().unwrap();
        let err = from_csv(&dir.path().join("absent.csv")).unwrap_err();
        assert!(matches!(err, TaskFileError::Read { .. }), "{err}");
        assert!(err.to_string().contains("absent.csv"), "{err}");
    }

    #[test]
    fn csv_without_a_header_is_refused() {
        let err = read_csv("1, 2, 0\n").unwrap_err();
        assert!(matches!(err, TaskFileError::MissingHeader { .. }), "{err}");
        let err = read_csv("# only a comment\n").unwrap_err();
        assert!(matches!(err, TaskFileError::MissingHeader { .. }), "{err}");
    }

    #[test]
    fn csv_column_names_are_checked() {
        let cases = [
            ("x0, z0\n", "`z0` is not named"),
            ("x0, y\n", "`y` is not named"),
            ("x0, y-1\n", "`y-1` is not named"),
            ("x0, y0, x0\n", "`x0` appears twice"),
            ("x0, x2, y0\n", "`x1` is missing"),
            ("x0, x1\n", "`y0` is missing"),
            ("y0\n", "`x0` is missing"),
        ];
        for (text, message) in cases {
            let err = read_csv(text).unwrap_err();
            assert!(err.to_string().contains(message), "{text:?}: {err}");
        }
    }

    #[test]
    fn csv_rows_must_match_the_header() {
        let err = read_csv("x0, y0\n1, 0\n2\n").unwrap_err();
        assert!(
            matches!(
                err,
                TaskFileError::RaggedRow {
                    line: 3,
                    found: 1,
                    expected: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn csv_fields_must_be_numbers() {
        let err = read_csv("x0, y0\n1, 0\nabc, 1\n").unwrap_err();
        match &err {
            TaskFileError::BadNumber {
                line, column, text, ..
            } => {
                assert_eq!((*line, column.as_str(), text.as_str()), (3, "x0", "abc"));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn csv_nan_and_non_binary_values_are_located() {
        let err = read_csv("x0, x1, y0\n1, NaN, 0\n").unwrap_err();
        assert!(
            matches!(err, TaskFileError::NotFinite { ref location, condition: 0, .. }
                if location == "column `x1`"),
            "{err}"
        );
        let err = read_csv("x0, y0, y1\n1, 0, 1\n2, 1, 2\n").unwrap_err();
        assert!(
            matches!(err, TaskFileError::NonBinary { ref location, condition: 1, .. }
                if location == "column `y1`"),
            "{err}"
        );
        let err = read_csv("x0, y0\n1, inf\n").unwrap_err();
        assert!(matches!(err, TaskFileError::NotFinite { .. }), "{err}");
    }

    #[test]
    fn csv_with_only_a_header_is_empty() {
        let err = read_csv("x0, y0\n").unwrap_err();
        assert!(matches!(err, TaskFileError::Empty { .. }), "{err}");
    }
}
