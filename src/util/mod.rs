//! Small helpers with no protocol knowledge: durations, process statistics.

pub mod duration;
pub mod process;
