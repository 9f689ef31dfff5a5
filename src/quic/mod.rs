//! QUIC on a shard: quinn-proto endpoint, connection IDs that name their shard, UDP I/O.
