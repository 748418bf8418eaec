// Small helpers shared by the pure modules. Nothing here touches the DOM.

// r rounds milliseconds to 0.1 ms.
export const r = (x) => Math.round(x * 10) / 10;

// span is b-a rounded when both timestamps are known (a > 0) and in order;
// otherwise undefined, which JSON.stringify omits: absent is not zero.
export const span = (a, b) => (a > 0 && b >= a ? r(b - a) : undefined);

// median of a non-empty list of numbers.
export function median(a) {
  a = a.slice().sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

// some returns o when at least one of its values is defined, else undefined,
// so an object with nothing in it is left out of the beacon.
export const some = (o) => (Object.values(o).some((v) => v !== undefined) ? o : undefined);
