//! `--stop-with-stdin`: a child that stops when the process that started it is gone, however
//! it went (even `kill -9`), because its end of the stdin pipe then reads end-of-file.

use std::future::Future;

/// When `asked`, a future that resolves once stdin reaches its end or fails (watched from now
/// on); otherwise one that never resolves. The read runs on a plain thread: a blocking read on
/// tokio's stdin would hold the runtime open at shutdown.
pub fn closed_if(asked: bool) -> impl Future<Output = ()> + Send + 'static {
    let closed = asked.then(|| {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
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
    });
    async move {
        match closed {
            // The thread always sends before it ends; a lost sender reads as closed too.
            Some(closed) => closed.await.unwrap_or(()),
            None => std::future::pending().await,
        }
    }
}
