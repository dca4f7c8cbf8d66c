//! The JSONTestSuite documents as conformance cases: each file sent as one text message, its
//! answer judged by what the corpus README and PROTOCOL.md §1 require.

use std::sync::Arc;

use super::case::{Case, CaseResult, Failure, truncate};
use crate::fuzz::corpus::{self, CorpusFile};
use crate::oracle::judge;
use crate::wire::{OutFrame, opcode};

const RULE: &str = "Sent as a WebSocket text message, every `n_` file must get an `error` answer with the connection left open \
— except the files that are not valid UTF-8 (close 1007, §1) and the two files over 64 KiB (close 1009); every `y_` file that \
is not a valid client message must get `INVALID_MESSAGE`; every `i_` file must get a bounded-time answer and leave the server \
serving. (corpus README; PROTOCOL.md §1, §4, §6)";

/// One case per corpus file, or a single skipped case saying why there are none.
pub fn cases(corpus_dir: Result<std::path::PathBuf, String>) -> Vec<Case> {
    let files =
        corpus_dir.and_then(|dir| corpus::load(&dir).map_err(|e| format!("reading {}: {e}", dir.display())));
    match files {
        Ok(files) => files.into_iter().map(file_case).collect(),
        Err(reason) => vec![unavailable(reason)],
    }
}

fn unavailable(reason: String) -> Case {
    let mut case = Case::new("corpus.jsontestsuite", "corpus", RULE, |_| async { Ok(()) });
    case.run = Arc::new(move |_| {
        let reason = reason.clone();
        Box::pin(async move { CaseResult::Skip(reason) })
    });
    case
}

fn file_case(file: CorpusFile) -> Case {
    let file = Arc::new(file);
    Case::new(format!("corpus.{}", file.name), "corpus", RULE, move |cx| {
        let file = Arc::clone(&file);
        async move {
            let expected = file.expected(cx.max_message_bytes);
            let mut conn = cx.connect(false).await?;
            let frame = OutFrame::new(opcode::TEXT, file.bytes.clone());
            let observation = conn.exchange(&[frame], cx.answer_wait).await;
            conn.close().await;
            judge(&expected, &observation, cx.extensions).map_err(|mismatch| {
                Failure::new(
                    format!(
                        "{} as one text frame: {}",
                        file.name,
                        truncate(&String::from_utf8_lossy(&file.bytes), 200)
                    ),
                    format!("{}\n({:?}: {})", observation.describe(), mismatch.oracle, mismatch.detail),
                    expected.explain(),
                )
            })
        }
    })
}
