//! `X-HMAC-SHA256` verification: base64 of HMAC-SHA256 over the raw body, compared in constant time.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Signs and verifies webhook bodies with one endpoint secret.
#[derive(Clone)]
pub struct WebhookSigner {
    secret: SecretString,
}

/// Why a signature was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-HMAC-SHA256 header")]
    Missing,
    #[error("X-HMAC-SHA256 is not base64 of a 32-byte HMAC")]
    Malformed,
    #[error("X-HMAC-SHA256 does not match the body")]
    Mismatch,
}

impl WebhookSigner {
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        #[allow(clippy::expect_used)]
        Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("hmac takes any key length")
    }

    /// The header value Otter would send for `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Checks `header` (the `X-HMAC-SHA256` value, if any) against the exact body bytes.
    pub fn verify(&self, body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| SignatureError::Malformed)?;
        let expected = STANDARD
            .decode(header.trim())
            .map_err(|_| SignatureError::Malformed)?;
        if expected.len() != 32 {
            return Err(SignatureError::Malformed);
        }
        let mut mac = self.mac();
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANCEL_ORDER: &[u8] = include_bytes!("../../tests/fixtures/cancel_order.json");

    fn signer() -> WebhookSigner {
        WebhookSigner::new(SecretString::from("test-webhook-secret"))
    }

    #[test]
    fn matches_the_reference_check_value() {
        assert_eq!(
            signer().sign(CANCEL_ORDER),
            "45KPexrjl74Hxm3/xJpSLHdeS6wtMtspCrD7v/WDv5s="
        );
    }

    #[test]
    fn verifies_exact_bytes_only() {
        let check = |body: &[u8], header: Option<&str>, expected: Result<(), SignatureError>| {
            assert_eq!(
                signer().verify(body, header.map(str::as_bytes)),
                expected,
                "{header:?}"
            );
        };
        let good = "45KPexrjl74Hxm3/xJpSLHdeS6wtMtspCrD7v/WDv5s=";
        check(CANCEL_ORDER, Some(good), Ok(()));
        let mut tampered = CANCEL_ORDER.to_vec();
        tampered.push(b' ');
        check(&tampered, Some(good), Err(SignatureError::Mismatch));
        check(CANCEL_ORDER, None, Err(SignatureError::Missing));
        check(
            CANCEL_ORDER,
            Some("not base64!"),
            Err(SignatureError::Malformed),
        );
        check(CANCEL_ORDER, Some("AAAA"), Err(SignatureError::Malformed));
        let other = WebhookSigner::new(SecretString::from("wrong")).sign(CANCEL_ORDER);
        check(CANCEL_ORDER, Some(&other), Err(SignatureError::Mismatch));
    }
}
