// Core Web Vitals arithmetic, fed one PerformanceEntry at a time.

// clsAdd folds a layout-shift entry into st ({v: 0} to start), grouping shifts
// into session windows as web-vitals does: a window ends after a 1 s gap or
// 5 s in all; CLS (st.v) is the largest window. Shifts right after input
// do not count.
export function clsAdd(st, e) {
  if (e.hadRecentInput) return;
  if (st.s && e.startTime - st.l < 1000 && e.startTime - st.f < 5000) st.s += e.value;
  else {
    st.s = e.value;
    st.f = e.startTime;
  }
  st.l = e.startTime;
  if (st.s > st.v) st.v = st.s;
}

// inpAdd records an event-timing entry in st (interactionId -> longest
// duration); entries that are not part of an interaction are ignored.
export function inpAdd(st, e) {
  const id = e.interactionId;
  if (id) st[id] = Math.max(st[id] || 0, e.duration);
}

// inpValue approximates INP from st: the worst interaction, or the p98 one
// (skip one per 50 interactions) on busy pages. count is
// performance.interactionCount where the browser has it; otherwise it is
// estimated from the interaction ids, which Chromium hands out in steps of 7.
export function inpValue(st, count) {
  const ids = Object.keys(st).map(Number), d = Object.values(st).sort((a, b) => b - a);
  if (!d.length) return;
  const n = count || (Math.max(...ids) - Math.min(...ids)) / 7 + 1;
  return d[Math.min(d.length - 1, Math.floor(n / 50))];
}
