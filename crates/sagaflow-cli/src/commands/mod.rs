//! One module per command group; each command returns the text it prints on stdout (the
//! demo prints its own report, after a run that can take a while).

pub mod def;
pub mod demo;
pub mod saga;
pub mod server;
pub mod shop_service;
