// Counting for the compare-tools workload (bench/compare-tools.sh, bench/artillery/scenario.yml).
//
// Artillery's WebSocket engine reports only what answers its own steps; events the server
// broadcasts are not seen by it. This processor subscribes each virtual user to `alerts`, counts
// every text frame after `subscription_confirmed` on the user's own socket (no parsing), and
// reports through Artillery's custom metrics, once per user when it ends:
//   openframe.subscribed         users that got subscription_confirmed
//   openframe.events_received    events counted
//   openframe.closed_early       subscribed users whose connection closed before the end
//   openframe.subscribe_ms       (histogram) subscribe sent -> subscription_confirmed received
// The only time it keeps is that last one: Artillery's ws engine times nothing itself.
'use strict';

const SUBSCRIBE = JSON.stringify({ type: 'subscribe', topics: ['alerts'], id: 'artillery' });
const END_AT_MS = Number(process.env.BENCH_END_AT_MS || 0);

function subscribeAndCount(context, events, next) {
  const ws = context.ws;
  const state = { subscribed: false, received: 0, closedEarly: false, reported: false };
  context.openframe = state;
  const sentAt = Date.now();
  ws.on('message', (data) => {
    if (state.subscribed) {
      // Frames still queued at the end are not received, as with every other tool.
      if (Date.now() < END_AT_MS) {
        state.received += 1;
      }
    } else if (data.toString().includes('"subscription_confirmed"')) {
      state.subscribed = true;
      events.emit('histogram', 'openframe.subscribe_ms', Date.now() - sentAt);
    }
  });
  ws.on('close', () => {
    if (Date.now() < END_AT_MS) {
      state.closedEarly = true;
    }
  });
  ws.send(SUBSCRIBE, (err) => next(err || undefined));
}

function holdUntilEnd(context, events, next) {
  const state = context.openframe;
  setTimeout(() => {
    if (state && !state.reported) {
      state.reported = true;
      if (state.subscribed) {
        events.emit('counter', 'openframe.subscribed', 1);
      }
      if (state.subscribed && state.closedEarly) {
        events.emit('counter', 'openframe.closed_early', 1);
      }
      events.emit('counter', 'openframe.events_received', state.received);
    }
    next();
  }, Math.max(0, END_AT_MS - Date.now()));
}

module.exports = { subscribeAndCount, holdUntilEnd };
