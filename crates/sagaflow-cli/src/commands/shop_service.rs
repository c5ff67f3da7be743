//! `sagaflow shop-service <service>` (hidden): one service of the example shop, so that
//! `sagaflow demo` can start the services from this very binary.

use crate::demo::ShopServiceArgs;
use crate::error::Error;

/// Runs the service until a signal, or until stdin closes with `--stop-with-stdin`.
pub fn run(args: ShopServiceArgs) -> Result<(), Error> {
    sagaflow_shop::run(args.service, args.args)
        .map_err(|e| Error::Other(format!("shop {}: {e}", args.service)))
}
