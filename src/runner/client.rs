//! One simulated client: connect, authenticate, subscribe, receive and judge every message,
//! churn as its group says, close cleanly at the end. One task per client; one loop that takes
//! the group's churn, stall and credential as values (STYLE rule 4).

use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::time::{Instant, sleep};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::connect::{Connected, WsStream};
use super::context::{GroupRuntime, ShardCtx};
use super::session::{ANSWER_TIMEOUT, End, Session, random_between};
use crate::protocol::{ErrorCode, ServerMessage, close, parse_server_message};
use crate::results::LatencyMetric;
use crate::util::mix::mix64;

/// Pause before reconnecting after a failure or a cut.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs client `index` of group `group` until the run stops.
pub async fn run(ctx: Rc<ShardCtx>, group: usize, index: u64) {
    let run = &ctx.run;
    let g = &run.groups[group];
    let mut rng = ChaCha8Rng::seed_from_u64(mix64(run.plan.seed, group as u32, index));
    let subject = format!("{}-{index}", g.plan.name);
    let session = run.connector.session();
    let mut connections = 0u64;
    // Spreads every client of the run over the connector's source addresses.
    let source_index = run.groups[..group].iter().map(|g| g.plan.count).sum::<u64>() + index;
    // When the client is on (stages: it leaves on a ramp-down and may come back for a spike).
    let run_start = run.clock.instant_at(run.start_us);
    let windows: Vec<(Instant, Option<Instant>)> = g
        .plan
        .windows(index)
        .into_iter()
        .map(|(on, off)| ((run_start + on).into(), off.map(|off| (run_start + off).into())))
        .collect();
    let mut window = 0;
    loop {
        if run.stop.is_cancelled() {
            return;
        }
        // Past this window's end: wait for the next one, or for the run's end.
        while windows.get(window).is_some_and(|(_, off)| off.is_some_and(|off| Instant::now() >= off)) {
            window += 1;
        }
        let Some(&(on, leave_at)) = windows.get(window) else {
            run.stop.cancelled().await;
            return;
        };
        if Instant::now() < on && !pause(&ctx, on - Instant::now()).await {
            return;
        }
        let started = Instant::now();
        let token = run.credentials.token(g.plan.credential, &subject, false, index);
        let receive_buffer = g.plan.stall.and_then(|s| s.socket_buffer_bytes);
        let connected = tokio::select! {
            _ = run.stop.cancelled() => return,
            connected = run.connector.connect(&session, token.as_deref(), g.plan.token_in_query, receive_buffer, source_index) => connected,
        };
        let (mut ws, timings) = match connected {
            Ok(Connected { ws, timings }) => {
                timings.record(&mut ctx.stats.borrow_mut(), group);
                (ws, timings)
            }
            Err(error) => {
                ctx.stats.borrow_mut().counters[group].connections_failed += 1;
                ctx.sample("connection_failed", error.to_string(), "", &g.plan.name);
                if !pause(&ctx, RETRY_PAUSE).await {
                    return;
                }
                continue;
            }
        };
        connections += 1;
        let end = if g.plan.credential.is_valid() {
            match await_established(&ctx, g, &mut ws, started, timings.upgrade_started).await {
                Some(()) => Session::new(&ctx, g, &mut rng, connections > 1).run(&mut ws, leave_at).await,
                None => End::Cut,
            }
        } else {
            expect_rejection(&ctx, g, &mut ws).await;
            End::Reconnect
        };
        let wait = match end {
            End::Stop => return,
            // Left on a ramp-down: the next window (if any) is waited for above.
            End::Leave => {
                window += 1;
                continue;
            }
            End::Cut => RETRY_PAUSE,
            End::Reconnect if g.plan.credential.is_valid() => Duration::ZERO,
            End::Reconnect => match g.plan.churn.reconnect_every {
                Some((low, high)) => random_between(&mut rng, low, high),
                // An auth-storm client without churn tries once and waits for the end.
                None => {
                    run.stop.cancelled().await;
                    return;
                }
            },
        };
        if !pause(&ctx, wait).await {
            return;
        }
        ctx.stats.borrow_mut().counters[group].reconnects += 1;
    }
}

