// Reconnection delays: exponential backoff with full jitter.

export interface BackoffOptions {
  /** Smallest delay in ms (default 500). */
  minDelay: number;
  /** Largest delay in ms (default 20000). */
  maxDelay: number;
}

/**
 * The delay before reconnection attempt `attempt` (0 for the first): a
 * uniformly random value between minDelay and
 * min(maxDelay, minDelay · 2^(attempt+1)). Every attempt is jittered, so
 * clients dropped together do not return together.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const min = Math.max(0, opts.minDelay);
  const max = Math.max(min, opts.maxDelay);
  const upper = Math.min(max, min * 2 ** Math.min(attempt + 1, 30));
  return min + random() * (upper - min);
}

/**
 * The wait before the first reconnection after the server said it is
 * draining (close 4002): uniformly random in [minDelay, drainDelay], so
 * that the clients of a restarting node spread their return over the
 * window.
 */
export function drainDelay(minDelay: number, drainMax: number, random: () => number = Math.random): number {
  const lo = Math.max(0, minDelay);
  const hi = Math.max(lo, drainMax);
  return lo + random() * (hi - lo);
}
