// Navigation and Resource Timing entries turned into beacon fields.
import { r, span } from './util.js';

// phases are the network phases of a navigation or resource entry; for a
// cross-origin resource without Timing-Allow-Origin they are all absent.
// connect_ms excludes the TLS handshake, ttfb_ms runs from the request to
// the first response byte, as in the agent's results.
export function phases(e) {
  const s = e.secureConnectionStart, t = s > 0 && s >= e.connectStart ? s : 0;
  return {
    dns_ms: span(e.domainLookupStart, e.domainLookupEnd),
    connect_ms: span(e.connectStart, t || e.connectEnd),
    tls_ms: span(t, e.connectEnd),
    ttfb_ms: span(e.requestStart, e.responseStart),
  };
}

// at is a milestone since navigation start, absent until it happened.
const at = (t) => (t > 0 ? r(t) : undefined);

// navTiming is the "nav" object of the beacon.
export function navTiming(n) {
  return {
    type: n.type,
    redirect_ms: span(n.redirectStart, n.redirectEnd),
    ...phases(n),
    response_ms: span(n.responseStart, n.responseEnd),
    dom_interactive_ms: at(n.domInteractive),
    dom_complete_ms: at(n.domComplete),
    load_ms: at(n.loadEventEnd),
    protocol: n.nextHopProtocol || undefined,
    transfer_bytes: n.transferSize,
    delivery_type: n.deliveryType,
  };
}

// probeTiming is one "cold" or "warm" object of a CDN probe.
export function probeTiming(e) {
  return { ...phases(e), duration_ms: r(e.duration), bytes: e.transferSize || undefined };
}

// serverTiming keeps the first 10 Server-Timing metrics of the navigation.
// The browser reports a missing dur as 0, so 0 is left out.
export function serverTiming(l) {
  return l && l.length
    ? l.slice(0, 10).map((s) => ({
        name: s.name.slice(0, 64),
        dur: s.duration ? r(s.duration) : undefined,
        desc: s.description ? s.description.slice(0, 100) : undefined,
      }))
    : undefined;
}
