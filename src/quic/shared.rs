//! The configuration every shard shares, built once at startup (`Send + Sync`).

use std::sync::Arc;

use hmac::{Hmac, Mac};
use quinn_proto::crypto::{CryptoError, HmacKey};
use quinn_proto::{ServerConfig, TransportConfig, VarInt};
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
