//! Reading a finished run's `report.json` back, for `report` and `compare`: from the file or
//! from the report folder that holds it. Anything unreadable is a [`ReadError`] (exit 2).

use std::path::{Path, PathBuf};

use crate::results::model::RunReport;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is not a run's report.json", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{} is a {kind:?} report; only \"run\" reports can be rendered and compared", path.display())]
    Kind { path: PathBuf, kind: String },
    #[error("{} has schema_version {version}; this harness reads version {}", path.display(), RunReport::SCHEMA_VERSION)]
    Version { path: PathBuf, version: u64 },
}

/// `path` itself, or `path/report.json` when `path` is a folder.
pub fn report_file(path: &Path) -> PathBuf {
    if path.is_dir() { path.join("report.json") } else { path.to_path_buf() }
}

/// The report files `path` names as baselines: `path` itself, `path/report.json` for a report
/// folder, or every `*.json` of a folder without one (a folder of baseline runs), sorted.
pub fn baseline_files(path: &Path) -> Result<Vec<PathBuf>, ReadError> {
    if !path.is_dir() || path.join("report.json").is_file() {
        return Ok(vec![report_file(path)]);
    }
    let io = |source| ReadError::Io { path: path.to_path_buf(), source };
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no report.json and no *.json in it",
        )));
    }
    Ok(files)
}

/// Reads and checks a run's report from `path` (the file or its folder).
pub fn read_run_report(path: &Path) -> Result<RunReport, ReadError> {
    let path = report_file(path);
    let text =
        std::fs::read_to_string(&path).map_err(|source| ReadError::Io { path: path.clone(), source })?;
    // Look at kind and version first, so a conform report is named as such rather than
    // reported as missing the fields of a run.
    let head: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ReadError::Json { path: path.clone(), source })?;
    if let Some(kind) = head.get("kind").and_then(|k| k.as_str()).filter(|k| *k != RunReport::KIND) {
        return Err(ReadError::Kind { path, kind: kind.to_owned() });
    }
    if let Some(version) = head
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .filter(|v| *v != u64::from(RunReport::SCHEMA_VERSION))
    {
        return Err(ReadError::Version { path, version });
    }
    serde_json::from_value(head).map_err(|source| ReadError::Json { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_report_from_its_file_or_folder() {
        let dir = tempfile::tempdir().unwrap();
        let report = RunReport::empty("x");
        std::fs::write(dir.path().join("report.json"), serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(read_run_report(dir.path()).unwrap(), report);
        assert_eq!(read_run_report(&dir.path().join("report.json")).unwrap(), report);
    }

    #[test]
    fn a_folder_of_runs_names_each_json_in_it() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["run-2.json", "run-1.json", "notes.txt"] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        let files = baseline_files(dir.path()).unwrap();
        assert_eq!(files, [dir.path().join("run-1.json"), dir.path().join("run-2.json")]);
        std::fs::write(dir.path().join("report.json"), "{}").unwrap();
        assert_eq!(baseline_files(dir.path()).unwrap(), [dir.path().join("report.json")], "a report folder");
        let empty = tempfile::tempdir().unwrap();
        assert!(baseline_files(empty.path()).is_err());
    }

    #[test]
    fn names_what_is_wrong_with_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_run_report(&dir.path().join("nope.json")).unwrap_err();
        assert!(matches!(missing, ReadError::Io { .. }), "{missing}");
        let file = dir.path().join("r.json");
        std::fs::write(&file, "{not json").unwrap();
        assert!(matches!(read_run_report(&file), Err(ReadError::Json { .. })));
        std::fs::write(&file, r#"{"kind":"conform","passed":true}"#).unwrap();
        let kind = read_run_report(&file).unwrap_err();
        assert!(kind.to_string().contains("\"conform\" report"), "{kind}");
        std::fs::write(&file, r#"{"kind":"run","schema_version":9}"#).unwrap();
        assert!(matches!(read_run_report(&file), Err(ReadError::Version { version: 9, .. })));
        std::fs::write(&file, r#"{"kind":"run","schema_version":1}"#).unwrap();
        assert!(matches!(read_run_report(&file), Err(ReadError::Json { .. })), "fields missing");
    }
}
