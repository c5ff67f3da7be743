//! `shop-inventory`: the example shop's inventory service. `shop-inventory --help` lists its flags.

fn main() -> std::process::ExitCode {
    sagaflow_shop::main(sagaflow_shop::Service::Inventory)
}