/// Sleeps unless the run stops first; `false` when it stopped.
async fn pause(ctx: &ShardCtx, wait: Duration) -> bool {
    tokio::select! {
        _ = ctx.run.stop.cancelled() => false,
        _ = sleep(wait) => true,
    }
}

/// Waits for `connection_established`; records the connect latency (and its upgrade part).
async fn await_established(
    ctx: &ShardCtx,
    g: &GroupRuntime,
    ws: &mut WsStream,
    started: Instant,
    upgrade_started: Instant,
) -> Option<()> {
    let group = g.index;
    let first = tokio::time::timeout(ANSWER_TIMEOUT, next_text(ws)).await.ok().flatten();
    let mut stats = ctx.stats.borrow_mut();
    stats.counters[group].connections_opened += 1;
    let Some(text) = first else {
        stats.counters[group].unexpected_closes += 1;
        drop(stats);
        ctx.sample("no_connection_established", "no first message within 10s", "", &g.plan.name);
        return None;
    };
    match parse_server_message(&text) {
        Ok(ServerMessage::ConnectionEstablished { .. }) => {
            stats.histograms.record(LatencyMetric::Connect, started.elapsed().as_micros() as u64);
            stats.histograms.record(LatencyMetric::Upgrade, upgrade_started.elapsed().as_micros() as u64);
            stats.clients_connected[group] += 1;
            Some(())
        }
        Ok(message) => {
            if message.error_code() == Some(ErrorCode::AuthError) {
                stats.counters[group].auth_rejected += 1;
                stats.counters[group].auth_unexpected_rejections += 1;
            } else {
                stats.counters[group].protocol_violations += 1;
            }
            drop(stats);
            ctx.sample(
                "not_established",
                "first message is not connection_established (§2)",
                &text,
                &g.plan.name,
            );
            None
        }
        Err(violation) => {
            stats.record_violation(group, violation.kind);
            drop(stats);
            ctx.sample("protocol_violation", violation.detail, &text, &g.plan.name);
            None
        }
    }
}

/// An invalid token must get exactly one `AUTH_ERROR` and a 1008 close (PROTOCOL.md §2).
async fn expect_rejection(ctx: &ShardCtx, g: &GroupRuntime, ws: &mut WsStream) {
    let group = g.index;
    ctx.stats.borrow_mut().counters[group].connections_opened += 1;
    let first = tokio::time::timeout(ANSWER_TIMEOUT, next_text(ws)).await.ok().flatten();
    let verdict = first.as_deref().map(parse_server_message);
    match verdict {
        Some(Ok(ref m)) if m.error_code() == Some(ErrorCode::AuthError) => {
            ctx.stats.borrow_mut().counters[group].auth_rejected += 1;
        }
        Some(Ok(ServerMessage::ConnectionEstablished { .. })) => {
            {
                let counters = &mut ctx.stats.borrow_mut().counters[group];
                counters.auth_accepted_invalid += 1;
                counters.protocol_violations += 1;
            }
            let _ = tokio::time::timeout(ANSWER_TIMEOUT, ws.close(None)).await;
            ctx.sample(
                "auth_accepted_invalid",
                format!("{:?} token accepted", g.plan.credential),
                "",
                &g.plan.name,
            );
            return;
        }
        _ => {
            ctx.stats.borrow_mut().counters[group].protocol_violations += 1;
            let text = first.as_deref().unwrap_or_default();
            ctx.sample(
                "auth_no_error",
                "an invalid token did not get AUTH_ERROR first (§2)",
                text,
                &g.plan.name,
            );
        }
    }
    let code = tokio::time::timeout(ANSWER_TIMEOUT, close_code(ws)).await.ok().flatten();
    if code != Some(close::POLICY_VIOLATION) {
        ctx.stats.borrow_mut().counters[group].protocol_violations += 1;
        ctx.sample("auth_close_code", format!("closed with {code:?}, expected 1008 (§2)"), "", &g.plan.name);
    }
}

/// The next text message, skipping control frames; `None` when the connection ends.
async fn next_text(ws: &mut WsStream) -> Option<Utf8Bytes> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(text),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            _ => return None,
        }
    }
}

/// Reads to the end; the close code, if a close frame came.
async fn close_code(ws: &mut WsStream) -> Option<u16> {
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}
