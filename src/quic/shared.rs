//! The configuration every shard shares, built once at startup (`Send + Sync`).

use std::sync::Arc;

use hmac::{Hmac, Mac};
use quinn_proto::crypto::{CryptoError, HmacKey};
use quinn_proto::{NoneTokenLog, ServerConfig, TransportConfig, ValidationTokenConfig, VarInt};
use sha2::Sha256;

use super::{QuicArgs, QuicError};

/// Built once, cloned into every shard: one reset key and one `ServerConfig` so
/// resets and Retry tokens validate on any shard (RFC 9000 §10.3, §8.1.3).
#[derive(Clone)]
pub struct QuicShared {
    pub server: Arc<ServerConfig>,
    pub reset_key: Arc<dyn HmacKey>,
    pub args: QuicArgs,
}

impl QuicShared {
    pub fn new(
        crypto: Arc<super::crypto::ServerCrypto>,
        args: QuicArgs,
    ) -> Result<Self, QuicError> {
        let mut transport = TransportConfig::default();
        let idle = VarInt::try_from(args.idle_timeout().as_millis() as u64)
            .map_err(|_| QuicError::Config("--idle-timeout-secs is too large".into()))?;
        // Sized for signaling (module docs of `quic`): every buffer a client can fill is
        // bounded here or in the HTTP/3 layer.
        transport
            .max_idle_timeout(Some(idle.into()))
            .keep_alive_interval(args.keep_alive())
            .receive_window(VarInt::from_u32(args.conn_receive_window_bytes))
            .stream_receive_window(VarInt::from_u32(args.stream_receive_window_bytes))
            .send_window(u64::from(args.send_window_bytes))
            // RFC 9297 datagrams for WebTransport.
            .datagram_receive_buffer_size(Some(args.datagram_receive_buffer_bytes as usize))
            .datagram_send_buffer_size(64 * 1024)
            .max_concurrent_bidi_streams(VarInt::from_u32(args.max_bidi_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(args.max_uni_streams));
        let mut server = ServerConfig::with_crypto(crypto);
        server.transport_config(Arc::new(transport));
        // No address validation tokens in NEW_TOKEN frames, whatever features a build
        // unifies into quinn-proto: its `bloom` feature, which other crates of this
        // workspace turn on, would send two per connection and check the tokens of
        // returning clients in a log behind one lock that every shard shares. A client's
        // address is validated by a Retry when the shard is loaded (`--retry`), and
        // `cargo build --bin mc-service` and a build of the whole workspace then run the
        // same server.
        let mut tokens = ValidationTokenConfig::default();
        tokens.sent(0).log(Arc::new(NoneTokenLog));
        server.validation_token_config(tokens);
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        Ok(Self {
            server: Arc::new(server),
            reset_key: Arc::new(ResetKey(secret)),
            args,
        })
    }
}

/// HMAC-SHA256 stateless-reset key (RFC 9000 §10.3.2), shared by all shards.
struct ResetKey([u8; 32]);

impl HmacKey for ResetKey {
    fn sign(&self, data: &[u8], out: &mut [u8]) {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return;
        };
        mac.update(data);
        let tag = mac.finalize().into_bytes();
        let n = out.len().min(tag.len());
        out[..n].copy_from_slice(&tag[..n]);
    }

    fn signature_len(&self) -> usize {
        32
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).map_err(|_| CryptoError)?;
        mac.update(data);
        mac.verify_slice(signature).map_err(|_| CryptoError)
    }
}

#[cfg(test)]
mod tests {
    /// A completed handshake sends no NEW_TOKEN frame, even in a build where another
    /// crate turns on quinn-proto's `bloom` feature (this test binary's: the tests
    /// depend on `quinn` with its default features).
    #[test]
    fn a_connection_is_sent_no_address_validation_token() {
        let mut p = crate::testing::Pair::new(super::QuicArgs::default());
        p.drive();
        let (_, server) = p.server.as_mut().expect("server connection");
        assert!(!server.quic.is_handshaking());
        assert_eq!(server.quic.stats().frame_tx.new_token, 0);
        assert_eq!(p.client.stats().frame_rx.new_token, 0);
    }
}
