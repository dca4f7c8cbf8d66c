//! Small helpers with no protocol knowledge: durations, fractions, process statistics.

pub mod duration;
pub mod fraction;
pub mod process;
