//! TLS material: PEM files or environment, and the development certificate.
