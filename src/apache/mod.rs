//! Safe Rust over httpd and APR: one file per Apache concept, named after its C type.
//! All unsafe code of mod_py lives here and in bindings/ (plus src/python/embed.rs for the
//! Python C-API of interpreter start-up). Nothing in this layer knows about Python.

pub mod config;
pub mod connection;
pub mod hooks;
pub mod log;
pub mod module;
pub mod pool;
pub mod regex;
pub mod request;
pub mod server;
pub mod table;
// ---- request phases, auth providers, subrequests (issue 4) ----
pub mod config_phases;
pub mod phase_state;
pub mod process;
pub mod provider;
pub mod ssi;
pub mod subrequest;

// ---- issue 4: filters, brigades, buckets, connection I/O ----
pub mod brigade;
pub mod connio;
pub mod filter;
// ---- end issue 4 ----

pub use connection::Connection;
pub use pool::Gone;
pub use request::Request;
pub use server::Server;
pub use table::Table;
