//! Shrinking a finding to a minimal reproducer: smaller candidates of a case (JSON-aware for
//! payloads that parse, byte chunks otherwise, fewer steps or frames, simpler framing), kept
//! greedily while the same oracle still fails, within a bounded number of attempts.

use std::future::Future;

use serde_json::Value;

use super::case::{Framing, FuzzCase};

/// Candidates one step smaller than `case`, most promising first.
pub fn candidates(case: &FuzzCase) -> Vec<FuzzCase> {
    let mut out = Vec::new();
    match case {
        FuzzCase::Message { payload, binary, framing, publish_scope } => {
            let with = |payload: Vec<u8>, framing: Framing, binary: bool, scope: bool| FuzzCase::Message {
                payload,
                binary,
                framing,
                publish_scope: scope,
            };
            if *framing != Framing::Whole {
                out.push(with(payload.clone(), Framing::Whole, *binary, *publish_scope));
            }
            if *publish_scope {
                out.push(with(payload.clone(), framing.clone(), *binary, false));
            }
            if let Ok(value) = serde_json::from_slice::<Value>(payload) {
                for smaller in smaller_values(&value) {
                    out.push(with(
                        smaller.to_string().into_bytes(),
                        framing.clone(),
                        *binary,
                        *publish_scope,
                    ));
                }
            }
            let len = payload.len();
            let mut chunk = len / 2;
            while chunk >= 1 && out.len() < 96 {
                let mut start = 0;
                while start < len && out.len() < 96 {
                    let mut smaller = payload.clone();
                    smaller.drain(start..(start + chunk).min(len));
                    out.push(with(smaller, Framing::Whole, *binary, *publish_scope));
                    start += chunk;
                }
                chunk /= 2;
            }
        }
        FuzzCase::Frames { frames, expect_close } => {
            for i in 0..frames.len() {
                let mut fewer = frames.clone();
                fewer.remove(i);
                if !fewer.is_empty() {
                    out.push(FuzzCase::Frames { frames: fewer, expect_close: *expect_close });
                }
            }
        }
        FuzzCase::Sequence { steps } => {
            for i in 0..steps.len() {
                let mut fewer = steps.clone();
                fewer.remove(i);
                out.push(FuzzCase::Sequence { steps: fewer });
            }
        }
        FuzzCase::Handshake { .. } => {}
    }
    out
}

/// Values one step smaller: a member or element removed, a container replaced by a child, a
/// long string halved.
fn smaller_values(value: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for key in map.keys() {
                let mut fewer = map.clone();
                fewer.remove(key);
                out.push(Value::Object(fewer));
            }
            for (key, child) in map {
                for smaller in smaller_values(child).into_iter().take(4) {
                    let mut copy = map.clone();
                    copy.insert(key.clone(), smaller);
                    out.push(Value::Object(copy));
                }
            }
        }
        Value::Array(items) => {
            if items.len() > 1 {
                out.push(Value::Array(items[..items.len() / 2].to_vec()));
            }
            for i in 0..items.len().min(8) {
                let mut fewer = items.clone();
                fewer.remove(i);
                out.push(Value::Array(fewer));
            }
            out.extend(items.iter().take(2).cloned());
        }
        Value::String(s) if s.chars().count() > 1 => {
            out.push(Value::String(s.chars().take(s.chars().count() / 2).collect()))
        }
        _ => {}
    }
    out
}

/// Shrinks `case` while `reproduces` says the finding still holds, within `max_attempts` runs.
pub async fn shrink<F, Fut>(case: FuzzCase, max_attempts: usize, mut reproduces: F) -> (FuzzCase, usize)
where
    F: FnMut(FuzzCase) -> Fut,
    Fut: Future<Output = bool>,
{
    let (mut best, mut attempts) = (case, 0);
    'outer: while attempts < max_attempts {
        for candidate in candidates(&best) {
            if attempts >= max_attempts {
                break 'outer;
            }
            if size(&candidate) >= size(&best) {
                continue;
            }
            attempts += 1;
            if reproduces(candidate.clone()).await {
                best = candidate;
                continue 'outer;
            }
        }
        break;
    }
    (best, attempts)
}

/// A measure that every accepted candidate makes smaller, so shrinking ends.
pub fn size(case: &FuzzCase) -> usize {
    match case {
        FuzzCase::Message { payload, framing, publish_scope, .. } => {
            payload.len() * 4 + usize::from(*framing != Framing::Whole) * 2 + usize::from(*publish_scope)
        }
        FuzzCase::Frames { frames, .. } => frames.iter().map(|f| f.payload.len() + 1).sum(),
        FuzzCase::Sequence { steps } => steps.len(),
        FuzzCase::Handshake { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shrinks_a_payload_to_what_still_reproduces() {
        let payload = br#"{"type":"subscribe","topics":["alerts","devices"],"filters":{"severity":["high"]},"id":"BUG"}"#.to_vec();
        let case = FuzzCase::Message {
            payload,
            binary: false,
            framing: Framing::Split(vec![3]),
            publish_scope: true,
        };
        let reproduces = |c: FuzzCase| async move {
            matches!(&c, FuzzCase::Message { payload, .. } if String::from_utf8_lossy(payload).contains("BUG"))
        };
        let (small, attempts) = shrink(case, 500, reproduces).await;
        let FuzzCase::Message { payload, framing, publish_scope, .. } = small else { panic!() };
        assert_eq!(framing, Framing::Whole);
        assert!(!publish_scope);
        assert_eq!(String::from_utf8_lossy(&payload), "BUG", "after {attempts} attempts");
    }
}
