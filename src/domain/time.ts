// Units of time the rules count in.

export const DAY_MS = 24 * 60 * 60 * 1000;
