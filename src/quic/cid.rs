//! Connection IDs that name their owner shard, and the router that reads them.
//!
//! Every CID this MC issues is [`CID_LEN`] bytes: byte 0 is the owner shard, the rest
//! random. A datagram's destination CID is readable before decryption (RFC 9000 §17.2
//! long header, §17.3 short header; header protection leaves it in the clear, RFC 9001
//! §5.4), so the shard that receives a datagram can tell who owns it BEFORE calling
//! `Endpoint::handle` — otherwise the wrong shard would answer with a stateless reset.

use std::time::Duration;

use quinn_proto::{ConnectionId, ConnectionIdGenerator};
use rand::RngCore;
use shards::ShardId;

/// Length of every connection ID this MC issues.
pub const CID_LEN: usize = 8;

/// Issues CIDs whose first byte is the owner shard.
#[derive(Debug)]
pub struct ShardCidGenerator {
    shard: u8,
    lifetime: Option<Duration>,
}

impl ShardCidGenerator {
    /// `shard` must fit in one byte (at most 256 shards).
    pub fn new(shard: ShardId) -> Option<Self> {
        u8::try_from(shard.0).ok().map(Self::from_byte)
    }

    /// For shard `shard` (the byte put first in every CID).
    pub fn from_byte(shard: u8) -> Self {
        Self {
            shard,
            lifetime: None,
        }
    }
}

impl ConnectionIdGenerator for ShardCidGenerator {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut bytes = [0u8; CID_LEN];
        bytes[0] = self.shard;
        rand::rng().fill_bytes(&mut bytes[1..]);
        ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        self.lifetime
    }
}

/// QUIC version 1 (RFC 9000 §15).
const QUIC_V1: u32 = 1;

/// The shard owning the connection `datagram` is addressed to, when the datagram says,
/// one of the data shards `0..shards`.
///
/// `None` means "handle it here": Initial and 0-RTT packets carry a client-chosen DCID
/// (RFC 9000 §7.2), version negotiation and unknown versions have no owner, anything
/// too short to parse is left to quinn-proto to drop, and so is a DCID naming no data
/// shard: no connection of ours has it, and the mesh ids above the data shards belong
/// to executors that take no datagrams.
pub fn owner_shard(datagram: &[u8], local_cid_len: usize, shards: usize) -> Option<ShardId> {
    let owner = cid_shard(datagram, local_cid_len)?;
    (owner.index() < shards).then_some(owner)
}

/// The shard the DCID of `datagram` names, if it names one (see [`owner_shard`]).
fn cid_shard(datagram: &[u8], local_cid_len: usize) -> Option<ShardId> {
    let first = *datagram.first()?;
    if first & 0x80 == 0 {
        // Short header (RFC 9000 §17.3.1): flags, then the DCID of our own length.
        if local_cid_len == 0 || datagram.len() < 1 + local_cid_len {
            return None;
        }
        return datagram.get(1).map(|&b| ShardId(b.into()));
    }
    // Long header (RFC 9000 §17.2): flags, version(4), DCID len(1), DCID.
    let version = u32::from_be_bytes(datagram.get(1..5)?.try_into().ok()?);
    if version != QUIC_V1 {
        return None;
    }
    // §17.2: type bits 0x30: 0 Initial, 1 0-RTT, 2 Handshake, 3 Retry.
    match (first & 0x30) >> 4 {
        2 => {}
        _ => return None,
    }
    let dcid_len = usize::from(*datagram.get(5)?);
    if dcid_len != local_cid_len || dcid_len == 0 {
        return None;
    }
    datagram.get(6).map(|&b| ShardId(b.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long(kind: u8, dcid: &[u8]) -> Vec<u8> {
        let mut p = vec![0xc0 | (kind << 4), 0, 0, 0, 1, dcid.len() as u8];
        p.extend_from_slice(dcid);
        p.extend_from_slice(&[8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0]);
        p
    }

    #[test]
    fn generated_cids_name_their_shard() {
        let mut generator = ShardCidGenerator::new(ShardId(3)).unwrap();
        let a = generator.generate_cid();
        let b = generator.generate_cid();
        assert_eq!(a.len(), CID_LEN);
        assert_eq!(a[0], 3);
        assert_ne!(a, b);
        assert!(ShardCidGenerator::new(ShardId(256)).is_none());
        let mut short = vec![0x40];
        short.extend_from_slice(&a);
        short.extend_from_slice(&[0; 20]);
        assert_eq!(owner_shard(&short, CID_LEN, 8), Some(ShardId(3)));
    }

    #[test]
    fn short_header_routes_by_first_cid_byte() {
        let mut p = vec![0x5f, 7, 1, 2, 3, 4, 5, 6, 7];
        p.extend_from_slice(&[0; 16]);
        assert_eq!(owner_shard(&p, CID_LEN, 8), Some(ShardId(7)));
        assert_eq!(owner_shard(&[0x40, 1, 2], CID_LEN, 8), None);
        assert_eq!(owner_shard(&[], CID_LEN, 8), None);
    }

    /// A short header may name any byte: only the data shards' ids are routed. The id
    /// just above them is the control executor's in the mesh, and the rest name nobody.
    #[test]
    fn ids_beyond_the_data_shards_are_handled_here() {
        let mut p = vec![0x40, 0, 1, 2, 3, 4, 5, 6, 7];
        p.extend_from_slice(&[0; 16]);
        for b in 0..=255u8 {
            p[1] = b;
            let want = (b < 2).then_some(ShardId(b.into()));
            assert_eq!(owner_shard(&p, CID_LEN, 2), want, "byte {b}");
        }
        let handshake = long(2, &[2, 9, 9, 9, 9, 9, 9, 9]);
        assert_eq!(owner_shard(&handshake, CID_LEN, 2), None);
        assert_eq!(owner_shard(&handshake, CID_LEN, 3), Some(ShardId(2)));
    }

    #[test]
    fn long_headers_route_only_handshake_packets() {
        let ours = [5, 9, 9, 9, 9, 9, 9, 9];
        assert_eq!(owner_shard(&long(2, &ours), CID_LEN, 8), Some(ShardId(5)));
        // Initial and 0-RTT: client-chosen DCID, handled where they land.
        assert_eq!(owner_shard(&long(0, &ours), CID_LEN, 8), None);
        assert_eq!(owner_shard(&long(1, &ours), CID_LEN, 8), None);
        // A DCID of another length is not ours.
        assert_eq!(owner_shard(&long(2, &[5, 1, 2, 3]), CID_LEN, 8), None);
        // Version negotiation / other versions.
        let mut vn = long(2, &ours);
        vn[4] = 0;
        assert_eq!(owner_shard(&vn, CID_LEN, 8), None);
        // Truncated.
        assert_eq!(owner_shard(&[0xe0, 0, 0], CID_LEN, 8), None);
        assert_eq!(owner_shard(&long(2, &ours)[..6], CID_LEN, 8), None);
    }
}
