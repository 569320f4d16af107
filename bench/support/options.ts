// The command-line conventions every benchmark shares: --help prints the usage and exits, and a
// count (1_000_000 may be written with underscores) below its minimum stops the run with the usage.

export function exitOnHelp(help: boolean | undefined, usage: string): void {
  if (!help) return;
  console.log(usage);
  process.exit(0);
}

/** A parser of integer options for one benchmark's usage text. */
export function integerOption(usage: string): (name: string, text: string, min: number) => number {
  return (name, text, min) => {
    const value = Number(text.replace(/_/g, ''));
    if (!Number.isSafeInteger(value) || value < min) throw new Error(`--${name} must be an integer >= ${min}\n${usage}`);
    return value;
  };
}
