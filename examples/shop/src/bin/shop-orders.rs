//! `shop-orders`: the example shop's orders service. `shop-orders --help` lists its flags.

fn main() -> std::process::ExitCode {
    sagaflow_shop::main(sagaflow_shop::Service::Orders)
}
