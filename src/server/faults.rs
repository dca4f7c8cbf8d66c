//! Deliberate bugs the reference server can be told to have (`serve --fault SPEC`, a scenario's
//! `[target] faults`), so tests can prove that the runner, `conform` and `fuzz` catch each one.
//!
//! Delivery faults act where a real server would go wrong: filters and unsubscribe in the hub,
//! drop / duplicate / reorder / latency in the connection's writer (a delayed frame holds back
//! the frames behind it, as a real stall does, instead of reordering them; each delayed frame
//! waits its own duration from when the writer took it, `server::delay_line`, so delays never
//! add up into a backlog); `throttle=N` paces
//! event frames in the writer too, through one bucket for the whole server (`server::throttle`),
//! so the excess waits in the connection queues. Protocol faults are
//! consulted where the correct answer is produced. With no faults every check is one branch.

use std::str::FromStr;
use std::time::Duration;

use crate::util::duration::parse_duration;

/// The faults a server has; the default has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Fraction of deliveries silently not written.
    pub drop: f64,
    /// Fraction of deliveries written twice.
    pub duplicate: f64,
    /// Fraction of deliveries held back and written after the next one.
    pub reorder: f64,
    /// Fraction of deliveries delayed, and for how long (each from when its connection's writer
    /// took it; the frames behind a delayed one wait for it).
    pub delay: Option<(f64, Duration)>,
    pub ignore_filters: bool,
    pub ignore_unsubscribe: bool,
    /// Cluster mode: every message from the broker waits this long before this process acts on
    /// it (a process that lags behind the others); their order is kept.
    pub broker_lag: Option<Duration>,
    /// At most this many event frames per second leave the server in total (one token bucket
    /// for every connection, `server::throttle`): a server of known capacity.
    pub throttle: Option<u32>,
    pub protocol: ProtocolFaults,
}

/// Faults in how the server answers (issue: conformance and fuzzing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolFaults {
    /// `INVALID_MESSAGE` instead of `SUBSCRIPTION_ERROR` for an unknown topic.
    pub wrong_unknown_topic_code: bool,
    /// Closes the connection after answering a message that is not JSON.
    pub close_on_bad_json: bool,
    pub accept_expired_tokens: bool,
    pub accept_alg_none: bool,
    pub no_id_echo: bool,
    pub no_error_timestamp: bool,
    /// Aborts the process on a message nested deeper than [`DEEP_NESTING`].
    pub crash_on_deep_nesting: bool,
    /// Stops answering on a connection that sent a message nested deeper than [`DEEP_NESTING`].
    pub hang_on_deep_nesting: bool,
}

/// Nesting depth that triggers the nesting faults.
pub const DEEP_NESTING: usize = 64;

/// A `--fault` value that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault {spec:?}: {reason}; known faults: {}", KNOWN.join(", "))]
pub struct FaultSpecError {
    spec: String,
    reason: String,
}

const KNOWN: &[&str] = &[
    "drop=FRACTION",
    "duplicate=FRACTION",
    "reorder=FRACTION",
    "delay=FRACTION:DURATION",
    "ignore-filters",
    "ignore-unsubscribe",
    "broker-lag=DURATION",
    "throttle=EVENTS_PER_S",
    "wrong-unknown-topic-code",
    "close-on-bad-json",
    "accept-expired-tokens",
    "accept-alg-none",
    "no-id-echo",
    "no-error-timestamp",
    "crash-on-deep-nesting",
    "hang-on-deep-nesting",
];

impl Faults {
    /// Faults from `--fault` values such as `drop=0.01` or `ignore-filters`.
    pub fn parse_all<S: AsRef<str>>(specs: &[S]) -> Result<Faults, FaultSpecError> {
        let mut faults = Faults::default();
        for spec in specs {
            faults.apply(spec.as_ref())?;
        }
        Ok(faults)
    }

