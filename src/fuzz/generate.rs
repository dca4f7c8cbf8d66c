//! Case generation: case `i` of a run with seed `s` is drawn from its own ChaCha8 stream
//! seeded from (`s`, `i`), so a run is reproducible whatever the concurrency, and any single case
//! can be regenerated. JSON is generated valid, near-valid (one mutation away) or hostile, or
//! taken from the seed corpus and mutated; frames, handshakes and sequences have their own
//! generators. The first cases of every run are the seed corpus itself, one file each, sent
//! whole, so a run of at least that many cases has sent every file once.

use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::case::{FrameSpec, Framing, FuzzCase, Step, TokenMutation};
use crate::corpus::CorpusFile;
use crate::wire::opcode;

/// The generator of one case.
pub fn rng_for(seed: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17))
}

/// Limits the generators respect.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub max_message_bytes: usize,
    /// Whether extension-only inputs (publish, query tokens) are generated.
    pub extensions: bool,
    /// Whether tokens can be minted (handshake mutations that need the secret).
    pub can_mint: bool,
}

/// Case `index` of the run with `seed`: below `corpus.len()`, corpus file `index` as one whole
/// text message on a connection without the publish scope (what `conform` sends it as);
/// after that, drawn from the case's own stream.
pub fn generate(seed: u64, index: u64, corpus: &[CorpusFile], config: &GenConfig) -> FuzzCase {
    if let Some(file) = usize::try_from(index).ok().and_then(|i| corpus.get(i)) {
        return FuzzCase::Message {
            payload: file.bytes.clone(),
            binary: false,
            framing: Framing::Whole,
            publish_scope: false,
        };
    }
    let mut rng = rng_for(seed, index);
    let roll = rng.random_range(0..100u32);
    match roll {
        0..=79 => message_case(&mut rng, corpus, config),
        80..=87 => frames_case(&mut rng, config),
        88..=94 => handshake_case(&mut rng, config),
        _ => sequence_case(&mut rng, config),
    }
}

const TOPICS: &[&str] = &["devices", "alerts", "system_status"];
const SEVERITIES: &[&str] = &["critical", "high", "medium", "low"];
const DEVICE_STATUSES: &[&str] = &["online", "offline", "maintenance"];
const SYSTEM_STATUSES: &[&str] = &["healthy", "degraded", "down"];
const DEVICES: &[&str] = &["d-1", "d-2"];
const FILTER_KEYS: &[&str] = &["severity", "status", "device_id", "id", "title", "metrics", "nope"];

