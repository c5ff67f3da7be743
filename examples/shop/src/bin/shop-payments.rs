//! `shop-payments`: the example shop's payments service. `shop-payments --help` lists its flags.

fn main() -> std::process::ExitCode {
    sagaflow_shop::main(sagaflow_shop::Service::Payments)
}
