//! A fuzz case: what is sent, at which layer, as a serializable value, so a finding can be
//! saved as JSON and replayed exactly (`fuzz --replay FILE`).

use serde::{Deserialize, Serialize};

use crate::oracle::upgrade::{Token, UpgradeAnswer, expect_upgrade};
use crate::wire::{OutFrame, opcode};

/// One case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FuzzCase {
    /// One application message on an open connection, sent whole and then with `framing`;
    /// both must earn the answer the model requires, and the same one.
    Message {
        #[serde(with = "payload")]
        payload: Vec<u8>,
        #[serde(default)]
        binary: bool,
        framing: Framing,
        /// Whether the connection's token has the `publish` scope.
        publish_scope: bool,
    },
    /// Raw frames on a fresh connection, which must close with `expect_close`.
    Frames { frames: Vec<FrameSpec>, expect_close: u16 },
    /// An upgrade presenting a mutated token.
    Handshake { token: TokenMutation },
    /// Subscribe / unsubscribe / publish / reconnect steps over several connections, judged by
    /// a model of who must receive which event.
    Sequence { steps: Vec<Step> },
}

impl FuzzCase {
    pub fn kind(&self) -> &'static str {
        match self {
            FuzzCase::Message { .. } => "message",
            FuzzCase::Frames { .. } => "frames",
            FuzzCase::Handshake { .. } => "handshake",
            FuzzCase::Sequence { .. } => "sequence",
        }
    }

    /// A short human description, for reports.
    pub fn describe(&self) -> String {
        match self {
            FuzzCase::Message { payload, binary, framing, publish_scope } => format!(
                "{} message{} {:?} of {} bytes: {}",
                if *binary { "binary" } else { "text" },
                if *publish_scope { " (publish scope)" } else { "" },
                framing,
                payload.len(),
                preview(payload, 300)
            ),
            FuzzCase::Frames { frames, expect_close } => format!(
                "{} raw frame(s) [{}], expecting close {expect_close}",
                frames.len(),
                frames
                    .iter()
                    .map(|f| format!(
                        "op={:#x} fin={} rsv={} masked={} len={}",
                        f.opcode,
                        f.fin,
                        f.rsv,
                        f.masked,
                        f.payload.len()
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            FuzzCase::Handshake { token } => format!("upgrade presenting {token:?}"),
            FuzzCase::Sequence { steps } => format!("sequence of {} steps: {steps:?}", steps.len()),
        }
    }
}

/// Text for reports: the bytes as UTF-8 (lossy), cut at `max` characters.
pub fn preview(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.into_owned(),
    }
}

/// How a message is framed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    Whole,
    /// Fragments split at these byte offsets.
    Split(Vec<usize>),
    /// Fragments split at these offsets with a ping (and an unsolicited pong) between them.
    SplitWithPings(Vec<usize>),
}

impl Framing {
    /// The frames carrying `payload` under this framing.
    pub fn frames(&self, payload: &[u8], binary: bool) -> Vec<OutFrame> {
        let first = if binary { opcode::BINARY } else { opcode::TEXT };
        let (cuts, pings) = match self {
            Framing::Whole => return vec![OutFrame::new(first, payload.to_vec())],
            Framing::Split(cuts) => (cuts, false),
            Framing::SplitWithPings(cuts) => (cuts, true),
        };
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c <= payload.len()).collect();
        bounds.sort_unstable();
        bounds.dedup();
        bounds.push(payload.len());
        let (mut frames, mut start) = (Vec::new(), 0);
        for (i, end) in bounds.iter().enumerate() {
            let last = i + 1 == bounds.len();
            let op = if i == 0 { first } else { opcode::CONTINUATION };
            frames.push(OutFrame {
                fin: last,
                rsv: 0,
                opcode: op,
                masked: true,
                payload: payload[start..*end].to_vec(),
            });
            if pings && !last {
                frames.push(OutFrame::new(opcode::PING, format!("p{i}")));
                frames.push(OutFrame::new(opcode::PONG, b"u".to_vec()));
            }
            start = *end;
        }
        frames
    }
}

/// A raw frame, every bit chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameSpec {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    #[serde(with = "payload")]
    pub payload: Vec<u8>,
}

