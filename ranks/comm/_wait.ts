/**
 * A promise with the waiter that settles it, withdrawn if a signal aborts first (private to the
 * rank library).
 *
 * @module
 */

/** Settles one wait. */
export interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/**
 * A promise and the waiter that settles it. If `signal` aborts first, `withdraw` runs and the
 * promise rejects with the signal's reason.
 */
export function wait<T>(signal?: AbortSignal, withdraw?: () => void): [Promise<T>, Waiter<T>] {
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  const onAbort = () => {
    withdraw?.();
    reject(signal!.reason);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  const waiter: Waiter<T> = {
    resolve(value) {
      signal?.removeEventListener("abort", onAbort);
      resolve(value);
    },
    reject(error) {
      signal?.removeEventListener("abort", onAbort);
      reject(error);
    },
  };
  return [promise, waiter];
}
