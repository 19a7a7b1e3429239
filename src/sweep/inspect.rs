//! `repflow inspect` on a sweep file: the summary of every point.

use std::fmt::Write as _;
use std::path::Path;

use hdf5_pure::File;

use crate::inspect::{self, InspectError};

/// Whether the file at `path` is a sweep (has a `/points` group).
pub fn is_sweep(path: &Path) -> bool {
    File::open(path)
        .and_then(|f| f.root().groups())
        .is_ok_and(|g| g.iter().any(|n| n == "points"))
}

/// Every point's values and summary, as `repflow inspect` prints them.
pub fn summarise(path: &Path) -> Result<String, InspectError> {
    let err = |message: String| InspectError::Read {
        path: path.display().to_string(),
        message,
    };
    let file = File::open(path).map_err(|e| err(e.to_string()))?;
    let root = file.root().attrs().map_err(|e| err(e.to_string()))?;
    let keys = root
        .get("sweep_keys")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let status = root.get("status").and_then(|v| v.as_str()).unwrap_or("");
    let mut out = format!("sweep over {keys}: {status}\n");

    let points = file.group("points").map_err(|e| err(e.to_string()))?;
    for name in points.groups().map_err(|e| err(e.to_string()))? {
        let g = points.group(&name).map_err(|e| err(e.to_string()))?;
        let attrs = g.attrs().map_err(|e| err(e.to_string()))?;
        let mut values = Vec::new();
        for key in keys.split(", ").filter(|k| !k.is_empty()) {
            let v = attrs.get(key);
            let shown = v
                .and_then(|v| v.as_str().map(String::from))
                .or_else(|| v.and_then(|v| v.as_f64()).map(|x| x.to_string()))
                .unwrap_or_default();
            values.push(format!("{key} = {shown}"));
        }
        let summary = inspect::summarise_at(path, &format!("points/{name}/"))?;
        let _ = writeln!(out, "\n== {name}: {}", values.join(", "));
        out += &summary.to_string();
    }
    Ok(out)
}
