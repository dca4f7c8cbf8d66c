//! Reports: where they are written and the formats shared by every command.
//!
//! - [`folder`]: the report folder of CLI.md;
//! - [`junit`]: JUnit XML, one testcase per gate or conformance case;
//! - [`model`]: `report.json` of `run`.

pub mod folder;
pub mod junit;
pub mod model;