fn message_case(rng: &mut ChaCha8Rng, corpus: &[CorpusFile], config: &GenConfig) -> FuzzCase {
    let payload = match rng.random_range(0..100u32) {
        0..=19 => valid_message(rng, config).to_string().into_bytes(),
        20..=54 => {
            let mut value = valid_message(rng, config);
            mutate_value(rng, &mut value, 0);
            near_valid_text(rng, value)
        }
        55..=79 => hostile(rng, config),
        _ if !corpus.is_empty() => {
            let mut bytes = corpus[rng.random_range(0..corpus.len())].bytes.clone();
            if rng.random_bool(0.5) {
                mutate_bytes(rng, &mut bytes);
            }
            bytes
        }
        _ => hostile(rng, config),
    };
    let binary = rng.random_bool(0.03);
    let framing = match rng.random_range(0..100u32) {
        _ if payload.len() < 2 => Framing::Whole,
        0..=59 => Framing::Whole,
        n => {
            let cuts = rng.random_range(1..=3usize.min(payload.len() - 1));
            let mut at: Vec<usize> = (0..cuts).map(|_| rng.random_range(1..payload.len())).collect();
            at.sort_unstable();
            at.dedup();
            if n < 85 { Framing::Split(at) } else { Framing::SplitWithPings(at) }
        }
    };
    FuzzCase::Message { payload, binary, framing, publish_scope: config.extensions && rng.random_bool(0.5) }
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &'a [&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

fn subset(rng: &mut ChaCha8Rng, items: &[&str]) -> Vec<String> {
    let n = rng.random_range(1..=items.len());
    (0..n).map(|_| pick(rng, items).to_owned()).collect()
}

fn random_id(rng: &mut ChaCha8Rng) -> Value {
    match rng.random_range(0..10u32) {
        0 => Value::from("x".repeat(rng.random_range(120..140))),
        1 => Value::from("ü\u{1F600}\"\\"),
        2 => Value::from(""),
        _ => Value::from(format!("r-{}", rng.random_range(0..1000u32))),
    }
}

fn random_filters(rng: &mut ChaCha8Rng) -> Value {
    let mut map = serde_json::Map::new();
    for _ in 0..rng.random_range(1..=2u32) {
        let key = pick(rng, FILTER_KEYS);
        let pool: &[&str] = match key {
            "severity" => SEVERITIES,
            "status" => {
                if rng.random_bool(0.5) {
                    DEVICE_STATUSES
                } else {
                    SYSTEM_STATUSES
                }
            }
            _ => DEVICES,
        };
        map.insert(key.to_owned(), Value::from(subset(rng, pool)));
    }
    Value::Object(map)
}

/// Event `data` valid for `topic`, with an unknown extra field now and then.
pub fn event_data(rng: &mut ChaCha8Rng, topic: &str) -> Value {
    let mut data = match topic {
        "devices" => {
            json!({"id": pick(rng, DEVICES), "status": pick(rng, DEVICE_STATUSES), "last_seen": "2024-03-20T10:00:00Z"})
        }
        "alerts" => {
            json!({"id": "a-1", "title": "fuzz", "severity": pick(rng, SEVERITIES), "device_id": pick(rng, DEVICES)})
        }
        _ => {
            json!({"status": pick(rng, SYSTEM_STATUSES), "metrics": {"cpu_usage": rng.random_range(0..=100u32), "memory_usage": 50.5}})
        }
    };
    if rng.random_bool(0.3) {
        data["extra"] = json!({"n": [1, 2.5, null, true], "s": "ünïcödé"});
    }
    data
}

/// A valid client message (publish only when extensions are on).
pub fn valid_message(rng: &mut ChaCha8Rng, config: &GenConfig) -> Value {
    let kind = rng.random_range(0..if config.extensions { 3 } else { 2 });
    let mut message = match kind {
        0 => {
            let mut m = json!({"type": "subscribe", "topics": subset(rng, TOPICS)});
            if rng.random_bool(0.4) {
                m["filters"] = json!({"severity": subset(rng, SEVERITIES)});
                m["topics"] = json!(["alerts"]);
            }
            m
        }
        1 => json!({"type": "unsubscribe", "topics": subset(rng, TOPICS)}),
        _ => {
            let topic = pick(rng, TOPICS);
            let event = match topic {
                "devices" => "device_update",
                "alerts" => "alert_created",
                _ => "system_status",
            };
            json!({"type": "publish", "topic": topic, "event": event, "data": event_data(rng, topic)})
        }
    };
    if rng.random_bool(0.7) {
        message["id"] = random_id(rng);
    }
    message
}

/// A JSON value of a random type, for replacing fields.
fn wrong_value(rng: &mut ChaCha8Rng) -> Value {
    match rng.random_range(0..9u32) {
        0 => Value::Null,
        1 => Value::from(true),
        2 => Value::from(rng.random_range(-5..5i64)),
        3 => Value::from(1.5e300),
        4 => Value::from("weather"),
        5 => json!([]),
        6 => json!({}),
        7 => json!([1, "alerts", null]),
        _ => json!({"severity": ["high"]}),
    }
}

/// One structural mutation somewhere in `value`.
pub fn mutate_value(rng: &mut ChaCha8Rng, value: &mut Value, depth: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[rng.random_range(0..keys.len())].clone();
            match rng.random_range(0..6u32) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(key, wrong_value(rng));
                }
                2 => {
                    map.insert(format!("unknown_{}", rng.random_range(0..10u32)), wrong_value(rng));
                }
                3 if key == "topics" => {
                    map.insert(key, json!(["alerts", "weather"]));
                }
                4 if key != "type" => {
                    map.insert("filters".into(), random_filters(rng));
                }
                _ if depth < 4 => {
                    if let Some(inner) = map.get_mut(&key) {
                        mutate_value(rng, inner, depth + 1);
                    }
                }
                _ => {
                    map.insert(key, wrong_value(rng));
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let at = rng.random_range(0..items.len());
            match rng.random_range(0..3u32) {
                0 => {
                    items.remove(at);
                }
                1 => items[at] = wrong_value(rng),
                _ => items.push(items[at].clone()),
            }
        }
        Value::String(s) => {
            *s = match rng.random_range(0..4u32) {
                0 => s.to_uppercase(),
                1 => format!("{s} "),
                2 => String::new(),
                _ => format!("{s}\u{0}"),
            }
        }
        other => *other = wrong_value(rng),
    }
}