impl FrameSpec {
    pub fn to_frame(&self) -> OutFrame {
        OutFrame {
            fin: self.fin,
            rsv: self.rsv,
            opcode: self.opcode,
            masked: self.masked,
            payload: self.payload.clone(),
        }
    }
}

/// The token presented on an upgrade (the invalid forms of PROTOCOL.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenMutation {
    Valid,
    ValidInQuery,
    Missing,
    Garbage(String),
    /// A valid token with its last `n` characters removed.
    Truncated(usize),
    /// A valid token with one signature character (not the last) changed.
    FlippedSignature(usize),
    AlgNone,
    AlgNoneSigned,
    Expired,
    NotYetValid,
    NoSub,
    NoExp,
    Oversize,
    NotBearer,
    BadHeaderGoodQuery,
    GoodHeaderBadQuery,
}

impl TokenMutation {
    /// The tokens it presents: in the `Authorization` header, and as `?access_token=`.
    pub fn presents(&self) -> (Token, Token) {
        match self {
            TokenMutation::Valid => (Token::Valid, Token::Absent),
            TokenMutation::ValidInQuery => (Token::Absent, Token::Valid),
            TokenMutation::Missing => (Token::Absent, Token::Absent),
            TokenMutation::BadHeaderGoodQuery => (Token::Invalid, Token::Valid),
            TokenMutation::GoodHeaderBadQuery => (Token::Valid, Token::Invalid),
            _ => (Token::Invalid, Token::Absent),
        }
    }

    /// What the upgrade must earn (§2, the header winning over the query).
    pub fn expected(&self) -> UpgradeAnswer {
        let (header, query) = self.presents();
        expect_upgrade(header, query)
    }

    /// Whether the server must accept the connection.
    pub fn is_valid(&self) -> bool {
        self.expected() == UpgradeAnswer::Established
    }

    /// Whether presenting it relies on the query-token extension.
    pub fn uses_extension(&self) -> bool {
        matches!(
            self,
            TokenMutation::ValidInQuery
                | TokenMutation::BadHeaderGoodQuery
                | TokenMutation::GoodHeaderBadQuery
        )
    }

    /// Whether it can only be made with the target's secret.
    pub fn needs_secret(&self) -> bool {
        matches!(
            self,
            TokenMutation::AlgNoneSigned
                | TokenMutation::Expired
                | TokenMutation::NotYetValid
                | TokenMutation::NoSub
                | TokenMutation::NoExp
                | TokenMutation::Oversize
        )
    }
}

/// One step of a sequence. Connections are numbered; connection 0 publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Sends this subscribe text (valid or not) on `conn`.
    Subscribe {
        conn: u8,
        text: String,
    },
    Unsubscribe {
        conn: u8,
        topics: Vec<String>,
    },
    /// Publishes an event of `topic` whose filterable fields take these values.
    Publish {
        topic: String,
        severity: String,
        status: String,
        device: String,
    },
    /// Closes `conn` and opens it again: it must hold no subscription.
    Reconnect {
        conn: u8,
    },
}

/// Byte payloads in JSON: as text when UTF-8, else base64.
mod payload {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Repr {
        Text(String),
        Base64(String),
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Repr::Text(text.to_owned()),
            Err(_) => Repr::Base64(STANDARD.encode(bytes)),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(text) => Ok(text.into_bytes()),
            Repr::Base64(b64) => STANDARD.decode(b64).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_round_trip_through_json_with_binary_payloads() {
        let case = FuzzCase::Message {
            payload: vec![0xff, b'{'],
            binary: false,
            framing: Framing::Split(vec![1]),
            publish_scope: true,
        };
        let json = serde_json::to_string(&case).unwrap();
        assert!(json.contains("base64"));
        assert_eq!(serde_json::from_str::<FuzzCase>(&json).unwrap(), case);
    }

    #[test]
    fn framing_splits_and_interleaves_control_frames() {
        let frames = Framing::SplitWithPings(vec![2, 4]).frames(b"abcdef", false);
        let data: Vec<_> = frames.iter().filter(|f| f.opcode <= 2).collect();
        assert_eq!(data.len(), 3);
        assert_eq!(data[0].opcode, opcode::TEXT);
        assert!(!data[0].fin && data[2].fin);
        assert_eq!(data.iter().flat_map(|f| f.payload.clone()).collect::<Vec<_>>(), b"abcdef");
        assert_eq!(frames.len(), 7);
    }
}
