//! `/echo` (only with `--enable-echo`): echoes every client-opened bidi stream and every
//! datagram. It uses the same [`WtSession`] API as the signaling path, so it measures
//! the real transport.

use super::session::WtSession;

/// Serve one echo session until it ends.
pub fn serve(session: WtSession) {
    let datagrams = session.clone();
    glommio::spawn_local(async move {
        while let Ok(d) = datagrams.recv_datagram().await {
            if datagrams.send_datagram(d).is_err() && datagrams.ended().is_some() {
                break;
            }
        }
    })
    .detach();
    glommio::spawn_local(async move {
        while let Ok(Some(mut stream)) = session.accept_bi().await {
            glommio::spawn_local(async move {
                loop {
                    match stream.read_chunk().await {
                        Ok(Some(chunk)) => {
                            if stream.write_chunk(chunk).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => {
                            let _ = stream.finish().await;
                            return;
                        }
                        Err(_) => return,
                    }
                }
            })
            .detach();
        }
    })
    .detach();
}
