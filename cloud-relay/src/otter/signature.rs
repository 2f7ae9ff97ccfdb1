//! `X-HMAC-SHA256` verification: base64 of HMAC-SHA256 over the raw body, compared in constant time,
//! against the current secret and, during a rotation, the previous one.

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

impl SignatureError {
    /// The `reason` label this failure is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Mismatch => "mismatch",
        }
    }
}

/// Which secret a valid signature was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUsed {
    Current,
    Previous,
}

impl SecretUsed {
    /// The `secret` label of `relay_webhook_signatures_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Previous => "previous",
        }
    }
}

/// Verifies webhook bodies against the current secret and, while one is being rotated out, the
/// previous one.
#[derive(Clone)]
pub struct WebhookVerifier {
    current: WebhookSigner,
    previous: Option<WebhookSigner>,
}

impl WebhookVerifier {
    /// An empty `previous` counts as none.
    pub fn new(current: SecretString, previous: Option<SecretString>) -> Self {
        Self {
            current: WebhookSigner::new(current),
            previous: previous
                .filter(|secret| !secret.expose_secret().is_empty())
                .map(WebhookSigner::new),
        }
    }

    /// Checks `header` against the exact body bytes with each secret and says which matched.
    /// Both secrets are always tried, so the answer's timing does not tell which one matched.
    pub fn verify(&self, body: &[u8], header: Option<&[u8]>) -> Result<SecretUsed, SignatureError> {
        let expected = decode_header(header)?;
        let current = self.current.matches(body, &expected);
        let previous = self
            .previous
            .as_ref()
            .is_some_and(|previous| previous.matches(body, &expected));
        match (current, previous) {
            (true, _) => Ok(SecretUsed::Current),
            (false, true) => Ok(SecretUsed::Previous),
            (false, false) => Err(SignatureError::Mismatch),
        }
    }
}

/// The 32 bytes an `X-HMAC-SHA256` value carries.
fn decode_header(header: Option<&[u8]>) -> Result<Vec<u8>, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| SignatureError::Malformed)?;
    let expected = STANDARD
        .decode(header.trim())
        .map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    Ok(expected)
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
        let expected = decode_header(header)?;
        if self.matches(body, &expected) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    fn matches(&self, body: &[u8], expected: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(expected).is_ok()
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

    #[test]
    fn a_rotation_accepts_both_secrets_and_says_which() {
        let rotating = WebhookVerifier::new(
            SecretString::from("new-secret"),
            Some(SecretString::from("test-webhook-secret")),
        );
        let settled = WebhookVerifier::new(SecretString::from("new-secret"), None);
        let emptied = WebhookVerifier::new(
            SecretString::from("new-secret"),
            Some(SecretString::from("")),
        );
        let sign = |secret: &str| {
            WebhookSigner::new(SecretString::from(secret.to_owned())).sign(CANCEL_ORDER)
        };
        let check = |verifier: &WebhookVerifier,
                     header: Option<&str>,
                     expected: Result<SecretUsed, SignatureError>| {
            assert_eq!(
                verifier.verify(CANCEL_ORDER, header.map(str::as_bytes)),
                expected,
                "{header:?}"
            );
        };
        check(
            &rotating,
            Some(&sign("new-secret")),
            Ok(SecretUsed::Current),
        );
        check(
            &rotating,
            Some(&sign("test-webhook-secret")),
            Ok(SecretUsed::Previous),
        );
        check(
            &rotating,
            Some(&sign("third")),
            Err(SignatureError::Mismatch),
        );
        check(&rotating, None, Err(SignatureError::Missing));
        check(&rotating, Some("AAAA"), Err(SignatureError::Malformed));
        check(&settled, Some(&sign("new-secret")), Ok(SecretUsed::Current));
        check(
            &settled,
            Some(&sign("test-webhook-secret")),
            Err(SignatureError::Mismatch),
        );
        check(&emptied, Some(&sign("")), Err(SignatureError::Mismatch));
    }
}
