//! `token`: prints a signed HS256 JWT (CLI.md), so a person can try a server with any client.

use crate::cli::TokenArgs;
use crate::commands::outcome::{BadInput, Outcome};
use crate::protocol::jwt::{self, Claims, DEFAULT_DEV_SECRET};

pub fn execute(args: TokenArgs) -> anyhow::Result<Outcome> {
    let ttl_s = i64::try_from(args.ttl.as_secs()).map_err(|_| BadInput("--ttl is too long".into()))?;
    if ttl_s == 0 {
        return Err(BadInput("--ttl must be at least 1s".into()).into());
    }
    let secret = args.secret.jwt_secret.unwrap_or_else(|| DEFAULT_DEV_SECRET.to_owned());
    let now = jwt::unix_now_s() as i64;
    let claims =
        Claims { sub: Some(args.sub), exp: Some(now + ttl_s), iat: Some(now), nbf: None, scope: args.scope };
    println!("{}", jwt::mint(secret.as_bytes(), &claims));
    Ok(Outcome::Passed)
}
