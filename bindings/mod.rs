//! Raw httpd/APR declarations: bindgen output (see build.rs) plus bindings/shim.c.
//! Nothing here is safe to call directly; src/apache wraps it.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all,
    unsafe_op_in_unsafe_fn,
    unnecessary_transmutes
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
