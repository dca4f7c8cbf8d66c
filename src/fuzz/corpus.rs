//! The JSONTestSuite seed corpus (`shared/corpus/jsontestsuite/`): finding it, loading it, and
//! what each file must get when sent as a text message (its README, PROTOCOL.md §1).
//!
//! Looked for at `--corpus DIR`, then next to the crate (`CARGO_MANIFEST_DIR/../shared/…`),
//! then from the current directory. When it cannot be found the callers report the corpus
//! cases as skipped with the reason, never as passed.

use std::path::{Path, PathBuf};

use crate::oracle::{Answer, Expectation, expect_message, expect_strict};
use crate::protocol::ErrorCode;

const RELATIVE: &str = "shared/corpus/jsontestsuite";

/// What the README says a file's prefix means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `y_`: valid JSON.
    Valid,
    /// `n_`: invalid JSON.
    Invalid,
    /// `i_`: implementation-defined.
    ImplementationDefined,
}

/// One corpus document.
#[derive(Debug, Clone)]
pub struct CorpusFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub class: Class,
}

impl CorpusFile {
    /// What the file must get as one text message on a connection without the publish scope.
    pub fn expected(&self, max_bytes: usize) -> Expectation {
        let model = expect_message(&self.bytes, false, false, max_bytes);
        let is_error = |a: &Answer| matches!(a, Answer::Error { .. });
        match self.class {
            _ if model.may_close() => model,
            // The README: every i_ file must get a bounded-time answer and leave the server serving.
            Class::ImplementationDefined => Expectation::any_answer(),
            // Every n_ file must get an error; the model agrees for all of them (tested).
            Class::Invalid if model.allowed.iter().all(|a| is_error(&a.answer)) => model,
            Class::Invalid => Expectation::error(ErrorCode::InvalidMessage, None),
            // y_ files are not client messages whatever a parser makes of them: the strict reading.
            Class::Valid => expect_strict(&String::from_utf8_lossy(&self.bytes), false),
        }
    }
}

/// The corpus folder, or why there is none.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = explicit {
        return if dir.join("test_parsing").is_dir() {
            Ok(dir.to_path_buf())
        } else {
            Err(format!("--corpus {}: no test_parsing/ folder there", dir.display()))
        };
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = vec![manifest.join("..").join(RELATIVE)];
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(RELATIVE));
        candidates.push(cwd.join("..").join(RELATIVE));
    }
    candidates.into_iter().find(|dir| dir.join("test_parsing").is_dir()).ok_or_else(|| {
        format!("the JSONTestSuite corpus was not found (looked for ../{RELATIVE} next to the crate and from the current directory; pass --corpus DIR)")
    })
}

/// Loads every `test_parsing/*.json`, sorted by name.
pub fn load(dir: &Path) -> std::io::Result<Vec<CorpusFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.join("test_parsing"))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        let class = match name.get(..2) {
            Some("y_") => Class::Valid,
            Some("n_") => Class::Invalid,
            Some("i_") => Class::ImplementationDefined,
            _ => continue,
        };
        files.push(CorpusFile { bytes: std::fs::read(&path)?, name, class });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_found_and_every_file_gets_what_the_readme_says() {
        let Ok(dir) = locate(None) else { return };
        let files = load(&dir).unwrap();
        assert_eq!(files.len(), 318);
        let count = |f: &dyn Fn(&CorpusFile) -> bool| files.iter().filter(|c| f(c)).count();
        assert_eq!(count(&|c| c.class == Class::Valid), 95);
        assert_eq!(count(&|c| c.class == Class::Invalid), 188);
        let expect = |c: &CorpusFile| c.expected(64 * 1024);
        assert_eq!(count(&|c| c.class == Class::Invalid && expect(c) == Expectation::close(1007)), 12);
        assert_eq!(
            count(&|c| c.class == Class::ImplementationDefined && expect(c) == Expectation::close(1007)),
            13
        );
        assert_eq!(count(&|c| expect(c).allows_close(1009)), 2);
        assert!(
            files.iter().filter(|c| c.class == Class::Valid).all(|c| matches!(
                expect(c).primary(),
                Answer::Error { code: ErrorCode::InvalidMessage, .. }
            ))
        );
    }

    #[test]
    fn an_explicit_folder_without_files_is_refused() {
        assert!(locate(Some(Path::new("/definitely/not/here"))).is_err());
    }
}
