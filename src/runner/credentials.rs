//! The tokens clients and publishers present: minted from the scenario's secret, taken from a
//! token file, or deliberately broken for auth-storm groups (PROTOCOL.md §2's invalid forms).

use std::time::Duration;

use crate::protocol::jwt::{self, Claims};
use crate::scenario::plan::{Credential, CredentialSource};

#[derive(Debug, Clone)]
pub struct Credentials {
    source: CredentialSource,
    ttl: Duration,
}

impl Credentials {
    pub fn new(source: CredentialSource, ttl: Duration) -> Credentials {
        Credentials { source, ttl }
    }

    /// The token client `index` presents (`None`: no token at all).
    pub fn token(&self, credential: Credential, subject: &str, publish: bool, index: u64) -> Option<String> {
        let ttl_s = self.ttl.as_secs().max(1) as i64;
        let now = jwt::unix_now_s() as i64;
        match (credential, &self.source) {
            (Credential::Missing, _) => None,
            (Credential::Garbage, _) => Some("this-is-not-a-token".to_owned()),
            (Credential::AlgNone, _) => Some(jwt::mint_raw(
                r#"{"alg":"none","typ":"JWT"}"#,
                &format!(r#"{{"sub":"{subject}","exp":{}}}"#, now + ttl_s),
                None,
            )),
            (Credential::BadSignature, _) => {
                Some(jwt::mint(b"not-the-target-secret", &Claims::for_subject(subject, ttl_s, publish)))
            }
            (Credential::Expired, CredentialSource::Secret(secret)) => {
                // An hour past, far outside any leeway a target may allow.
                let claims = Claims {
                    sub: Some(subject.to_owned()),
                    exp: Some(now - 3600),
                    iat: Some(now - 7200),
                    nbf: None,
                    scope: publish.then(|| "publish".to_owned()),
                };
                Some(jwt::mint(secret, &claims))
            }
            (Credential::Valid, CredentialSource::Secret(secret)) => {
                Some(jwt::mint(secret, &Claims::for_subject(subject, ttl_s, publish)))
            }
            // The plan refuses `expired` without a secret; a token file only yields valid tokens.
            (Credential::Valid | Credential::Expired, CredentialSource::Tokens(tokens)) => {
                tokens.get(index as usize % tokens.len().max(1)).cloned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_credential_kind_verifies_as_intended() {
        let secret = b"s".to_vec();
        let creds = Credentials::new(CredentialSource::Secret(secret.clone()), Duration::from_secs(60));
        let now = jwt::unix_now_s();
        let verify = |c: Credential| creds.token(c, "u", true, 0).map(|t| jwt::verify(&t, &secret, now));
        assert!(matches!(verify(Credential::Valid), Some(Ok(v)) if v.may_publish));
        assert_eq!(verify(Credential::Expired), Some(Err(jwt::TokenError::Expired)));
        assert_eq!(verify(Credential::BadSignature), Some(Err(jwt::TokenError::BadSignature)));
        assert_eq!(verify(Credential::AlgNone), Some(Err(jwt::TokenError::WrongAlgorithm)));
        assert_eq!(verify(Credential::Garbage), Some(Err(jwt::TokenError::Malformed)));
        assert_eq!(verify(Credential::Missing), None);
    }

    #[test]
    fn token_files_are_used_round_robin() {
        let creds =
            Credentials::new(CredentialSource::Tokens(vec!["a".into(), "b".into()]), Duration::from_secs(1));
        let picks: Vec<_> = (0..3).map(|i| creds.token(Credential::Valid, "u", false, i).unwrap()).collect();
        assert_eq!(picks, ["a", "b", "a"]);
    }
}
