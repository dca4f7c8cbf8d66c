//! The JSONTestSuite documents as conformance cases: each file sent as one text message, its
//! answer judged by what the corpus README and PROTOCOL.md §1 require. The files come from
//! [`crate::corpus`] (built into the binary, or `--corpus DIR`).

use std::sync::Arc;

use super::case::{Case, Failure, truncate};
use crate::corpus::{Class, Corpus, CorpusFile};
use crate::oracle::{Answer, Expectation, expect_message, expect_strict, judge};
use crate::protocol::ErrorCode;
use crate::wire::{OutFrame, opcode};

const RULE: &str = "Sent as a WebSocket text message, every `n_` file must get an `error` answer with the connection left open \
— except the files that are not valid UTF-8 (close 1007, §1) and the two files over 64 KiB (close 1009); every `y_` file that \
is not a valid client message must get `INVALID_MESSAGE`; every `i_` file must get a bounded-time answer and leave the server \
serving. (corpus README; PROTOCOL.md §1, §4, §6)";

/// One case per corpus file.
pub fn cases(corpus: &Corpus) -> Vec<Case> {
    corpus.files.iter().cloned().map(file_case).collect()
}

/// What `file` must get as one text message on a connection without the publish scope.
pub fn expected(file: &CorpusFile, max_bytes: usize) -> Expectation {
    let model = expect_message(&file.bytes, false, false, max_bytes);
    let is_error = |a: &Answer| matches!(a, Answer::Error { .. });
    match file.class {
        _ if model.may_close() => model,
        // The README: every i_ file must get a bounded-time answer and leave the server serving.
        Class::ImplementationDefined => Expectation::any_answer(),
        // Every n_ file must get an error; the model agrees for all of them (tested).
        Class::Invalid if model.allowed.iter().all(|a| is_error(&a.answer)) => model,
        Class::Invalid => Expectation::error(ErrorCode::InvalidMessage, None),
        // y_ files are not client messages whatever a parser makes of them: the strict reading.
        Class::Valid => expect_strict(&String::from_utf8_lossy(&file.bytes), false),
    }
}

fn file_case(file: CorpusFile) -> Case {
    let file = Arc::new(file);
    Case::new(format!("corpus.{}", file.name), "corpus", RULE, move |cx| {
        let file = Arc::clone(&file);
        async move {
            let expected = expected(&file, cx.max_message_bytes);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_gets_what_the_readme_says() {
        let corpus = Corpus::embedded();
        let files = &corpus.files;
        assert_eq!(files.len(), 318);
        let count = |f: &dyn Fn(&CorpusFile) -> bool| files.iter().filter(|c| f(c)).count();
        let expect = |c: &CorpusFile| expected(c, 64 * 1024);
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
    fn there_is_one_case_per_file() {
        let corpus = Corpus::embedded();
        let cases = cases(&corpus);
        assert_eq!(cases.len(), corpus.len());
        assert!(
            cases
                .iter()
                .zip(corpus.files.iter())
                .all(|(case, file)| case.name == format!("corpus.{}", file.name))
        );
    }
}
