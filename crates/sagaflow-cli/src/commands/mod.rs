//! One module per command group; each command returns the text it prints on stdout.

pub mod def;
pub mod saga;
pub mod server;
