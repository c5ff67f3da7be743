//! `shop-shipping`: the example shop's shipping service. `shop-shipping --help` lists its flags.

fn main() -> std::process::ExitCode {
    sagaflow_shop::main(sagaflow_shop::Service::Shipping)
}
