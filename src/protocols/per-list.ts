// What a machine derives from the backend's probed capability list, computed once per list
// rather than at every connection: the list is one array until the next probe replaces it
// whole (backend/capabilities.ts), and every connection, refused ones included, asks
// (literalMinus 4.2 µs, the mechanisms 1.6 µs a connection before, issue 22).
export function perList<T>(fn: (list: readonly string[]) => T): (list: readonly string[]) => T {
  const memo = new WeakMap<readonly string[], T>();
  return (list) => {
    let v = memo.get(list);
    if (v === undefined && !memo.has(list)) memo.set(list, (v = fn(list)));
    return v as T;
  };
}