/// Serializes with textual mutations JSON values cannot express: duplicate keys, escapes.
fn near_valid_text(rng: &mut ChaCha8Rng, value: Value) -> Vec<u8> {
    let text = value.to_string();
    let text = match rng.random_range(0..10u32) {
        0 if text.len() > 2 => format!("{},\"type\":\"unsubscribe\"}}", &text[..text.len() - 1]),
        1 => text.replacen("\"type\"", "\"\\u0074ype\"", 1),
        2 => text.replacen("alerts", "\\ud800alerts", 1),
        3 => format!(" \t\n{text}\r\n "),
        4 => text.replacen(':', " : ", 3),
        _ => text,
    };
    text.into_bytes()
}

/// Hostile input: huge, deep, malformed or at the edges.
pub fn hostile(rng: &mut ChaCha8Rng, config: &GenConfig) -> Vec<u8> {
    let limit = config.max_message_bytes;
    let text = match rng.random_range(0..14u32) {
        0 => {
            let n = rng.random_range(1..6000usize);
            format!(r#"{{"type":"subscribe","topics":[{}],"id":"big"}}"#, vec!["\"alerts\""; n].join(","))
        }
        1 => {
            let n = [limit - 64, limit - 30, limit + 1, rng.random_range(100..limit)][rng.random_range(0..4)];
            format!(r#"{{"type":"subscribe","topics":["alerts"],"id":"{}"}}"#, "s".repeat(n))
        }
        2 => {
            let depth = rng.random_range(20..300usize);
            format!(r#"{{"type":"subscribe","topics":["alerts"],"filters":{{"severity":{}"high"{}}},"id":"deep"}}"#, "[".repeat(depth), "]".repeat(depth))
        }
        3 => {
            let depth = rng.random_range(20..300usize);
            format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
        }
        4 => r#"{"type":"subscribe","topics":["\u0061lerts","\ud83d\ude00"],"id":"\udc00\ud800"}"#.to_owned(),
        5 => {
            let n = ["0", "-0", "1e309", "-1e-400", "18446744073709551616", "1.7976931348623157e308", "123456789012345678901234567890", "0.1e1"];
            format!(r#"{{"type":"subscribe","topics":["alerts"],"id":{}}}"#, n[rng.random_range(0..n.len())])
        }
        6 => {
            let garbage = ["{", "}", "[", "]", "\"", "\\", ":", ",", "nul", "tru", "{\"type\":", "\u{0}"];
            (0..rng.random_range(1..20)).map(|_| garbage[rng.random_range(0..garbage.len())]).collect()
        }
        7 => r#"{"type":"subscribe","type":"publish","topics":["alerts"],"topics":[],"id":"dup"}"#.to_owned(),
        8 => {
            let mut bytes = br#"{"type":"subscribe","topics":["alerts"],"id":"x"}"#.to_vec();
            let at = rng.random_range(0..bytes.len());
            bytes.insert(at, [0xff, 0xc3, 0xed, 0x80][rng.random_range(0..4)]);
            return bytes;
        }
        9 => format!(r#"{{"type":"subscribe","topics":["alerts"],"filters":{{"severity":[{}]}},"id":"many"}}"#, vec!["\"high\""; rng.random_range(1..3000)].join(",")),
        10 => format!(r#"{{"type":"{}"}}"#, ["subscribe\u{0}", "SUBSCRIBE", "publish ", "", "ping", "connection_established"][rng.random_range(0..6)]),
        11 => r#"{"type":"publish","topic":"alerts","event":"alert_created","data":{"id":"a","title":"t","severity":"low","device_id":"d-1","n":1e400},"id":"edge"}"#.to_owned(),
        12 => "\u{FEFF}{\"type\":\"subscribe\",\"topics\":[\"alerts\"]}".to_owned(),
        _ => format!(r#"{{"type":"unsubscribe","topics":{}}}"#, wrong_value(rng)),
    };
    text.into_bytes()
}

/// Byte-level mutations of a seed document.
pub fn mutate_bytes(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..4u32) {
        if bytes.is_empty() {
            bytes.push(b'{');
            continue;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4u32) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8u32),
            1 => {
                bytes.remove(at);
            }
            2 => bytes.insert(at, b"{}[]\",:\\"[rng.random_range(0..8)]),
            _ => {
                let end = (at + rng.random_range(1..16)).min(bytes.len());
                let chunk = bytes[at..end].to_vec();
                bytes.splice(at..at, chunk);
            }
        }
    }
}

fn frames_case(rng: &mut ChaCha8Rng, config: &GenConfig) -> FuzzCase {
    let text = br#"{"type":"subscribe","topics":["alerts"]}"#.to_vec();
    let spec = |fin, rsv, op, masked, payload: Vec<u8>| FrameSpec { fin, rsv, opcode: op, masked, payload };
    let (frames, code) = match rng.random_range(0..13u32) {
        0 => (vec![spec(true, 0, opcode::TEXT, false, text)], 1002),
        1 => (vec![spec(true, rng.random_range(1..8), opcode::TEXT, true, text)], 1002),
        2 => (
            vec![spec(
                true,
                0,
                [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF][rng.random_range(0..10)],
                true,
                text,
            )],
            1002,
        ),
        3 => (vec![spec(true, 0, opcode::CONTINUATION, true, text)], 1002),
        4 => (
            vec![spec(false, 0, opcode::TEXT, true, text.clone()), spec(true, 0, opcode::TEXT, true, text)],
            1002,
        ),
        5 => (
            vec![spec(
                false,
                0,
                [opcode::PING, opcode::PONG, opcode::CLOSE][rng.random_range(0..3)],
                true,
                b"x".to_vec(),
            )],
            1002,
        ),
        6 => (vec![spec(true, 0, opcode::PING, true, vec![b'p'; rng.random_range(126..300)])], 1002),
        7 => {
            let code: u16 = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000][rng.random_range(0..9)];
            (vec![spec(true, 0, opcode::CLOSE, true, code.to_be_bytes().to_vec())], 1002)
        }
        8 => (vec![spec(true, 0, opcode::CLOSE, true, vec![3])], 1002),
        9 => {
            let mut bad = text.clone();
            bad.insert(rng.random_range(1..bad.len()), 0xff);
            (vec![spec(true, 0, opcode::TEXT, true, bad)], 1007)
        }
        10 => (
            vec![
                spec(false, 0, opcode::TEXT, true, b"{\"id\":\"\xe2\x82".to_vec()),
                spec(true, 0, opcode::CONTINUATION, true, b"\"}".to_vec()),
            ],
            1007,
        ),
        11 => (vec![spec(true, 0, opcode::CLOSE, true, b"\x03\xe8\xc0\xaf".to_vec())], 1007),
        _ => {
            // A subscribe that is valid but for its size (padded with whitespace), so the size
            // rule is the only one that applies (docs/PROTOCOL.md, appendix: size against §4).
            let n = config.max_message_bytes / 2 + 1;
            let mut head = text.clone();
            head.pop();
            head.resize(n.max(head.len()), b' ');
            let mut tail = vec![b' '; n];
            tail.push(b'}');
            (
                vec![
                    spec(false, 0, opcode::TEXT, true, head),
                    spec(true, 0, opcode::CONTINUATION, true, tail),
                ],
                1009,
            )
        }
    };
    FuzzCase::Frames { frames, expect_close: code }
}

fn handshake_case(rng: &mut ChaCha8Rng, config: &GenConfig) -> FuzzCase {
    loop {
        let token = match rng.random_range(0..16u32) {
            0 => TokenMutation::Valid,
            1 => TokenMutation::ValidInQuery,
            2 => TokenMutation::Missing,
            3 => TokenMutation::Garbage(
                ["x", "a.b", "a.b.c", "....", "eyJ.eyJ.", "Bearer"][rng.random_range(0..6)].to_owned(),
            ),
            4 => TokenMutation::Truncated(rng.random_range(1..40)),
            5 => TokenMutation::FlippedSignature(rng.random_range(0..40)),
            6 => TokenMutation::AlgNone,
            7 => TokenMutation::AlgNoneSigned,
            8 => TokenMutation::Expired,
            9 => TokenMutation::NotYetValid,
            10 => TokenMutation::NoSub,
            11 => TokenMutation::NoExp,
            12 => TokenMutation::Oversize,
            13 => TokenMutation::NotBearer,
            14 => TokenMutation::BadHeaderGoodQuery,
            _ => TokenMutation::GoodHeaderBadQuery,
        };
        if (token.uses_extension() && !config.extensions) || (token.needs_secret() && !config.can_mint) {
            continue;
        }
        return FuzzCase::Handshake { token };
    }
}

fn sequence_case(rng: &mut ChaCha8Rng, config: &GenConfig) -> FuzzCase {
    if !config.extensions {
        // Events come only from publishing, an extension: without it a sequence is a handshake case.
        return handshake_case(rng, config);
    }
    let steps = (0..rng.random_range(3..12u32))
        .map(|_| match rng.random_range(0..10u32) {
            0..=3 => {
                let conn = rng.random_range(1..=3u8);
                let mut topics = subset(rng, TOPICS);
                if rng.random_bool(0.1) {
                    topics.push("weather".into());
                }
                let mut m = json!({"type": "subscribe", "topics": topics, "id": "s"});
                if rng.random_bool(0.5) {
                    m["filters"] = random_filters(rng);
                }
                Step::Subscribe { conn, text: m.to_string() }
            }
            4 => Step::Unsubscribe { conn: rng.random_range(1..=3u8), topics: subset(rng, TOPICS) },
            5 => Step::Reconnect { conn: rng.random_range(1..=3u8) },
            _ => Step::Publish {
                topic: pick(rng, TOPICS).to_owned(),
                severity: pick(rng, SEVERITIES).to_owned(),
                status: pick(rng, DEVICE_STATUSES).to_owned(),
                device: pick(rng, DEVICES).to_owned(),
            },
        })
        .collect();
    FuzzCase::Sequence { steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_index_generate_the_same_case() {
        let config = GenConfig { max_message_bytes: 65536, extensions: true, can_mint: true };
        for index in 0..200 {
            assert_eq!(generate(7, index, &[], &config), generate(7, index, &[], &config));
        }
        let kinds: std::collections::HashSet<&str> =
            (0..400).map(|i| generate(7, i, &[], &config).kind()).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
    }

    #[test]
    fn the_first_cases_are_the_corpus_files_sent_whole_then_the_draws_go_on() {
        let config = GenConfig { max_message_bytes: 65536, extensions: true, can_mint: true };
        let corpus = crate::corpus::Corpus::embedded();
        for (index, file) in corpus.files.iter().enumerate() {
            let case = generate(7, index as u64, &corpus.files, &config);
            let whole = FuzzCase::Message {
                payload: file.bytes.clone(),
                binary: false,
                framing: Framing::Whole,
                publish_scope: false,
            };
            assert_eq!(case, whole, "{}", file.name);
        }
        let after = corpus.len() as u64 + 5;
        assert_eq!(generate(7, after, &corpus.files, &config), generate(7, after, &[], &config));
    }
}
