import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32, as ULID uses

let lastTime = -1;
let lastRandom: number[] = [];

function randomDigits(): number[] {
  return [...randomBytes(16)].map((b) => b & 31);
}

/** Adds one to a base-32 digit string (a ULID's random part), keeping ids made in the same millisecond in order. */
function increment(digits: number[]): number[] {
  const next = [...digits];
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i]! < 31) {
      next[i]!++;
      return next;
    }
    next[i] = 0;
  }
  return randomDigits(); // 32^16 ids in one millisecond: cannot happen
}

/**
 * A ULID: 26 characters, 48 bits of milliseconds then 80 random bits, so
 * ids sort by creation time; ids made in the same millisecond by this
 * process sort in the order they were made.
 */
export function newJobId(now: number = Date.now()): string {
  if (now <= lastTime) {
    lastRandom = increment(lastRandom);
  } else {
    lastTime = now;
    lastRandom = randomDigits();
  }
  let time = '';
  let t = lastTime;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  return time + lastRandom.map((d) => ALPHABET[d]).join('');
}

export const JOB_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
