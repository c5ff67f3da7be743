//! `--stop-with-stdin`: a child that stops when the process that started it is gone, however
//! it went (even `kill -9`), because its end of the stdin pipe then reads end-of-file.

use tokio::sync::oneshot;

/// Resolves once stdin reaches its end or fails. The read runs on a plain thread: a blocking
/// read on tokio's stdin would hold the runtime open at shutdown.
pub fn closed() -> oneshot::Receiver<()> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        loop {
            match std::io::Read::read(&mut std::io::stdin(), &mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = tx.send(());
    });
    rx
}
