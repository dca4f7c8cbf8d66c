//! The JSONTestSuite seed corpus that `conform` and `fuzz` send: the copy built into the binary
//! (`corpus/jsontestsuite/test_parsing/`, MIT, nst/JSONTestSuite; licence and attribution beside
//! it), or another folder of the same layout given with `--corpus DIR`; and each file's class,
//! read from its name's prefix as the corpus README defines it.
//!
//! **Why `build.rs` and not the `include_dir` crate.** The build script is forty lines that
//! write a sorted `(name, include_bytes!(…))` table and tell Cargo to rerun when the folder
//! changes; `include_dir` would do the same through a proc-macro crate and its dependencies,
//! added to every build, for one flat folder of 318 files. The table is plain Rust that can be
//! read in `target/*/build/*/out/corpus_table.rs`.
//!
//! It owns finding and loading the files, nothing else: what a file must get as an answer is the
//! oracle's business (`conform`, `fuzz`), and this low layer imports nothing of the crate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/corpus_table.rs"));
}

/// What the corpus README says a file's prefix means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `y_`: valid JSON.
    Valid,
    /// `n_`: invalid JSON.
    Invalid,
    /// `i_`: implementation-defined.
    ImplementationDefined,
}

impl Class {
    /// The class of a file named `name`; `None` when its prefix is none of the three.
    pub fn of(name: &str) -> Option<Class> {
        match name.get(..2) {
            Some("y_") => Some(Class::Valid),
            Some("n_") => Some(Class::Invalid),
            Some("i_") => Some(Class::ImplementationDefined),
            _ => None,
        }
    }
}

/// One corpus document.
#[derive(Debug, Clone)]
pub struct CorpusFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub class: Class,
}

/// Where a corpus was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorpusSource {
    /// The copy built into the binary.
    Embedded,
    /// A folder holding `test_parsing/` (`--corpus DIR`).
    Dir(PathBuf),
}

impl fmt::Display for CorpusSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorpusSource::Embedded => f.write_str("embedded"),
            CorpusSource::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// A loaded corpus: its files sorted by name, shared by every task that sends them.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub source: CorpusSource,
    pub files: Arc<Vec<CorpusFile>>,
}

/// Why a corpus folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("--corpus {}: no test_parsing/ folder there", .0.display())]
    NoTestParsing(PathBuf),
    #[error("reading the corpus at {}: {cause}", path.display())]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("--corpus {}: test_parsing/ holds no y_, n_ or i_ file", .0.display())]
    Empty(PathBuf),
}

impl Corpus {
    /// The corpus built into the binary (every file of `corpus/jsontestsuite/test_parsing/`).
    pub fn embedded() -> Corpus {
        static FILES: OnceLock<Arc<Vec<CorpusFile>>> = OnceLock::new();
        let files = FILES.get_or_init(|| {
            Arc::new(
                embedded::EMBEDDED
                    .iter()
                    .filter_map(|(name, bytes)| {
                        let class = Class::of(name)?;
                        Some(CorpusFile { name: (*name).to_owned(), bytes: bytes.to_vec(), class })
                    })
                    .collect(),
            )
        });
        Corpus { source: CorpusSource::Embedded, files: Arc::clone(files) }
    }

    /// `explicit` when given (`--corpus DIR`), else the embedded corpus.
    pub fn load(explicit: Option<&Path>) -> Result<Corpus, CorpusError> {
        match explicit {
            Some(dir) => Corpus::from_dir(dir),
            None => Ok(Corpus::embedded()),
        }
    }

    /// Every `y_`, `n_` and `i_` file of `dir/test_parsing/`, sorted by name.
    pub fn from_dir(dir: &Path) -> Result<Corpus, CorpusError> {
        let folder = dir.join("test_parsing");
        if !folder.is_dir() {
            return Err(CorpusError::NoTestParsing(dir.to_path_buf()));
        }
        let read_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CorpusError::Read { path, cause: source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&folder).map_err(read_error(&folder))? {
            let path = entry.map_err(read_error(&folder))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
            let Some(class) = Class::of(&name) else { continue };
            let bytes = std::fs::read(&path).map_err(read_error(&path))?;
            files.push(CorpusFile { name, bytes, class });
        }
        if files.is_empty() {
            return Err(CorpusError::Empty(dir.to_path_buf()));
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Corpus { source: CorpusSource::Dir(dir.to_path_buf()), files: Arc::new(files) })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-repo copy the binary is built from.
    fn in_repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/jsontestsuite")
    }

    #[test]
    fn the_embedded_corpus_is_every_file_of_the_readme_by_class() {
        let corpus = Corpus::embedded();
        assert_eq!(corpus.source, CorpusSource::Embedded);
        assert_eq!(corpus.len(), 318);
        let count = |class: Class| corpus.files.iter().filter(|f| f.class == class).count();
        assert_eq!(count(Class::Valid), 95);
        assert_eq!(count(Class::Invalid), 188);
        assert_eq!(count(Class::ImplementationDefined), 35);
        assert!(corpus.files.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn the_embedded_bytes_are_the_files_in_the_repository() {
        let embedded = Corpus::embedded();
        let on_disk = Corpus::from_dir(&in_repo()).unwrap();
        assert_eq!(on_disk.source, CorpusSource::Dir(in_repo()));
        assert_eq!(embedded.len(), on_disk.len());
        for (a, b) in embedded.files.iter().zip(on_disk.files.iter()) {
            assert_eq!((&a.name, &a.bytes, a.class), (&b.name, &b.bytes, b.class));
        }
    }

    #[test]
    fn no_folder_means_the_embedded_corpus() {
        assert_eq!(Corpus::load(None).unwrap().source, CorpusSource::Embedded);
    }

    #[test]
    fn an_explicit_folder_without_corpus_files_is_refused() {
        let missing = Corpus::load(Some(Path::new("/definitely/not/here")));
        assert!(matches!(missing, Err(CorpusError::NoTestParsing(_))), "{missing:?}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("test_parsing")).unwrap();
        std::fs::write(dir.path().join("test_parsing/README"), "not a corpus file").unwrap();
        let empty = Corpus::load(Some(dir.path()));
        assert!(matches!(empty, Err(CorpusError::Empty(_))), "{empty:?}");
    }

    #[test]
    fn files_are_classed_by_their_prefix() {
        assert_eq!(Class::of("y_array_empty.json"), Some(Class::Valid));
        assert_eq!(Class::of("n_array_extra_comma.json"), Some(Class::Invalid));
        assert_eq!(Class::of("i_number_huge_exp.json"), Some(Class::ImplementationDefined));
        assert_eq!(Class::of("README.md"), None);
        assert_eq!(Class::of("y"), None);
    }
}
