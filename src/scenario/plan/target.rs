//! What the run talks to and how it authenticates: the bundled server (with its faults, queue,
//! TLS and cluster size) or an external URL, the clients' certificate checks, and where tokens
//! come from. Command-line overrides win over the file here.

use std::ops::Range;

use super::{CredentialSource, Overrides, PlanError, TargetPlan, TlsPlan};
use crate::scenario::model::{AuthSpec, TargetSpec};
use crate::server::Faults;

/// Server processes a scenario may ask the bundled server to run as.
const MAX_CLUSTER_WORKERS: u32 = 64;

pub(super) fn target(
    spec: Option<toml::Spanned<TargetSpec>>,
    overrides: &Overrides,
) -> Result<(TargetPlan, TlsPlan, Option<String>), PlanError> {
    let span = spec.as_ref().map_or(0..1, |s| s.span());
    let table = match spec.map(toml::Spanned::into_inner) {
        None => Default::default(),
        Some(TargetSpec::Url(url)) => {
            crate::scenario::model::TargetTable { url: Some(url), ..Default::default() }
        }
        Some(TargetSpec::Table(table)) => table,
    };
    let metrics_url = table.metrics_url.clone();
    if let Some(url) = &metrics_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(PlanError::at(
            span,
            format!("metrics_url must be an http:// or https:// URL, got {url:?}"),
        ));
    }
    let tls = TlsPlan {
        ca_cert: overrides.ca_cert.clone().or_else(|| table.ca_cert.as_ref().map(Into::into)),
        insecure: overrides.insecure || table.insecure.unwrap_or(false),
    };
    let url = overrides.target.clone().or(table.url);
    let Some(ws_url) = url else {
        if overrides.sharded {
            return Err(PlanError::at(
                span,
                "--shard needs an external target (--target or the scenario's `target`): \
                 shards of one run must share one server",
            ));
        }
        let fault_specs: Vec<String> = table.faults.iter().chain(&overrides.faults).cloned().collect();
        let faults =
            Faults::parse_all(&fault_specs).map_err(|e| PlanError::at(span.clone(), e.to_string()))?;
        if tls.ca_cert.is_some() {
            return Err(PlanError::at(
                span,
                "ca_cert (--ca-cert) is for an external wss:// target; the bundled server's generated \
                 certificate is trusted by the run's clients already",
            ));
        }
        let cluster_workers = table.cluster_workers.unwrap_or(1);
        if !(1..=MAX_CLUSTER_WORKERS).contains(&cluster_workers) {
            return Err(PlanError::at(
                span,
                format!("cluster_workers must be between 1 and {MAX_CLUSTER_WORKERS}, got {cluster_workers}"),
            ));
        }
        let embedded = TargetPlan::Embedded {
            faults,
            fault_specs,
            cluster_workers,
            queue: table.queue,
            socket_send_buffer: table.socket_send_buffer,
            tls: overrides.tls.or(table.tls).unwrap_or(false),
        };
        return Ok((embedded, tls, metrics_url));
    };
    if !overrides.faults.is_empty() {
        return Err(PlanError::at(
            span,
            format!(
                "--fault breaks the bundled server on purpose; the target {ws_url} is external \
                 (drop --fault, or run without --target and without the scenario's url)"
            ),
        ));
    }
    // A target given on the command line replaces the file's, bundled-server settings included
    // (worker processes get the parent's bundled server this way).
    let bundled_only = !table.faults.is_empty()
        || table.cluster_workers.is_some()
        || table.queue.is_some()
        || table.socket_send_buffer.is_some()
        || table.tls.is_some();
    if (bundled_only && overrides.target.is_none()) || overrides.tls.is_some() {
        return Err(PlanError::at(
            span,
            "[target] faults, queue, socket_send_buffer, cluster_workers and tls (--tls) apply to the bundled server only, \
             not to an external url (whose scheme, ws:// or wss://, says whether it uses TLS)",
        ));
    }
    let http_url = match table.http_url {
        Some(http) => http,
        None => crate::util::url::derive_http_url(&ws_url).ok_or_else(|| {
            PlanError::at(span.clone(), format!("target {ws_url:?} is not a ws:// or wss:// URL"))
        })?,
    };
    Ok((TargetPlan::External { ws_url, http_url }, tls, metrics_url))
}

pub(super) fn credentials(
    auth: &AuthSpec,
    span: Range<usize>,
    overrides: &Overrides,
    target: &TargetPlan,
) -> Result<CredentialSource, PlanError> {
    if let Some(secret) = &overrides.jwt_secret {
        return Ok(CredentialSource::Secret(secret.clone().into_bytes()));
    }
    if let Some(tokens) = &overrides.token_file {
        return Ok(CredentialSource::Tokens(tokens.clone()));
    }
    let given = [auth.jwt_secret.is_some(), auth.tokens_file.is_some(), auth.token_env.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(PlanError::at(span, "[auth] takes one of jwt_secret, tokens_file, token_env"));
    }
    if let Some(secret) = &auth.jwt_secret {
        return Ok(CredentialSource::Secret(secret.clone().into_bytes()));
    }
    if let Some(path) = &auth.tokens_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PlanError::at(span.clone(), format!("cannot read [auth] tokens_file {path:?}: {e}"))
        })?;
        return Ok(CredentialSource::Tokens(read_tokens(&text)));
    }
    if let Some(var) = &auth.token_env {
        let token = std::env::var(var).map_err(|_| {
            PlanError::at(span.clone(), format!("[auth] token_env: environment variable {var} is not set"))
        })?;
        return Ok(CredentialSource::Tokens(vec![token.trim().to_owned()]));
    }
    match target {
        TargetPlan::Embedded { .. } => {
            Ok(CredentialSource::Secret(crate::protocol::jwt::DEFAULT_DEV_SECRET.as_bytes().to_vec()))
        }
        TargetPlan::External { .. } => match std::env::var("OPENFRAME_JWT_SECRET") {
            Ok(secret) => Ok(CredentialSource::Secret(secret.into_bytes())),
            Err(_) => Err(PlanError::at(
                span,
                "an external target needs credentials: [auth] jwt_secret / tokens_file / token_env, \
                 --jwt-secret, --token-file or OPENFRAME_JWT_SECRET",
            )),
        },
    }
}

/// One token per line; blank lines and `#` comments are skipped.
pub fn read_tokens(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_skip_blanks_and_comments() {
        assert_eq!(read_tokens("a\n\n# c\n b \n"), ["a", "b"]);
    }
}
