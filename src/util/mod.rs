//! Small helpers with no protocol knowledge: durations, fractions, a deterministic mix, process
//! statistics, URL origins.

pub mod duration;
pub mod fraction;
pub mod mix;
pub mod process;
pub mod url;
