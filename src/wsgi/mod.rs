//! The one WSGI core (PEP 3333): directive values, status and header validation, environ
//! rules. Pure Rust, no Apache and no Python: embedded mode (src/python/wsgi.rs) and the
//! daemon worker build on it.

pub mod config;
pub mod proxy;
pub mod response;
pub mod route;
pub mod target;
