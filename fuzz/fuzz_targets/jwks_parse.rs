//! JWKS documents (RFC 7517 §5, RFC 8037 §2) from the JWKS endpoint or file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mc_service::auth::Jwks;

fuzz_target!(|data: &[u8]| {
    if let Ok(jwks) = Jwks::parse(data) {
        assert!(!jwks.is_empty(), "an accepted JWKS has at least one key");
        for kid in jwks.kids() {
            assert!(jwks.get(kid).is_some());
        }
    }
});