    fn apply(&mut self, spec: &str) -> Result<(), FaultSpecError> {
        let error = |reason: &str| FaultSpecError { spec: spec.to_owned(), reason: reason.to_owned() };
        let (name, value) = match spec.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (spec.trim(), None),
        };
        let fraction = |v: Option<&str>| -> Result<f64, FaultSpecError> {
            let v = v.ok_or_else(|| error("expected =FRACTION"))?;
            match f64::from_str(v) {
                Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
                _ => Err(error("the fraction must be a number from 0 to 1")),
            }
        };
        let flag = |v: Option<&str>| match v {
            None => Ok(true),
            Some(_) => Err(error("this fault takes no value")),
        };
        let p = &mut self.protocol;
        match name {
            "drop" => self.drop = fraction(value)?,
            "duplicate" => self.duplicate = fraction(value)?,
            "reorder" => self.reorder = fraction(value)?,
            "delay" => {
                let (f, d) = value
                    .and_then(|v| v.split_once(':'))
                    .ok_or_else(|| error("expected =FRACTION:DURATION"))?;
                let duration = parse_duration(d).map_err(|e| error(&e.to_string()))?;
                self.delay = Some((fraction(Some(f))?, duration));
            }
            "ignore-filters" => self.ignore_filters = flag(value)?,
            "ignore-unsubscribe" => self.ignore_unsubscribe = flag(value)?,
            "broker-lag" => {
                let d = value.ok_or_else(|| error("expected =DURATION"))?;
                self.broker_lag = Some(parse_duration(d).map_err(|e| error(&e.to_string()))?);
            }
            "throttle" => {
                let n = value.ok_or_else(|| error("expected =EVENTS_PER_S"))?;
                match n.parse::<u32>() {
                    Ok(n) if n > 0 => self.throttle = Some(n),
                    _ => return Err(error("expected a positive whole number of event frames per second")),
                }
            }
            "wrong-unknown-topic-code" => p.wrong_unknown_topic_code = flag(value)?,
            "close-on-bad-json" => p.close_on_bad_json = flag(value)?,
            "accept-expired-tokens" => p.accept_expired_tokens = flag(value)?,
            "accept-alg-none" => p.accept_alg_none = flag(value)?,
            "no-id-echo" => p.no_id_echo = flag(value)?,
            "no-error-timestamp" => p.no_error_timestamp = flag(value)?,
            "crash-on-deep-nesting" => p.crash_on_deep_nesting = flag(value)?,
            "hang-on-deep-nesting" => p.hang_on_deep_nesting = flag(value)?,
            _ => return Err(error("unknown fault")),
        }
        Ok(())
    }

    /// Whether the connection writer has anything to do besides writing.
    pub fn affects_writes(&self) -> bool {
        self.drop > 0.0
            || self.duplicate > 0.0
            || self.reorder > 0.0
            || self.delay.is_some()
            || self.throttle.is_some()
    }

    pub fn is_empty(&self) -> bool {
        *self == Faults::default()
    }
}

/// What the writer does with one delivery under [`Faults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAction {
    Write,
    Drop,
    Duplicate,
    HoldBack,
    Stall(Duration),
}

/// Per-connection fault decisions, from a seeded generator so a run can be repeated.
#[derive(Debug, Clone)]
pub struct FaultDice {
    state: u64,
}

impl FaultDice {
    pub fn new(seed: u64) -> FaultDice {
        FaultDice { state: seed ^ 0x9E37_79B9_7F4A_7C15 }
    }

    /// A uniform draw in [0, 1) (splitmix64).
    fn roll(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn action(&mut self, faults: &Faults) -> WriteAction {
        let roll = self.roll();
        let mut threshold = faults.drop;
        if roll < threshold {
            return WriteAction::Drop;
        }
        threshold += faults.duplicate;
        if roll < threshold {
            return WriteAction::Duplicate;
        }
        threshold += faults.reorder;
        if roll < threshold {
            return WriteAction::HoldBack;
        }
        match faults.delay {
            Some((fraction, stall)) if roll < threshold + fraction => WriteAction::Stall(stall),
            _ => WriteAction::Write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_known_fault() {
        let faults = Faults::parse_all(&[
            "drop=0.1",
            "duplicate=0.2",
            "reorder=0.05",
            "delay=0.01:200ms",
            "ignore-filters",
            "ignore-unsubscribe",
            "broker-lag=50ms",
            "throttle=500",
            "wrong-unknown-topic-code",
            "close-on-bad-json",
            "accept-expired-tokens",
            "accept-alg-none",
            "no-id-echo",
            "no-error-timestamp",
            "crash-on-deep-nesting",
            "hang-on-deep-nesting",
        ])
        .unwrap();
        assert_eq!(faults.delay, Some((0.01, Duration::from_millis(200))));
        assert_eq!(faults.broker_lag, Some(Duration::from_millis(50)));
        assert_eq!(faults.throttle, Some(500));
        assert!(faults.ignore_filters && faults.protocol.hang_on_deep_nesting);
        assert!(faults.affects_writes());
        assert!(Faults::default().is_empty());
    }

    #[test]
    fn refuses_unknown_faults_and_bad_values() {
        for bad in [
            "explode",
            "drop",
            "drop=2",
            "drop=x",
            "ignore-filters=1",
            "delay=0.1",
            "broker-lag",
            "broker-lag=soon",
            "throttle",
            "throttle=0",
            "throttle=fast",
            "throttle=1.5",
        ] {
            assert!(Faults::parse_all(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn dice_follow_the_fractions() {
        let faults = Faults { drop: 0.25, duplicate: 0.25, ..Faults::default() };
        let mut dice = FaultDice::new(7);
        let actions: Vec<_> = (0..10_000).map(|_| dice.action(&faults)).collect();
        let drops = actions.iter().filter(|a| **a == WriteAction::Drop).count();
        let dups = actions.iter().filter(|a| **a == WriteAction::Duplicate).count();
        assert!((2_200..2_800).contains(&drops), "{drops}");
        assert!((2_200..2_800).contains(&dups), "{dups}");
    }
}
