//! The reference server as a cluster (`serve --broker`, `serve --workers N`): in-process servers
//! sharing a broker, and real worker processes under the real harness.

mod bundled;
mod in_process;
mod processes;
