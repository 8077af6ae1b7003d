//! Ruby's meaning in templates: what reconfig.rb's Ruby printed, byte for byte — JSON as the
//! json gem before 2.8 generated it, YAML as Psych dumped it, floats as Ruby showed them —
//! and Ruby's methods (`rb_*` filters and functions: only `nil` and `false` are false,
//! `split` drops trailing empty fields, ...) for templates converted from reconfig.rb.

mod blocks;
mod compat;
mod float;
pub mod json;
mod psych;
pub mod yaml;

use tera::Tera;

/// Registers the `rb_*` filters and functions; `engine` makes the Tera instance a block
/// filter renders its block with.
pub fn register(tera: &mut Tera, engine: fn() -> Tera) {
    compat::register(tera);
    blocks::register(tera, engine);
}
